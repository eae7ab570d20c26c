"""Variants of the default hybrid's score fusion on SciFact, tuned on train, reported on test.

The shipped hybrid takes each side's top candidates, min-max normalises each side's scores over
its own candidates and adds them with a dense weight (BM25 at 1). Two things about that may
cost quality, and both are cheap to change in the product:

* **Holes.** A BM25 candidate outside the dense top-k counts 0 on the dense side, though its
  cosine is known (the vectors are stored). "fill" scores every BM25 candidate densely.
* **Normalisation.** Min-max hangs on the single best and worst candidates. "z" uses each side's
  mean and standard deviation over its candidates instead.

Each variant's dense weight is chosen on the 809 train queries; test is read once. Document
vectors come from ``tpr eval beir``'s cache when the preset ran before with ``--max-length 256``
(otherwise about 90 min on 2 CPU cores).

    python benchmarks/fusion_variants.py [--data ../shared/data/scifact] [--depths 50,100]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import scifact_preset  # benchmarks/scifact_preset.py
from machine import describe  # benchmarks/machine.py

from retriever.evaluation import beir


def z_fusion(sides: dict[str, dict[str, float]], weights: dict[str, float]) -> list:
    fused: dict[str, float] = {}
    for side, hits in sides.items():
        if not hits:
            continue
        x = np.array(list(hits.values()))
        mu, sd = x.mean(), x.std()
        for d, s in hits.items():
            fused[d] = fused.get(d, 0.0) + weights[side] * ((s - mu) / sd if sd > 0 else 0.0)
    # A candidate missing from a side takes that side's lowest normalised score, not 0 (the
    # mean), so being absent never beats being present.
    for side, hits in sides.items():
        if hits:
            x = np.array(list(hits.values()))
            low = (x.min() - x.mean()) / x.std() if x.std() > 0 else 0.0
            for d in fused:
                if d not in hits:
                    fused[d] += weights[side] * low
    return sorted(fused.items(), key=lambda x: -x[1])


def minmax_fusion(sides: dict[str, dict[str, float]], weights: dict[str, float]) -> list:
    fused: dict[str, float] = {}
    for side, hits in sides.items():
        if not hits:
            continue
        x = np.array(list(hits.values()))
        lo, span = x.min(), x.max() - x.min()
        for d, s in hits.items():
            fused[d] = fused.get(d, 0.0) + weights[side] * ((s - lo) / span if span > 0 else 1.0)
    return sorted(fused.items(), key=lambda x: -x[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    scifact_preset.add_arguments(ap)
    ap.add_argument("--depths", default="50,100")
    args = ap.parse_args()
    print(f"machine: {describe()}")
    t = time.perf_counter()
    p = scifact_preset.load(args)
    doc_ids, splits, first = p.doc_ids, p.splits, p.bm25
    row = {d: i for i, d in enumerate(doc_ids)}
    doc_vecs = p.doc_vectors
    cos = {s: p.query_vectors(s) @ doc_vecs.T for s in splits}  # [Q, D] exact dense scores
    c = p.embedder.config
    print(
        f"vectors ready in {time.perf_counter() - t:.0f}s; preset {args.model}, "
        f"TP {[c.tp_start, c.tp_exit]}"
    )

    def sides(s: str, depth: int, fill: bool) -> dict[str, dict[str, dict[str, float]]]:
        out = {}
        for i, q in enumerate(splits[s]):
            lex = dict(first[s].get(q, [])[:depth])
            top = np.argsort(-cos[s][i])[:depth]
            dense = {doc_ids[j]: float(cos[s][i, j]) for j in top}
            if fill:
                dense.update({d: float(cos[s][i, row[d]]) for d in lex})
            out[q] = {"dense": dense, "bm25": lex}
        return out

    ndcg = p.ndcg

    print(
        f"BM25 nDCG@10: train {ndcg(first['train'], 'train'):.2f}, "
        f"test {ndcg(first['test'], 'test'):.2f}\n"
    )
    print("| depth | dense side | normalisation | weight (train) | train | test |")
    print("|---:|---|---|---:|---:|---:|")
    for depth in (int(x) for x in args.depths.split(",")):
        for fill in (False, True):
            cand = {s: sides(s, depth, fill) for s in splits}
            for norm, fuse in (("min-max", minmax_fusion), ("z-score", z_fusion)):

                def run(s, w, cand=cand, fuse=fuse):
                    return {
                        q: fuse(sd, {"dense": w, "bm25": 1.0})[:100] for q, sd in cand[s].items()
                    }

                grid = {w: ndcg(run("train", w), "train") for w in beir.DENSE_WEIGHTS}
                w = max(grid, key=lambda w: (grid[w], -w))
                label = "top-k + every BM25 candidate" if fill else "top-k"
                print(
                    f"| {depth} | {label} | {norm} | {w} | {grid[w]:.2f} "
                    f"| {ndcg(run('test', w), 'test'):.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    sys.exit(main())
