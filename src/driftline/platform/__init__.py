"""The local platform behind `driftline up`: the embedded broker, the supervisor, the demo."""
