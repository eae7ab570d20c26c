"""Byte-identical rankings across a refactor: search a fixed index with a fixed set of requests
on both engines (local FAISS + FTS5, and Milvus Lite mirroring the same SQLite) and write every
ranking (chunk ids and scores to 6 decimals) as JSON. Run it before and after a change to the
search path and diff the two files: nothing may move.

The known-item set is the demo questions (benchmarks/demo_questions.py) over the demo folder,
each in bm25, dense and hybrid mode, with a file-type filter, a path glob, a heading glob, a
LangChain-style ``where`` expression and MMR. The index is built once (the default model, its
retrieval preset) and its Milvus twin mirrors the same SQLite file (nothing re-embedded).

    python benchmarks/rankings_snapshot.py --out benchmarks/results/rankings-before.json
    # ... change the code ...
    python benchmarks/rankings_snapshot.py --out /tmp/rankings-after.json
    cmp benchmarks/results/rankings-before.json /tmp/rankings-after.json
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from demo_questions import QUESTIONS  # benchmarks/demo_questions.py

from retriever.demo import write_python_docs
from retriever.embed.factory import LazyEmbedder
from retriever.index.indexer import Indexer, IndexOptions
from retriever.index.settings import index_settings, load_index_embedder
from retriever.index.store import resolve_index
from retriever.search.filters import Filter, as_filter
from retriever.search.searcher import Searcher

VARIANTS: dict[str, dict] = {
    "plain": {},
    "suffix": {"flt": Filter(suffixes=(".txt",))},
    "glob": {"flt": Filter(path_glob="[a-m]*")},
    "where": {"flt": as_filter({"source": {"$nin": ["with.txt", "try.txt", "yield.txt"]}})},
    "mmr": {"mmr": True, "lambda_mult": 0.5},
}


def build(docs: Path, index_dir: Path, milvus: bool) -> None:
    config = index_settings(index_dir, {})
    opts = IndexOptions(engine="local" if milvus else None)
    Indexer(LazyEmbedder(config), opts).sync(docs, index_dir, progress=True)


def snapshot(index_dir: Path, embedder) -> dict:
    s = Searcher(index_dir, embedder)
    out = {}
    try:
        for q, _ in QUESTIONS:
            for mode in ("bm25", "dense", "hybrid"):
                for name, kw in VARIANTS.items():
                    res = s.search(q, k=10, mode=mode, **kw)
                    out[f"{mode}|{name}|{q}"] = [[r.chunk_id, round(r.score, 6)] for r in res]
    finally:
        s.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--docs", type=Path, default=Path("data/python-docs"))
    p.add_argument("--index", default="rankings-demo")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    if not args.docs.is_dir():
        write_python_docs(args.docs)
    local = resolve_index(args.index)
    twin = local.parent / (local.name + "-milvus")
    build(args.docs, local, milvus=False)
    if not twin.exists():  # the same SQLite, mirrored into Milvus Lite: nothing re-embedded
        shutil.copytree(local, twin)
        build(args.docs, twin, milvus=True)
    embedder = load_index_embedder(local)
    result = {"faiss": snapshot(local, embedder), "milvus": snapshot(twin, embedder)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=0, sort_keys=True))
    n = sum(len(v) for v in result.values())
    print(f"wrote {n} rankings to {args.out}")


if __name__ == "__main__":
    main()
