"""A search result: one retrieved chunk with its place (path, lines, heading, page) and every
score that led to it. ``citation`` is the one spelling of ``path:line``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class _Moved(KeyError):
    """A chunk id found by one side of a search is gone when its row is read."""


@dataclass
class Result:
    """One retrieved chunk with every score that led to it.

    ``doc_id`` is the id LangChain sees: the caller's id for a text added through the
    VectorStore, ``chunk-<chunk_id>`` for a chunk of a folder file. ``start_line`` /
    ``end_line`` (1-based) and ``heading`` (Markdown/reST heading path) say where it sits;
    :attr:`citation` is ``path:line``.
    """

    chunk_id: int
    text: str
    path: str
    ordinal: int
    start: int
    end: int
    page: int | None
    score: float
    scores: dict[str, float] = field(default_factory=dict)
    ranks: dict[str, int] = field(default_factory=dict)
    doc_id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    start_line: int | None = None
    end_line: int | None = None
    heading: str | None = None

    @property
    def citation(self) -> str:
        """``path:line`` (``path:first-last`` for a chunk over several lines)."""
        return citation(self.path, self.start_line, self.end_line)

    def as_dict(self) -> dict:
        return {**self.__dict__, "citation": self.citation}


def citation(path: str, start_line: int | None, end_line: int | None) -> str:
    """The one spelling of a chunk's place: ``path:line`` or ``path:first-last``."""
    if start_line is None:
        return path
    last = f"-{end_line}" if end_line and end_line != start_line else ""
    return f"{path}:{start_line}{last}"


def merge_identical(results: list[Result]) -> list[tuple[Result, list[Result]]]:
    """Results whose text is the same (a file copied under two names) shown once: each first
    occurrence, in rank order, with the later results that repeat its text."""
    groups: dict[str, tuple[Result, list[Result]]] = {}
    for r in results:
        key = " ".join(r.text.split())
        if key in groups:
            groups[key][1].append(r)
        else:
            groups[key] = (r, [])
    return list(groups.values())
