"""Semantic textual similarity (STS) evaluation: Spearman correlation of cosine similarities.

Data layouts (``tpr eval sts --data DIR``; DIR defaults to ``../shared/data``):

* ``stsbenchmark/sts-{dev,test}.csv``: tab-separated, score in column 5, sentences in 6 and 7
  (some lines carry extra trailing fields, which are ignored).
* ``senteval/SentEval/data/downstream/STS/STS1{2..6}-en-test/STS.{input,gs}.<subset>.txt``:
  SentEval's layout. A year's subsets are pooled and one Spearman is taken over all its pairs,
  as SentEval's "all" setting used by SimCSE, PromptEOL and the TP paper. Pairs without a gold
  score (blank lines in STS16) are skipped.
* ``senteval/.../SICK/SICK_{test_annotated,trial}.txt``: SICK-R relatedness (trial = dev).

Splits: ``test`` has all seven tasks; ``dev`` has STS-B dev and SICK-R trial.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from ..errors import DataNotFoundError

TEST_TASKS = ("STS12", "STS13", "STS14", "STS15", "STS16", "STSB", "SICKR")
DEV_TASKS = ("STSB", "SICKR")


@dataclass
class STSTask:
    """Sentence pairs and gold scores of one task (one split)."""

    name: str
    left: list[str]
    right: list[str]
    gold: np.ndarray

    def sentences(self) -> list[str]:
        """Unique sentences, in first-seen order (embedded once each)."""
        return list(dict.fromkeys([*self.left, *self.right]))


def default_data_dir() -> Path:
    """``$TPR_DATA_DIR``, else ``../shared/data`` beside the current directory."""
    env = os.environ.get("TPR_DATA_DIR")
    return Path(env) if env else Path.cwd().parent / "shared" / "data"


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise DataNotFoundError(
            f"{what} not found at {path}; pass --data DIR (the folder that holds stsbenchmark/ and "
            "senteval/) or set TPR_DATA_DIR"
        )
    return path


def _read_lines(path: Path) -> list[str]:
    # SICK's test file has CRLF endings; splitlines() handles both.
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


def _stsb(data: Path, split: str) -> STSTask:
    path = _need(data / "stsbenchmark" / f"sts-{split}.csv", f"STS-B {split}")
    left, right, gold = [], [], []
    with path.open(encoding="utf-8") as f:
        for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(row) >= 7:
                gold.append(float(row[4]))
                left.append(row[5])
                right.append(row[6])
    return STSTask("STSB", left, right, np.array(gold))


def _senteval_year(data: Path, year: int) -> STSTask:
    root = _need(
        data / "senteval" / "SentEval" / "data" / "downstream" / "STS" / f"STS{year}-en-test",
        f"STS{year}",
    )
    left, right, gold = [], [], []
    for inp in sorted(root.glob("STS.input.*.txt")):
        subset = inp.name[len("STS.input.") : -len(".txt")]
        gs = _read_lines(root / f"STS.gs.{subset}.txt")
        pairs = _read_lines(inp)
        for pair, score in zip(pairs, gs, strict=True):
            if not score.strip():
                continue
            a, b = pair.split("\t")[:2]
            left.append(a)
            right.append(b)
            gold.append(float(score))
    return STSTask(f"STS{year}", left, right, np.array(gold))


def _sick(data: Path, split: str) -> STSTask:
    name = "SICK_test_annotated.txt" if split == "test" else "SICK_trial.txt"
    path = _need(data / "senteval" / "SentEval" / "data" / "downstream" / "SICK" / name, "SICK-R")
    left, right, gold = [], [], []
    for line in _read_lines(path)[1:]:
        cols = line.split("\t")
        if len(cols) >= 4:
            left.append(cols[1])
            right.append(cols[2])
            gold.append(float(cols[3]))
    return STSTask("SICKR", left, right, np.array(gold))


def load_task(name: str, data: Path, split: str = "test") -> STSTask:
    """Load one task by name (STS12..STS16, STSB, SICKR) for a split (dev or test)."""
    name = name.upper().replace("-", "")
    if name == "STSB":
        return _stsb(data, split)
    if name == "SICKR":
        return _sick(data, split)
    if name in TEST_TASKS:
        if split != "test":
            raise DataNotFoundError(f"{name} has only a test split")
        return _senteval_year(data, int(name[3:]))
    raise DataNotFoundError(f"unknown STS task {name!r}; choose from {', '.join(TEST_TASKS)}")


def spearman(task: STSTask, vectors: dict[str, np.ndarray]) -> float:
    """Spearman x 100 between gold scores and cosine similarities of the pairs."""
    a = np.stack([vectors[s] for s in task.left])
    b = np.stack([vectors[s] for s in task.right])
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return float(spearmanr(cos, task.gold).statistic) * 100


def evaluate(
    tasks: Sequence[STSTask],
    encode: Callable[[list[str]], dict[str, np.ndarray]],
) -> dict[str, dict[str, float]]:
    """Score every system on every task.

    Args:
        tasks: the tasks.
        encode: maps all unique sentences to ``{system name: [N, H] array}`` in input order, so a
            caller can produce several systems (vanilla, TP, several layers) from one pass.

    Returns:
        ``{system: {task: spearman, ..., "avg": mean}}``.
    """
    sentences = list(dict.fromkeys(s for t in tasks for s in t.sentences()))
    systems = encode(sentences)
    table: dict[str, dict[str, float]] = {}
    for system, matrix in systems.items():
        vectors = dict(zip(sentences, matrix, strict=True))
        row = {t.name: spearman(t, vectors) for t in tasks}
        row["avg"] = float(np.mean(list(row.values())))
        table[system] = row
    return table


# Published test figures, printed beside measured ones so a protocol mismatch shows.
# all-MiniLM-L6-v2: sentence-transformers' model card (STS-B test 82.03).
PUBLISHED = {"minilm": {"STSB": 82.03}}


def format_table(table: dict[str, dict[str, float]], published: dict | None = None) -> str:
    """A markdown table, systems as rows; published figures as extra rows when known."""
    tasks = list(next(iter(table.values())))
    lines = [
        "| system | " + " | ".join(tasks) + " |",
        "|---|" + "---:|" * len(tasks),
    ]
    for system, row in table.items():
        lines.append(f"| {system} | " + " | ".join(f"{row[t]:.2f}" for t in tasks) + " |")
        ref = (published or {}).get(system)
        if ref:
            cells = " | ".join(f"{ref[t]:.2f}" if t in ref else "" for t in tasks)
            lines.append(f"| {system} (published) | {cells} |")
    return "\n".join(lines)
