"""The `driftline` command line."""
