"""Sweep TP ranges x output layers x pooling per prompt pair on SciFact *train* (GPU-sized).

``retrieval_grid.py`` runs the whole ``tpr eval beir`` report per configuration at the shipped
output layer; that is all a CPU can afford. With a GPU one corpus pass per (prompt, TP range)
yields every output layer and pooling at once (``TPEmbedder.encode_grid``), so this script
scores all of them on train queries only, dense alone and fused with BM25 (normalised-score
fusion, the weight chosen on the same train queries, as the product's default is chosen).
Test queries are never looked at: pick here, then report the choice with ``tpr eval beir``.

    python benchmarks/retrieval_sweep.py --device cuda --dtype float32 --tf32 \\
        --prompts "prompteol/-,topic-passage/topic-query" --ranges "vanilla,1-3,2-5" \\
        --layers 6,8,10,12,14,16,18 --out benchmarks/out/sweep.json

A prompt pair is ``DOC/QUERY`` (``-`` = the document prompt for queries too).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from machine import describe  # benchmarks/machine.py

from retriever import EmbedderConfig, TPEmbedder
from retriever.embed.embedder import combine_poolings
from retriever.evaluation import beir
from retriever.evaluation.sts import default_data_dir


def parse_ranges(spec: str) -> list[tuple[int, int] | None]:
    out: list[tuple[int, int] | None] = []
    for r in spec.split(","):
        out.append(None if r == "vanilla" else tuple(int(x) for x in r.split("-")))
    return out


def top_k(doc_ids, queries, qv: np.ndarray, dv: np.ndarray, device: str, k: int = 100):
    """Exact inner-product top-k on ``device`` (the sweep scores hundreds of settings)."""
    q = torch.from_numpy(qv).to(device)
    d = torch.from_numpy(dv).to(device)
    scores, idx = (q @ d.T).topk(k, dim=1)
    scores, idx = scores.cpu().numpy(), idx.cpu().numpy()
    return {
        qid: [(doc_ids[j], float(s)) for j, s in zip(idx[i], scores[i], strict=True)]
        for i, qid in enumerate(queries)
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--limit-docs", type=int, default=0, help="0 = the full corpus")
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--prompts", default="prompteol/-")
    ap.add_argument("--ranges", default="vanilla,2-5")
    ap.add_argument("--layers", default="18")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--tf32", action="store_true", help="TF32 matmuls on CUDA (faster sweeps)")
    ap.add_argument("--hybrid-top", type=int, default=12, help="fuse the best N dense settings")
    ap.add_argument("--out", type=Path, default=None, help="Write all rows as JSON here.")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    print(f"machine: {describe()}")
    ds = beir.load(args.data or default_data_dir() / "scifact", args.limit_docs or None)
    train = ds.split_queries("train")
    qrels = ds.qrels["train"]
    doc_ids, docs = list(ds.corpus), list(ds.corpus.values())
    bm25 = beir.BM25(ds.corpus).run(train)
    base = beir.ndcg_at(bm25, qrels)
    print(f"{len(docs)} documents, {len(train)} train queries; BM25 train nDCG@10 {base:.2f}")
    layers = [int(x) for x in args.layers.split(",")]
    rows: list[dict] = []
    runs: dict[tuple, dict] = {}
    for pair in args.prompts.split(","):
        doc_prompt, query_prompt = pair.split("/")
        config = EmbedderConfig(
            model=args.model,
            prompt=doc_prompt,
            query_prompt=None if query_prompt == "-" else query_prompt,
            max_length=args.max_length,
            batch_size=args.batch_size,
            device=args.device,
            dtype=args.dtype,
        )
        emb = TPEmbedder.load(config)
        for rng in parse_ranges(args.ranges):
            ok = [n for n in layers if rng is None or n >= rng[1]]
            t = time.perf_counter()
            pools = ["last", "mean"]
            dg = emb.encode_grid(docs, [rng], ok, pools)
            qg = emb.encode_grid(
                list(train.values()), [rng], ok, pools, templates=emb.config.query_templates()
            )
            for n in ok:
                for pool in ("last", "mean", "last+mean"):
                    parts = ("last", "mean") if pool == "last+mean" else (pool,)
                    dv = combine_poolings([dg[(rng, n, p)] for p in parts])
                    qv = combine_poolings([qg[(rng, n, p)] for p in parts])
                    run = top_k(doc_ids, train, qv, dv, str(emb.backbone.device))
                    key = (pair, "vanilla" if rng is None else f"{rng[0]}-{rng[1]}", n, pool)
                    runs[key] = run
                    rows.append(
                        dict(zip(("prompts", "tp", "layer", "pooling"), key, strict=True))
                        | {"dense": round(beir.ndcg_at(run, qrels), 2)}
                    )
            print(f"{pair} {rng}: {time.perf_counter() - t:.0f}s", file=sys.stderr, flush=True)
            if args.out:  # after every pass, so a run cut short keeps what it measured
                args.out.write_text(json.dumps({"bm25_train": round(base, 2), "rows": rows}))
        del emb
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    rows.sort(key=lambda r: -r["dense"])
    for r in rows[: args.hybrid_top]:
        key = (r["prompts"], r["tp"], r["layer"], r["pooling"])
        w, grid = beir.choose_weight(runs[key], bm25, qrels, "score")
        r["hybrid_weight"], r["hybrid"] = w, round(grid[w], 2)
    print("| prompts | TP | layer | pooling | dense | score-fusion w | hybrid |")
    print("|---|---|---:|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['prompts']} | {r['tp']} | {r['layer']} | {r['pooling']} | {r['dense']:.2f} | "
            f"{r.get('hybrid_weight', '')} | {r.get('hybrid', '')} |"
        )
    if args.out:
        args.out.write_text(json.dumps({"bm25_train": round(base, 2), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
