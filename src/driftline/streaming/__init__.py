"""Streaming plumbing: Kafka clients, the consumer loop of every service, its error policy."""
