"""Hand-written questions about the demo corpus: does each search mode find the right topic?

SciFact measures scientific claims against abstracts; a user of ``tpr demo`` types questions
such as "how do I catch an exception". These 20 questions (written before looking at any
results; each names the reference topic files that answer it) are searched in bm25, dense and
hybrid mode, with each index's default fusion, over one or more indexes of ``data/python-docs``.
A question is a hit at rank r when a result from one of its files is r-th in the top 5.

It is a small, single-author set: use it to see how modes compare on conversational questions,
not to tune anything.

    tpr demo && tpr index data/python-docs --index python-docs-minilm --model minilm
    python benchmarks/demo_questions.py --indexes python-docs,python-docs-minilm
"""

from __future__ import annotations

import argparse
from pathlib import Path

from machine import describe  # benchmarks/machine.py

from retriever.index.settings import load_index_embedder
from retriever.index.store import resolve_index
from retriever.search.searcher import Searcher

QUESTIONS: tuple[tuple[str, frozenset[str]], ...] = tuple(
    (q, frozenset(files.split()))
    for q, files in (
        ("how does the with statement work", "with.txt context-managers.txt"),
        ("how do I catch an exception", "try.txt exceptions.txt"),
        ("what does yield do in a function", "yield.txt"),
        ("how are default argument values evaluated", "function.txt"),
        ("how do I raise an exception from another one", "raise.txt"),
        ("what is the difference between is and ==", "comparisons.txt"),
        ("how do I format a float with two decimal places", "formatstrings.txt"),
        ("how do I merge two dictionaries", "typesmapping.txt dict.txt"),
        ("what does the global statement do", "global.txt"),
        ("how does slicing with a step work", "slicings.txt typesseq.txt"),
        (
            "how do I customise what happens when an object is created",
            "customization.txt class.txt",
        ),
        ("what happens to the else clause of a loop after break", "for.txt break.txt while.txt"),
        ("how do I write an anonymous function", "lambda.txt"),
        ("can I put underscores in integer literals", "integers.txt"),
        ("which values count as false", "truth.txt booleans.txt"),
        ("how do I import a submodule from a package", "import.txt"),
        ("how do coroutines wait for each other", "await.txt async.txt"),
        ("how do I remove an item from a list", "typesseq-mutable.txt del.txt"),
        ("operator precedence table", "operator-summary.txt"),
        ("how do I split a string on whitespace", "string-methods.txt"),
    )
)
MODES = ("bm25", "dense", "hybrid")
# On an index built with --sparse, also the sparse words alone and as a third hybrid side, at
# the weight that SciFact train chose for sparse + BM25 (benchmarks/RESULTS.md), fixed here.
SPARSE_MODES = ("sparse", "hybrid+sparse", "dense+sparse")
SPARSE_WEIGHT = 0.2
# The LLM alone (no BM25): dense x0.5 + sparse x1, the fusion SciFact train chose for it.
LLM_ONLY = {"dense": 0.5, "sparse": 1.0, "bm25": 0.0}


def first_hit(searcher: Searcher, question: str, files: frozenset[str], mode: str, k: int):
    """1-based rank of the first result from one of ``files``, or None."""
    kw: dict = {"mode": mode}
    if mode == "hybrid+sparse":
        fusion, weights = searcher.default_hybrid()
        kw = {"mode": "hybrid", "fusion": fusion, "weights": {**weights, "sparse": SPARSE_WEIGHT}}
    elif mode == "dense+sparse":
        kw = {"mode": "hybrid", "fusion": "score", "weights": LLM_ONLY}
    for rank, r in enumerate(searcher.search(question, k=k, **kw), start=1):
        if Path(r.path).name in files:
            return rank
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--indexes", default="python-docs", help="Comma-separated index names.")
    ap.add_argument("-k", type=int, default=5)
    args = ap.parse_args()
    print(f"machine: {describe()}")
    summary = []
    for name in args.indexes.split(","):
        index_dir = resolve_index(name)
        searcher = Searcher(index_dir, load_index_embedder(index_dir))
        model = searcher.embedder.config.model
        fusion, weights = searcher.default_hybrid()
        print(f"\n{name}: model {model}, hybrid = {fusion} fusion, dense x{weights['dense']}")
        modes = MODES + (SPARSE_MODES if "sparse_scale" in searcher.store.meta() else ())
        print("| question | " + " | ".join(modes) + " |\n|---|" + "---:|" * len(modes))
        ranks: dict[str, list] = {m: [] for m in modes}
        for question, files in QUESTIONS:
            row = [first_hit(searcher, question, files, m, args.k) for m in modes]
            for m, r in zip(modes, row, strict=True):
                ranks[m].append(r)
            print(f"| {question} | " + " | ".join(str(r or "-") for r in row) + " |")
        searcher.close()
        for m in modes:
            hits = [r for r in ranks[m] if r]
            mrr = sum(1 / r for r in hits) / len(QUESTIONS)
            summary.append(
                f"| {name} | {m} | {len(hits)}/{len(QUESTIONS)} | "
                f"{sum(r == 1 for r in hits)}/{len(QUESTIONS)} | {mrr:.3f} |"
            )
    print(f"\n| index | mode | hit@{args.k} | hit@1 | MRR@{args.k} |\n|---|---|---:|---:|---:|")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
