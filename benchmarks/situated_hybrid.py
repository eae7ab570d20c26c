"""Choose a situated system's default hybrid (score fusion, dense weight) on SciFact *train*.

The product's path, as in ``benchmarks/situated.py``: the SciFact train cut of
``situated_layers.train_cut`` written one file per document, indexed by ``Indexer`` with the
system's settings (the product's default chunks unless ``--chunk-size``), searched by
``Searcher`` in hybrid mode with score fusion at each dense weight in ``--weights`` (BM25
weighs 1), a document ranked by its best chunk. The weight with the best train nDCG@10 is the
one to record in ``retriever.embed.config.DEFAULT_HYBRID``; test queries are never read here.

    python benchmarks/situated_hybrid.py [--systems late] [--weights 0.1,0.2,...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import header, save
from situated import per_query, run, write
from situated_layers import train_cut

from retriever import EmbedderConfig
from retriever.embed.factory import load_embedder
from retriever.index.indexer import DEFAULT_CHUNK_SIZE, Indexer, IndexOptions
from retriever.search.searcher import Searcher

SYSTEMS = {
    "late": lambda: EmbedderConfig.for_strategy("late"),
    "situated": lambda: EmbedderConfig.for_strategy("situated"),
    "TP preset (today's default)": lambda: EmbedderConfig.for_strategy("tp"),  # --tp-preset
}


def mean_ndcg(run_: dict, qrels: dict) -> float:
    return float(np.mean(list(per_query(run_, qrels).values())))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=500)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--chunk-size", type=int, default=None, help="default: the product's")
    ap.add_argument("--systems", default="late")
    ap.add_argument("--weights", default="0.1,0.2,0.3,0.5,0.7,1.0,1.5")
    ap.add_argument("--out", type=Path, default=Path("results/situated_hybrid.json"))
    args = ap.parse_args()
    header()
    data = train_cut(args.docs, args.queries)
    qrels = data.qrels["train"]
    weights = [float(w) for w in args.weights.split(",")]
    raw: dict = json.loads(args.out.read_text()) if args.out.exists() else {}
    raw.update(docs=len(data.corpus), queries=len(qrels), chunk_size=args.chunk_size)
    with tempfile.TemporaryDirectory(prefix="tpr-hybrid-") as tmp:
        folder = Path(tmp) / "corpus"
        doc_of = write(folder, data)
        for label in args.systems.split(","):
            embedder = load_embedder(SYSTEMS[label]())
            index = Path(tmp) / f"ix-{label.split()[0]}"
            cpu = time.process_time()
            size = args.chunk_size
            options = IndexOptions(chunk_size=size, overlap=size // 8 if size else None)
            Indexer(embedder, options).sync(folder, index)
            cpu = time.process_time() - cpu
            searcher = Searcher(index, embedder)
            try:
                row: dict = {"cpu_s": cpu, "hybrid": {}}
                q = data.queries
                row["dense"] = mean_ndcg(run(searcher, q, doc_of, "dense"), qrels)
                raw["bm25"] = mean_ndcg(run(searcher, q, doc_of, "bm25"), qrels)
                for w in weights:
                    fused = run(searcher, q, doc_of, "hybrid", fusion="score", weights={"dense": w})
                    row["hybrid"][str(w)] = mean_ndcg(fused, qrels)
            finally:
                searcher.close()
            raw.setdefault("systems", {})[label] = row
            print(label, row, flush=True)
            args.out.parent.mkdir(exist_ok=True)
            args.out.write_text(json.dumps(raw, indent=1))
    save(args.out.stem, table(raw))
    print(table(raw))


def table(raw: dict) -> str:
    size = raw["chunk_size"] or f"the product's default ({DEFAULT_CHUNK_SIZE})"
    lines = [
        f"SciFact train cut: {raw['docs']} docs, {raw['queries']} train queries, chunks of "
        f"{size} tokens; nDCG@10 by document. BM25: **{raw['bm25']:.2f}**. Hybrid = score "
        "fusion, BM25 weight 1, the dense weight below.",
        "",
    ]
    ws = sorted({w for r in raw["systems"].values() for w in r["hybrid"]}, key=float)
    lines += [
        "| system | dense | " + " | ".join(f"w={w}" for w in ws) + " | best | CPU s |",
        "|---|---:|" + "---:|" * len(ws) + "---|---:|",
    ]
    for label, r in raw["systems"].items():
        best = max(r["hybrid"], key=r["hybrid"].get)
        cells = [f"{r['hybrid'][w]:.2f}" if w in r["hybrid"] else "" for w in ws]
        lines.append(
            f"| {label} | {r['dense']:.2f} | " + " | ".join(cells) + f" | w={best} | "
            f"{r['cpu_s']:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
