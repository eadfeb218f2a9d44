"""The shared core: settings, typed event records, topics, profiles, logs, metrics, health."""
