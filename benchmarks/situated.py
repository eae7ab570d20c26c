"""Situated chunks against chunk-alone TP (today's preset), echo, MiniLM and BM25 (issue 24).

The product's own path, side by side in one run: each corpus is written one file per document,
indexed by ``Indexer`` with each system's settings (chunks of ``--chunk-size`` tokens), and
searched by ``Searcher`` (dense, and hybrid with the index's default fusion); a document's rank
is that of its best chunk. BM25 is the index's FTS5. Per system: nDCG@10 by document, the
corpus pass's CPU seconds (``time.process_time``, indexing only) and per-query wins/losses
against today's preset. No setting is chosen on these test queries: echo and situated use the
echo strategy's layer and pooling (chosen on SciFact *train* last round), situated its window.

Corpora: nq-utd (all 800 passages, 80 test queries, never tuned on) and a SciFact *test* cut
(every document judged for a test query plus random others, seed 0).

    python benchmarks/situated.py [--chunk-size 128] [--scifact-docs 700] [--systems ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import header, save, wins_losses

from retriever import EmbedderConfig
from retriever.embed.factory import load_embedder
from retriever.evaluation.beir import BeirData, load, ndcg_at
from retriever.index.indexer import Indexer, IndexOptions
from retriever.search.searcher import Searcher

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
SYSTEMS = {
    # The default until issue 24 made late chunking the default (--tp-preset since); the label
    # stays, as the key of the results already recorded.
    "TP preset (today's default)": lambda: EmbedderConfig.for_strategy("tp"),
    "echo (chunk alone)": lambda: EmbedderConfig.for_strategy("echo"),
    "situated (window 1024)": lambda: EmbedderConfig.for_strategy("situated"),
    "late (window 1024)": lambda: EmbedderConfig.for_strategy("late"),
    "all-MiniLM-L6-v2": lambda: EmbedderConfig(model="minilm"),
}


def scifact_test_cut(docs: int, seed: int = 0) -> BeirData:
    data = load(DATA / "scifact")
    judged = {d for rel in data.qrels["test"].values() for d in rel if d in data.corpus}
    rest = sorted(set(data.corpus) - judged)
    rng = np.random.default_rng(seed)
    extra = rng.choice(len(rest), size=max(0, docs - len(judged)), replace=False)
    keep = judged | {rest[i] for i in extra}
    corpus = {k: v for k, v in data.corpus.items() if k in keep}
    return BeirData(corpus, data.queries, {"test": data.qrels["test"]})


def write(folder: Path, data: BeirData) -> dict[str, str]:
    folder.mkdir(parents=True)
    paths = {}
    for i, (doc_id, text) in enumerate(data.corpus.items()):
        name = f"d{i:05}.txt"
        (folder / name).write_text(text)
        paths[name] = doc_id
    return paths


def run(searcher: Searcher, queries: dict[str, str], doc_of: dict[str, str], mode: str, **kw):
    """Each query's documents ranked by their best chunk (``kw``: more search options)."""
    out = {}
    for q, text in queries.items():
        seen: dict[str, float] = {}
        for r in searcher.search(text, k=100, mode=mode, fetch_k=200, **kw):
            seen.setdefault(doc_of[r.path], r.score)
        out[q] = list(seen.items())
    return out


def per_query(run_, qrels) -> dict[str, float]:
    return {q: ndcg_at({q: run_.get(q, [])}, {q: rel}) for q, rel in qrels.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunk-size", type=int, default=128)
    ap.add_argument("--scifact-docs", type=int, default=700)
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--out", type=Path, default=Path("results/situated.json"))
    ap.add_argument("--corpora", default="nq-utd,SciFact test cut")
    ap.add_argument("--resume", action="store_true", help="keep what --out already holds")
    args = ap.parse_args()
    header()
    corpora = {
        "nq-utd": load(DATA / "nq-utd"),
        "SciFact test cut": scifact_test_cut(args.scifact_docs),
    }
    raw: dict = {"chunk_size": args.chunk_size, "corpora": {}, "systems": {}, "bm25": {}}
    if args.resume and args.out.exists():
        raw = json.loads(args.out.read_text())
        assert raw["chunk_size"] == args.chunk_size
    with tempfile.TemporaryDirectory(prefix="tpr-situated-") as tmp:
        folders = {}
        for name, data in corpora.items():
            folder = Path(tmp) / name.replace(" ", "-")
            folders[name] = (folder, write(folder, data))
            qrels = data.qrels["test"]
            raw["corpora"][name] = {"docs": len(data.corpus), "queries": len(qrels)}
        for label in args.systems.split(","):
            done = raw["systems"].get(label, {})
            wanted = [n for n in args.corpora.split(",") if n not in done]
            if not wanted:
                continue
            embedder = load_embedder(SYSTEMS[label]())
            raw["systems"].setdefault(label, {})
            for name in wanted:
                data = corpora[name]
                folder, doc_of = folders[name]
                qrels = data.qrels["test"]
                queries = {q: data.queries[q] for q in qrels}
                index = Path(tmp) / f"ix-{len(raw['systems'])}-{folder.name}"
                cpu, wall = time.process_time(), time.perf_counter()
                options = IndexOptions(chunk_size=args.chunk_size, overlap=args.chunk_size // 8)
                report = Indexer(embedder, options).sync(folder, index)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                searcher = Searcher(index, embedder)
                try:
                    res = {"cpu_s": cpu, "wall_s": wall, "chunks": report.chunks}
                    for mode in ("dense", "hybrid", "bm25"):
                        if mode == "bm25" and name in raw["bm25"]:
                            continue  # FTS5 over the same chunks: the same for every system
                        pq = per_query(run(searcher, queries, doc_of, mode), qrels)
                        out = {"ndcg10": float(np.mean(list(pq.values()))), "per_query": pq}
                        (
                            raw["bm25"].__setitem__(name, out)
                            if mode == "bm25"
                            else res.update({mode: out})
                        )
                finally:
                    searcher.close()
                raw["systems"][label][name] = res
                print(
                    label,
                    name,
                    {m: res[m]["ndcg10"] for m in ("dense", "hybrid")},
                    f"{cpu:.0f} CPU s",
                    flush=True,
                )
                args.out.parent.mkdir(exist_ok=True)
                args.out.write_text(json.dumps(raw, indent=1))
    save(args.out.stem, table(raw))
    print(table(raw))


def table(raw: dict) -> str:
    names = list(raw["corpora"])
    first = next(iter(SYSTEMS))  # today's preset: what the others are compared with
    bm25 = {n: f"{raw['bm25'][n]['ndcg10']:.2f}" for n in names if n in raw["bm25"]}
    corpora = "; ".join(
        f"{n}: {c['docs']} docs, {c['queries']} queries" for n, c in raw["corpora"].items()
    )
    lines = [
        f"Chunks of {raw['chunk_size']} tokens; nDCG@10 by document (its best chunk), test "
        f"queries. {corpora}.",
        "",
        "| system | " + " | ".join(f"{n} dense | {n} hybrid | {n} CPU s" for n in names) + " |",
        "|---|" + "---:|" * (3 * len(names)),
        "| BM25 | " + " | ".join(f"{bm25.get(n, '')} | | " for n in names) + " |",
    ]
    for label, per in raw["systems"].items():
        cells = []
        for n in names:
            r = per.get(n)
            cells.append(
                f"{r['dense']['ndcg10']:.2f} | {r['hybrid']['ndcg10']:.2f} | {r['cpu_s']:.0f}"
                if r
                else " | | "
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Per query against today's preset (dense, then hybrid; wins/losses/ties):", ""]
    for label, per in raw["systems"].items():
        if label == first:
            continue
        parts = []
        for n in names:
            if n not in per or n not in raw["systems"].get(first, {}):
                continue
            for mode in ("dense", "hybrid"):
                a = per[n][mode]["per_query"]
                b = raw["systems"][first][n][mode]["per_query"]
                parts.append(f"{n} {mode} {wins_losses([a[q] for q in a], [b[q] for q in a])}")
        lines.append(f"- {label}: " + ", ".join(parts))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
