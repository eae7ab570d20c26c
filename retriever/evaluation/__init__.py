"""Evaluation: STS, BEIR retrieval, TP tuning, measured against baselines."""
