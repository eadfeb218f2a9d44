"""The retrain-trigger's logic: ``machine`` decides and follows retraining runs (pure, with its
side effects passed in), ``store`` holds its SQL (decisions made, the policy a restart resumes).
services/retrain-trigger/service.py wires them to Kafka."""
