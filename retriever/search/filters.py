"""Which chunks a search may return: a :class:`Filter`, and the SQL conditions it becomes.

Filters are applied *before* ranking: the matching chunk ids come from SQL over ``files`` and
``chunks`` (:meth:`~retriever.index.tables.Tables.chunks_where`) and are handed to FAISS as an
ID selector and to FTS5 as an allow-list, so a search returns k results whenever k chunks match.
Every value is checked when the Filter is made, so a bad one fails at the door with what to fix,
never mid-search: finite modification times, file types matched literally (LIKE's wildcards
escaped), metadata matched exactly on strings, numbers, booleans or None.
"""

from __future__ import annotations

import fnmatch
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError

_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Filter:
    """Which chunks a search may return. Empty = all.

    Attributes:
        path_glob: glob on the path relative to the indexed folder (e.g. ``docs/*.md``).
        suffixes: file types, e.g. ``(".md", ".pdf")``.
        modified_after / modified_before: file mtime bounds, in seconds since the epoch.
        metadata: stored metadata that must match exactly, e.g. ``{"lang": "en", "year": 2024}``
            (scalar values; None matches a missing key). Only texts added with metadata
            (through the VectorStore) have any.
    """

    path_glob: str | None = None
    heading: str | None = None
    suffixes: tuple[str, ...] = ()
    modified_after: float | None = None
    modified_before: float | None = None
    metadata: dict[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        for name in ("modified_after", "modified_before"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
            ):
                raise ConfigError(f"{name} must be a finite number of seconds, not {value!r}")
        if isinstance(self.suffixes, str) or not all(isinstance(x, str) for x in self.suffixes):
            raise ConfigError(
                f"suffixes must be a tuple of strings like ('.md',), not {self.suffixes!r}"
            )
        for name in ("path_glob", "heading"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{name} must be a string, not {value!r}")
        if self.metadata is not None:
            if not isinstance(self.metadata, dict):
                raise ConfigError(f"metadata must be a dict, not {type(self.metadata).__name__}")
            metadata_clause(self.metadata)  # validates keys and values now, not mid-search

    def __bool__(self) -> bool:
        return bool(
            self.path_glob
            or self.heading
            or self.suffixes
            or self.modified_after is not None
            or self.modified_before is not None
            or self.metadata
        )


def metadata_clause(metadata: dict[str, Any]) -> tuple[list[str], list]:
    """SQL conditions on ``c.metadata`` (JSON) for an exact-match metadata filter.

    Raises:
        ConfigError: a key with a double quote, or a value that is not a scalar.
    """
    where, params = [], []
    # json_valid first: a row stored by an older version with invalid JSON (NaN) matches
    # nothing instead of failing every filtered search of the index.
    field = "(case when json_valid(c.metadata) then json_extract(c.metadata, ?) end)"
    for key, value in metadata.items():
        if not isinstance(key, str) or '"' in key:
            raise ConfigError(f"metadata filter key {key!r} must be a string without '\"'")
        path = f'$."{key}"'
        if value is None:
            where.append(f"{field} is null")
            params.append(path)
        elif isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"metadata filter {key}={value!r}: NaN and infinity never match")
        elif (
            isinstance(value, int)
            and not isinstance(value, bool)
            and not (_INT64[0] <= value <= _INT64[1])
        ):
            raise ConfigError(f"metadata filter {key}={value!r}: integers must fit in 64 bits")
        elif isinstance(value, (str, int, float, bool)):
            where.append(f"{field} = ?")
            params += [path, value]
        else:
            raise ConfigError(
                f"metadata filter {key}={value!r}: only exact matches on strings, numbers, "
                "booleans or None are supported"
            )
    return where, params


def _ns(seconds: float) -> int:
    """Seconds -> nanoseconds, clamped to SQLite's integers (no file is that old or new)."""
    return int(min(max(seconds * 1e9, -9.2e18), 9.2e18))


def _like_literal(text: str) -> str:
    """``text`` lower-cased with LIKE's wildcards escaped (escape character ``\\``)."""
    return re.sub(r"([\\%_])", r"\\\1", text.lower())


def filter_sql(flt: Filter) -> tuple[list[str], list]:
    """The SQL conditions (over ``c`` = chunks, ``f`` = files) of everything but the path glob."""
    where, params = [], []
    if flt.modified_after is not None:
        where.append("f.mtime_ns >= ?")
        params.append(_ns(flt.modified_after))
    if flt.modified_before is not None:
        where.append("f.mtime_ns <= ?")
        params.append(_ns(flt.modified_before))
    if flt.suffixes:
        # LIKE with its wildcards escaped: "--type _xt" must not match ".txt".
        like = "lower(f.path) like ? escape '\\'"
        where.append("(" + " or ".join(like for _ in flt.suffixes) + ")")
        params += ["%" + _like_literal(s if s.startswith(".") else "." + s) for s in flt.suffixes]
    if flt.metadata:
        more_where, more_params = metadata_clause(flt.metadata)
        where += more_where
        params += more_params
    return where, params


def allowed_ids(store, flt: Filter | None) -> np.ndarray | None:
    """Sorted chunk ids passing the filter (None = no filter: every chunk)."""
    if not flt:
        return None
    rows = store.chunks_where(*filter_sql(flt))
    if flt.path_glob:
        rows = [r for r in rows if fnmatch.fnmatch(r[1], flt.path_glob)]
    if flt.heading:
        want = flt.heading.lower()
        rows = [r for r in rows if r[2] and fnmatch.fnmatchcase(r[2].lower(), want)]
    return np.array(sorted(r[0] for r in rows), dtype=np.int64)


FILTER_FIELDS = frozenset(
    {"path_glob", "heading", "suffixes", "modified_after", "modified_before", "metadata"}
    | {"since_days"}  # modified within the last N days (the CLI's and the server's word for it)
)


def as_filter(flt: Filter | dict | None) -> Filter | None:
    """A Filter from what a caller passes: a Filter; a dict of Filter fields
    (``{"path_glob": "docs/*.md"}``); or, as LangChain passes them, a dict of stored metadata
    to match (any dict with a key that is not a Filter field).

    Raises:
        ConfigError: anything else.
    """
    if flt is None or isinstance(flt, Filter):
        return flt
    if isinstance(flt, dict):
        if flt and set(flt) <= FILTER_FIELDS:
            fields = dict(flt)
            if isinstance(fields.get("suffixes"), list):
                fields["suffixes"] = tuple(fields["suffixes"])
            days = fields.pop("since_days", None)
            if days is not None:
                fields["modified_after"] = time.time() - days * 86400
            return Filter(**fields)
        return Filter(metadata=flt)
    raise ConfigError(f"filter must be a dict of metadata or a Filter, not {type(flt).__name__}")
