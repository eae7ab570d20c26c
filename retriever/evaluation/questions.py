"""Tuning an index's search on the user's own questions (``tpr tune --index --queries``).

Design. A labelled question is a query and the file that answers it, or ``file:line`` (a chunk
answers when its citation covers that line). For each question the dense and BM25 lists are
fetched once; every candidate setting is a fusion of those two lists (:data:`CANDIDATES`: BM25
first, dense first, score fusion at several dense weights, RRF), so the grid costs two searches
per question. Reported per candidate: hits@1, hits@5 and MRR@10.

Twenty questions can make any grid look good, so the number that decides is **leave-one-out**:
each question is scored under the candidate chosen on all the *other* questions (by MRR, ties to
the current default), which is what a chosen setting would do on a question it never saw. The
gain over the index's current default is the mean per-question difference of reciprocal ranks,
with a 95% bootstrap interval. ``--apply`` records the candidate chosen on all questions as the
index's search default (meta ``search_default``: the fusion and weights its hybrid search uses
when a request names none); every candidate is a hybrid setting, so every door follows it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..search.fusion import FUSE

DEPTH = 50  # candidates per side, as a search's fetch_k
CANDIDATES: tuple[tuple[str, str, dict[str, float]], ...] = (
    ("score, dense 0 (BM25 first)", "score", {"dense": 0.0, "bm25": 1.0}),
    *(
        (f"score, dense {w:g}", "score", {"dense": w, "bm25": 1.0})
        for w in (0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0)
    ),
    ("score, bm25 0 (dense first)", "score", {"dense": 1.0, "bm25": 0.0}),
    *((f"rrf, dense {w:g}", "rrf", {"dense": w, "bm25": 1.0}) for w in (0.5, 1.0, 2.0)),
)


@dataclass(frozen=True)
class Question:
    """A query and where its answers are: (file, line or None) pairs; any one answers."""

    query: str
    answers: tuple[tuple[str, int | None], ...]


def _place(where: str) -> tuple[str, int | None]:
    file, _, tail = where.rpartition(":")
    return (file, int(tail)) if file and tail.isdigit() else (where, None)


def load_questions(path: Path) -> list[Question]:
    """JSON lines: ``{"query": ..., "file": "docs/a.md"}``, ``"file": "docs/a.md:120"``, or a
    list of such places when several answer.

    Raises:
        ConfigError: a line that is not such an object, naming it.
    """
    out = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            query, where = item["query"], item["file"]
            places = [where] if isinstance(where, str) else list(where)
            if not places or not all(isinstance(p, str) for p in places):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                f"{path}:{number}: each line must be a JSON object with 'query' and 'file' "
                '(e.g. {"query": "how do I log in?", "file": "docs/auth.md:42"})'
            ) from None
        out.append(Question(str(query), tuple(_place(p) for p in places)))
    if len(out) < 2:
        raise ConfigError(f"{path}: give at least 2 questions (leave-one-out needs them)")
    return out


@dataclass
class Tuning:
    """Reciprocal ranks (0 = not in the top 10) per candidate and question, and the choice."""

    labels: list[str]
    default: str  # the label of the index's current default
    rr: dict[str, np.ndarray]  # label -> [questions] reciprocal rank within the top 10
    first: dict[str, np.ndarray]  # label -> [questions] rank of the first answer (0 = none)
    settings: dict[str, tuple[str, dict[str, float]]] = field(default_factory=dict)

    def chosen(self, among: np.ndarray | None = None) -> str:
        """The candidate with the best MRR over ``among`` (default: all), ties to the default."""
        idx = slice(None) if among is None else among
        order = [self.default, *(x for x in self.labels if x != self.default)]
        return max(order, key=lambda x: float(self.rr[x][idx].mean()))

    def leave_one_out(self) -> np.ndarray:
        """Per question, its reciprocal rank under the candidate chosen on the others."""
        n = len(self.rr[self.default])
        return np.array([self.rr[self.chosen(np.delete(np.arange(n), i))][i] for i in range(n)])

    def gain(self, rounds: int = 2000, seed: int = 0) -> tuple[float, float, float]:
        """Mean leave-one-out gain in MRR over the default, with a 95% bootstrap interval."""
        diff = self.leave_one_out() - self.rr[self.default]
        rng = np.random.default_rng(seed)
        means = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(rounds)]
        return (
            float(diff.mean()),
            float(np.percentile(means, 2.5)),
            float(np.percentile(means, 97.5)),
        )

    def rows(self) -> list[dict]:
        """Per candidate: hits@1, hits@5, MRR@10 (as fractions), best MRR first."""
        out = []
        for label in self.labels:
            ranks = self.first[label]
            out.append(
                {
                    "setting": label,
                    "hits@1": float(np.mean(ranks == 1)),
                    "hits@5": float(np.mean((ranks >= 1) & (ranks <= 5))),
                    "mrr@10": float(self.rr[label].mean()),
                    "default": label == self.default,
                }
            )
        return sorted(out, key=lambda r: -r["mrr@10"])


def verdict(tuning: Tuning) -> str:
    """What the leave-one-out interval says about applying the chosen setting, in one line."""
    _, lo, hi = tuning.gain()
    if tuning.chosen() == tuning.default:
        return "the current default is the best setting on these questions: nothing to apply"
    if hi < 0:
        return (
            "keep the current default: on questions it was not chosen on, the winner does worse "
            "(the whole interval is below zero), so --apply would likely hurt"
        )
    if lo <= 0:
        return (
            "no clear gain: the interval includes zero; more questions would tell "
            "(--apply records the winner anyway)"
        )
    return "a clear gain on held-out questions: add --apply to make it this index's default"


def tune(searcher, questions: Sequence[Question]) -> Tuning:
    """Score every candidate (and the index's current default) on ``questions``."""
    fusion, weights = searcher.default_hybrid()
    settings = {label: (f, w) for label, f, w in CANDIDATES}
    default = next((lab for lab, (f, w) in settings.items() if (f, w) == (fusion, weights)), None)
    if default is None:
        default = f"current default ({fusion}, dense {weights.get('dense', 1.0):g})"
        settings = {default: (fusion, weights), **settings}
    labels = list(settings)
    first = {label: np.zeros(len(questions), np.int64) for label in labels}
    for i, q in enumerate(questions):
        ranked = {"dense": searcher.dense(q.query, DEPTH), "bm25": searcher.bm25(q.query, DEPTH)}
        ids = {cid for side in ranked.values() for cid, _ in side}
        rows = searcher.store.rows.chunk_rows(sorted(ids))
        good = {cid for cid, r in rows.items() if _answers(r, q)}
        for label, (f, w) in settings.items():
            order = [cid for cid, _ in FUSE[f](ranked, w)][:10]
            hit = next((k for k, cid in enumerate(order, start=1) if cid in good), 0)
            first[label][i] = hit
    rr = {label: np.where(r > 0, 1.0 / np.maximum(r, 1), 0.0) for label, r in first.items()}
    return Tuning(labels, default, rr, first, settings)


def _answers(row: dict, q: Question) -> bool:
    a, b = row.get("start_line"), row.get("end_line")
    return any(
        row["path"] == path
        and (line is None or (a is not None and b is not None and a <= line <= b))
        for path, line in q.answers
    )


def apply(index_dir: Path, tuning: Tuning) -> dict:
    """Record the candidate chosen on all questions as the index's search default."""
    from ..index.store import Store

    fusion, weights = tuning.settings[tuning.chosen()]
    value = {"fusion": fusion, "weights": weights, "questions": len(tuning.rr[tuning.default])}
    with Store.writer(index_dir, create=False) as store:
        store.set_meta(search_default=value)
    return value
