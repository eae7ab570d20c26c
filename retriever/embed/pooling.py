"""Poolings made of others, and L2 normalisation (shared by sentence and chunk encoding)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Poolings made of others: each part L2-normalised, concatenated, scaled to unit norm.
COMBINED = {"last+mean": ("last", "mean")}


def combine_poolings(parts: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenate poolings, each L2-normalised, scaled so the result has unit norm."""
    v = np.concatenate([_normalize(p) for p in parts], axis=-1) / np.sqrt(len(parts))
    return v.astype(np.float32)


def _normalize(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(norms, 1e-12)
