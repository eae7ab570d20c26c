"""Indexing speed on SciFact through the real indexer (files on disk -> SQLite + FAISS).

Writes the SciFact corpus (title + abstract, one file per document) into a temporary folder,
indexes it with the default model, and reports wall time, chunks/s, the share of time spent
outside the model (target < 10%), peak RSS (target: bounded: indexing streams files and commits
groups, it does not hold the corpus or all vectors in memory), and a second run on the
unchanged folder (target < 5 s). The peer, all-MiniLM-L6-v2 (``--peer minilm``), then indexes
the same folder into a second index in the same run, through the same indexer, for the ratio.

    python benchmarks/index_speed.py [--data ../shared/data/scifact] [--limit N]
    python benchmarks/index_speed.py --demo --retrieval      # the `tpr demo` folder, as tpr index

``--demo`` indexes the `tpr demo` folder (CPython's pydoc topics) instead of SciFact, and
``--retrieval`` uses the settings ``tpr index`` uses (the model's retrieval preset) instead of
the STS ones.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from machine import describe  # benchmarks/machine.py

from retriever import EmbedderConfig, TPEmbedder
from retriever.index.indexer import Indexer, IndexOptions


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    ap.add_argument("--limit", type=int, default=None, help="First N documents only.")
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--chunk-size", type=int, default=256)
    ap.add_argument("--peer", default="minilm", help="Peer embedder ('none' to skip).")
    ap.add_argument("--dtype", default="auto", help="auto (bf16 where native and faster), float32")
    ap.add_argument("--demo", action="store_true", help="Index the tpr demo folder instead.")
    ap.add_argument("--retrieval", action="store_true", help="tpr index's retrieval preset.")
    args = ap.parse_args()
    print(f"machine: {describe()}")

    with tempfile.TemporaryDirectory() as tmp:
        root, index = Path(tmp) / "docs", Path(tmp) / "index"
        root.mkdir()
        n = 0
        if args.demo:
            from retriever.demo import write_python_docs

            n = write_python_docs(root)
        else:
            with (args.data / "corpus.jsonl").open() as f:
                for line in f:
                    d = json.loads(line)
                    (root / f"{d['_id']}.txt").write_text(f"{d['title']}\n\n{d['text']}\n")
                    n += 1
                    if args.limit and n >= args.limit:
                        break
        t = time.perf_counter()
        make = EmbedderConfig.for_retrieval if args.retrieval else EmbedderConfig
        embedder = TPEmbedder.load(make(model=args.model, dtype=args.dtype))
        print(f"TP model dtype: {embedder.model.dtype}")
        load_s = time.perf_counter() - t
        rss_loaded = rss_mib()
        indexer = Indexer(embedder, IndexOptions(chunk_size=args.chunk_size))
        first = indexer.sync(root, index)
        rss_indexed = rss_mib()
        again = indexer.sync(root, index)
        db_mib = (index / "index.db").stat().st_size / 2**20
        peer = None
        if args.peer != "none":
            from retriever.embed.factory import load_embedder

            peer_emb = load_embedder(EmbedderConfig(model=args.peer))
            peer_opts = IndexOptions(chunk_size=args.chunk_size)
            peer = Indexer(peer_emb, peer_opts).sync(root, Path(tmp) / "peer-index")

    outside = 1 - first.embed_seconds / first.seconds
    what = "tpr demo's pydoc topics" if args.demo else "SciFact corpus"
    print(f"documents: {n} ({what}{'' if not args.limit else f', first {args.limit}'})")
    print(f"model load: {load_s:.1f}s; peak RSS after load {rss_loaded:.0f} MiB\n")
    print("| run | files | chunks | wall s | chunks/s | model s | outside model | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| first | {first.added} | {first.chunks} | {first.seconds:.1f} | "
        f"{first.chunks_per_second:.2f} | {first.embed_seconds:.1f} | {outside:.1%} | "
        f"{rss_indexed:.0f} |"
    )
    print(
        f"| unchanged re-run | {again.unchanged} | {again.chunks} | {again.seconds:.2f} | - | "
        f"{again.embed_seconds:.1f} | - | {rss_mib():.0f} |"
    )
    print(f"\nindex.db: {db_mib:.1f} MiB")
    if peer is not None:
        print(f"\n| embedder | files | chunks | wall s | chunks/s | model s | {args.peer} / TP |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        print(
            f"| {args.model} (TP) | {first.added} | {first.chunks} | {first.seconds:.1f} | "
            f"{first.chunks_per_second:.2f} | {first.embed_seconds:.1f} | |"
        )
        ratio = peer.chunks_per_second / first.chunks_per_second
        print(
            f"| {args.peer} | {peer.added} | {peer.chunks} | {peer.seconds:.1f} | "
            f"{peer.chunks_per_second:.2f} | {peer.embed_seconds:.1f} | {ratio:.1f}x |"
        )
        print(f"({args.peer} chunks at most {args.chunk_size} of its own word pieces)")


if __name__ == "__main__":
    main()
