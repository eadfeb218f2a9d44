"""The retraining pipeline: one plain, typed function per step."""
