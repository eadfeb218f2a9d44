"""Operators' labels in the loop: Label Studio tasks from the stream, annotations back as labels,
and the production model's performance measured against them.

``candidates`` turns predictions and retrain requests into task candidates (pure);
``interface`` is the Label Studio labeling interface and task payload; ``client`` speaks Label
Studio's HTTP API; ``annotations`` turns an annotation into label rows (pure); ``store`` holds
the tables; ``sync`` is one pass (tasks out, annotations in); ``performance`` measures labelled
precision, recall and F1 and decides the labelled-performance retraining rule (pure);
``webhook`` receives Label Studio's annotation webhooks.
"""
