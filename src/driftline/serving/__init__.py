"""Serving: the champion model, the scoring path, request decoding, predictions published."""
