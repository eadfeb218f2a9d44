"""Anomaly detection relative to each sensor's own normal.

``baseline``: a sensor's normal, learned from its commissioning period or a named one.
``features``: model inputs relative to that baseline (causal: a row uses readings up to it).
``families``: the detectors (PCA T-squared+Q, MSET similarity, XGBoost) behind one interface.
``model``: family + feature recipe + parameters + decision threshold, saved and loaded as one.
``automl``: the search over families, windows, parameters and threshold by group-wise CV.
"""
