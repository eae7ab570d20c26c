"""One search request: what every door (the CLI, the server, both LangChain retrievers, the UI)
builds and the Searcher takes, so no door can drop an option on the way.

The modes and fusion names are defined here and in :mod:`.fusion`, once; the doors list them
from these tuples (``--help``, the server's schema, the UI's pickers).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import ConfigError
from .filters import Filter, as_filter
from .fusion import FUSIONS

MODES = ("hybrid", "dense", "bm25", "sparse")
MAX_K = 10_000  # results (and fusion candidates) per search: more is a mistake, not a need


@dataclass(frozen=True)
class SearchRequest:
    """A search, every option of it.

    Attributes:
        query: the user's text.
        k: results wanted (1..MAX_K).
        mode: one of :data:`MODES`; sparse needs an index built with ``--sparse``.
        filter: which chunks may be returned: a :class:`~retriever.search.filters.Filter`, or
            a dict of its fields or a LangChain-style expression (made a Filter here).
        fetch_k: candidates taken from each side before fusion or MMR.
        fusion: ``rrf`` or ``score`` for hybrid; None: the index's measured default.
        weights: fusion weights per side; None: the default's.
        sparse_weight: > 0 adds the LLM's sparse words as a third hybrid side at this weight
            (dense and BM25 keep the default weights).
        mmr: re-rank the candidates by maximal marginal relevance.
        lambda_mult: MMR's trade-off, 1 = relevance only, 0 = diversity only.
        min_score: drop results below this score (the mode's own scale).
    """

    query: str
    k: int = 5
    mode: str = "hybrid"
    filter: Filter | None = None
    fetch_k: int = 50
    fusion: str | None = None
    weights: dict[str, float] | None = field(default=None, hash=False)
    sparse_weight: float = 0.0
    mmr: bool = False
    lambda_mult: float = 0.5
    min_score: float | None = None

    def __post_init__(self) -> None:
        if self.filter is not None and not isinstance(self.filter, Filter):
            # a dict of Filter fields or a LangChain-style expression, checked now
            object.__setattr__(self, "filter", as_filter(self.filter))
        if self.mode not in MODES:
            raise ConfigError(f"unknown search mode {self.mode!r}; choose {', '.join(MODES)}")
        if self.fusion is not None and self.fusion not in FUSIONS:
            raise ConfigError(f"unknown fusion {self.fusion!r}; choose {', '.join(FUSIONS)}")
        if not (isinstance(self.sparse_weight, (int, float)) and 0 <= self.sparse_weight < 1e6):
            raise ConfigError(f"sparse_weight must be a number >= 0, not {self.sparse_weight!r}")
        if self.min_score is not None and not math.isfinite(self.min_score):
            raise ConfigError(f"min_score must be a finite number, not {self.min_score!r}")

    @property
    def needs_embedder(self) -> bool:
        """Whether answering it embeds the query: every mode but BM25, and MMR (which compares
        the stored vectors with the query's)."""
        return self.mode != "bm25" or self.mmr

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchRequest:
        """From JSON-like values (a filter as a dict of Filter fields or an expression).

        Raises:
            ConfigError: an unknown field, or a bad value.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown search options {unknown}; known: {', '.join(known)}")
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the filter as a dict of its set fields), for a remote server."""
        out = asdict(self)
        out["filter"] = filter_dict(self.filter)
        return out

    def options(self) -> dict[str, Any]:
        """Everything but the query, as keywords (the Searcher's own call)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "query"}
        out["flt"] = out.pop("filter")
        return out


def filter_dict(flt: Filter | None) -> dict[str, Any] | None:
    """A Filter's set fields as a dict (None for no filter): what the server's filter takes."""
    if not flt:
        return None
    out = {}
    for f in fields(flt):
        value = getattr(flt, f.name)
        if value is None or value == ():
            continue
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


SEARCH_FIELDS = tuple(f.name for f in fields(SearchRequest))
