"""Long documents with chunk-level questions: situated chunks against the rest (issue 24, 4a).

Where situating should pay: real docs folders whose files run to tens of thousands of tokens,
searched with questions a user would type. Two folders, side by side in one run:

- the demo folder (``data/python-docs``, 79 pydoc topics up to 63 kB) with its 20 questions
  (``benchmarks/demo_questions.py``; answered by file);
- a second, held-out docs folder: sqlite-utils' ``docs/`` at a pinned commit with 37 questions
  answered by ``file:line`` (``benchmarks/questions/``; written and committed before any search
  of that folder).

Each system indexes each folder through the product's ``Indexer`` (its default chunking, unless
``--chunk-size``) and is searched by ``Searcher`` in dense and hybrid mode (the index's default
fusion); BM25 is the index's FTS5 over the same chunks. Per system and folder: hits@1, hits@5
and MRR@10 (a question is answered at the first result whose file, and line span when the
question names a line, is one of its places), the indexing CPU seconds (``time.process_time``)
and per-question wins/losses against today's preset by reciprocal rank. Nothing is tuned here.

    python benchmarks/long_docs.py --folder /tmp/sqlite-utils/docs   # see benchmarks/questions/
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from demo_questions import QUESTIONS as DEMO_QUESTIONS
from harness import header, save, wins_losses
from situated import SYSTEMS

from retriever.embed.factory import load_embedder
from retriever.evaluation.questions import Question, load_questions
from retriever.index.indexer import Indexer, IndexOptions
from retriever.search.searcher import Searcher

ROOT = Path(__file__).resolve().parent.parent
MODES = ("dense", "hybrid", "bm25")


def answered(result, q: Question) -> bool:
    """Whether a search result is one of the question's places (file, and line if given)."""
    a, b = result.start_line, result.end_line
    return any(
        Path(result.path).as_posix() == path
        and (line is None or (a is not None and b is not None and a <= line <= b))
        for path, line in q.answers
    )


def first_rank(searcher: Searcher, q: Question, mode: str, k: int = 10) -> int:
    """1-based rank of the first answering result in the top ``k``; 0 when none."""
    for rank, r in enumerate(searcher.search(q.query, k=k, mode=mode), start=1):
        if answered(r, q):
            return rank
    return 0


def reciprocal(ranks) -> np.ndarray:
    """Reciprocal ranks (0 where no answer was in the top 10)."""
    r = np.asarray(ranks)
    return np.where(r > 0, 1.0 / np.maximum(r, 1), 0.0)


def scores(ranks: list[int]) -> dict[str, float]:
    r = np.array(ranks)
    return {
        "hits@1": float(np.mean(r == 1)),
        "hits@5": float(np.mean((r >= 1) & (r <= 5))),
        "mrr@10": float(np.mean(reciprocal(r))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path, required=True, help="sqlite-utils' docs/ folder")
    ap.add_argument(
        "--questions", type=Path, default=ROOT / "benchmarks/questions/sqlite-utils-docs.jsonl"
    )
    ap.add_argument("--chunk-size", type=int, default=None, help="default: the product's")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--out", type=Path, default=Path("results/long_docs.json"))
    ap.add_argument("--resume", action="store_true", help="keep what --out already holds")
    args = ap.parse_args()
    header()
    folders = {
        "demo folder": (
            ROOT / "data/python-docs",
            [Question(q, tuple((f, None) for f in sorted(files))) for q, files in DEMO_QUESTIONS],
        ),
        "sqlite-utils docs": (args.folder, load_questions(args.questions)),
    }
    raw: dict = {"chunk_size": args.chunk_size, "folders": {}, "systems": {}, "bm25": {}}
    if args.resume and args.out.exists():
        raw = json.loads(args.out.read_text())
    for name, (_, qs) in folders.items():
        raw["folders"][name] = {"questions": [q.query for q in qs]}
    with tempfile.TemporaryDirectory(prefix="tpr-long-docs-") as tmp:
        for label in args.systems.split(","):
            done = raw["systems"].setdefault(label, {})
            wanted = [n for n in folders if n not in done]
            if not wanted:
                continue
            embedder = load_embedder(SYSTEMS[label]())
            for name in wanted:
                folder, qs = folders[name]
                index = Path(tmp) / f"ix-{len(raw['systems'])}-{name.replace(' ', '-')}"
                options = IndexOptions()
                if args.chunk_size:
                    options = IndexOptions(chunk_size=args.chunk_size, overlap=args.chunk_size // 8)
                cpu, wall = time.process_time(), time.perf_counter()
                report = Indexer(embedder, options).sync(folder, index)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                searcher = Searcher(index, embedder)
                try:
                    res = {"cpu_s": cpu, "wall_s": wall, "chunks": report.chunks}
                    for mode in MODES:
                        if mode == "bm25" and name in raw["bm25"]:
                            continue
                        ranks = [first_rank(searcher, q, mode) for q in qs]
                        out = {**scores(ranks), "ranks": ranks}
                        if mode == "bm25":
                            raw["bm25"][name] = {**out, "chunks": report.chunks}
                        else:
                            res[mode] = out
                finally:
                    searcher.close()
                done[name] = res
                print(
                    label,
                    name,
                    {m: res[m]["mrr@10"] for m in ("dense", "hybrid")},
                    f"{cpu:.0f} CPU s",
                    flush=True,
                )
                args.out.parent.mkdir(exist_ok=True)
                args.out.write_text(json.dumps(raw, indent=1))
    save("long_docs", table(raw))
    print(table(raw))


def table(raw: dict) -> str:
    names = list(raw["folders"])
    first = next(iter(SYSTEMS))
    size = raw["chunk_size"] or "the product's default (256)"
    lines = [
        f"Chunks of {size} tokens. hits@1 / hits@5 / MRR@10 per question set; CPU s = indexing.",
        "",
        "| system | " + " | ".join(f"{n} dense | {n} hybrid | {n} CPU s" for n in names) + " |",
        "|---|" + "---:|" * (3 * len(names)),
    ]

    def cell(s: dict) -> str:
        return f"{s['hits@1']:.2f} / {s['hits@5']:.2f} / {s['mrr@10']:.3f}"

    bm = [f"{cell(raw['bm25'][n])} | | " if n in raw["bm25"] else " | | " for n in names]
    lines.append("| BM25 | " + " | ".join(bm) + " |")
    for label, per in raw["systems"].items():
        cells = [
            f"{cell(per[n]['dense'])} | {cell(per[n]['hybrid'])} | {per[n]['cpu_s']:.0f}"
            if n in per
            else " | | "
            for n in names
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Per question against today's preset, by reciprocal rank (wins/losses/ties):", ""]
    for label, per in raw["systems"].items():
        if label == first:
            continue
        parts = []
        for n in names:
            base = raw["systems"].get(first, {}).get(n)
            if n not in per or base is None:
                continue
            for mode in ("dense", "hybrid"):
                a, b = reciprocal(per[n][mode]["ranks"]), reciprocal(base[mode]["ranks"])
                parts.append(f"{n} {mode} {wins_losses(a, b)}")
        lines.append(f"- {label}: " + ", ".join(parts))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
