"""Monitoring: reference profiles, drift, data quality and performance of served models.

A dataset (or a model's training data) is summarised once into a compact, mergeable profile
(:mod:`dockyard.monitoring.profile`: counts, missing values, moments, quantile-edge histograms,
a reservoir sample and category frequencies per column); production windows of the prediction
log are then compared with that stored profile (:mod:`dockyard.monitoring.drift`), so the
training data is never reloaded. Submodules import NumPy, pandas and pyarrow only when used.
"""
