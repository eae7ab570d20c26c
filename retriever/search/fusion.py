"""Hybrid search's fusion of ranked lists (dense, BM25, sparse): best first, per side.

* ``rrf``: weighted reciprocal rank fusion, ``sum_i w_i / (RRF_K + rank_i)`` with k = 60. Ranks,
  not scores, are fused, so unrelated scales do not matter.
* ``score``: each side's scores min-max normalised over its own candidates, then a weighted sum
  (a candidate missing from a side gets 0 there). Every measured default is score fusion: with a
  weak dense side, BM25's normalised scores dominate and dense only re-orders near-ties
  (the defaults per embedder are in :mod:`retriever.embed.config`).
"""

from __future__ import annotations

import numpy as np

FUSIONS = ("rrf", "score")
RRF_K = 60


def rrf(
    ranked: dict[str, list[tuple[int, float]]], weights: dict[str, float] | None = None
) -> list[tuple[int, float]]:
    """Weighted reciprocal rank fusion: ``sum_i w_i / (RRF_K + rank_i)``, best first.

    Args:
        ranked: per side (e.g. "dense", "bm25"), ids with scores, best first.
        weights: per side; missing sides weigh 1.0.
    """
    w = weights or {}
    fused: dict[int, float] = {}
    for side, hits in ranked.items():
        for rank, (cid, _) in enumerate(hits, start=1):
            fused[cid] = fused.get(cid, 0.0) + w.get(side, 1.0) / (RRF_K + rank)
    return sorted(fused.items(), key=lambda x: -x[1])


def score_fusion(
    ranked: dict[str, list[tuple[int, float]]], weights: dict[str, float] | None = None
) -> list[tuple[int, float]]:
    """Weighted sum of min-max normalised scores per side, best first.

    Each side's scores are mapped to [0, 1] over that side's own candidates (all 1.0 when they
    are equal); a candidate missing from a side scores 0 there. Missing weights are 1.0.
    """
    w = weights or {}
    fused: dict[int, float] = {}
    for side, hits in ranked.items():
        if not hits:
            continue
        scores = np.array([s for _, s in hits], dtype=np.float64)
        lo, span = scores.min(), scores.max() - scores.min()
        norm = (scores - lo) / span if span > 0 else np.ones_like(scores)
        for (cid, _), x in zip(hits, norm, strict=True):
            fused[cid] = fused.get(cid, 0.0) + w.get(side, 1.0) * float(x)
    return sorted(fused.items(), key=lambda x: -x[1])


FUSE = {"rrf": rrf, "score": score_fusion}
