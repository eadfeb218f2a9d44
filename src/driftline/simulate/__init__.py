"""The sensor simulator: realistic pump signals or SKAB replays, with drift and bad messages."""
