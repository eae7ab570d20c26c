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

from ..errors import ConfigError, FilterTooLargeError

_INT64 = (-(2**63), 2**63 - 1)
# Limits on one filter. SQLite refuses expression trees deeper than 1000 ("Expression tree is
# too large"), and a filter of 40,000 suffixes is a mistake, not a need: anything past these is
# refused at the door with the limit named, never sent to SQLite.
MAX_SUFFIXES = 100
MAX_METADATA_KEYS = 100
MAX_CONDITIONS = 200  # comparisons in a ``where`` expression, all levels together
MAX_IN_VALUES = 1000  # values in one $in / $nin list
MAX_DEPTH = 16  # nested $and / $or
MAX_PATTERN = 4096  # characters in a glob or a compared string


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
        where: a LangChain-style filter expression (as Chroma and PGVector take them):
            ``{"source": "config.rst"}``, ``{"modified": {"$gte": 1.7e9}}``,
            ``{"$or": [{"suffix": ".md"}, {"lang": {"$in": ["en", "de"]}}]}``. Operators
            ``$eq $ne $in $nin $gt $gte $lt $lte $and $or``; fields ``source`` (the path, or an
            added text's own ``source``), ``suffix`` (file type, ``$eq $ne $in $nin``),
            ``modified`` (seconds since the epoch), ``heading``, ``page``, and any key of the
            stored metadata (see :func:`where_sql`).
    """

    path_glob: str | None = None
    heading: str | None = None
    suffixes: tuple[str, ...] = ()
    modified_after: float | None = None
    modified_before: float | None = None
    metadata: dict[str, Any] | None = field(default=None, hash=False)
    where: dict[str, Any] | None = field(default=None, hash=False)

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
        if len(self.suffixes) > MAX_SUFFIXES:
            raise FilterTooLargeError(
                f"the filter names {len(self.suffixes)} file types; at most {MAX_SUFFIXES} are "
                "allowed in one search"
            )
        for name in ("path_glob", "heading"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{name} must be a string, not {value!r}")
            if value is not None and len(value) > MAX_PATTERN:
                raise FilterTooLargeError(
                    f"{name} is {len(value)} characters long; at most {MAX_PATTERN} are allowed"
                )
        if self.metadata is not None:
            if not isinstance(self.metadata, dict):
                raise ConfigError(f"metadata must be a dict, not {type(self.metadata).__name__}")
            if len(self.metadata) > MAX_METADATA_KEYS:
                raise FilterTooLargeError(
                    f"the metadata filter has {len(self.metadata)} keys; at most "
                    f"{MAX_METADATA_KEYS} are allowed in one search"
                )
            metadata_clause(self.metadata)  # validates keys and values now, not mid-search
        if self.where is not None:
            if not isinstance(self.where, dict):
                raise ConfigError(f"where must be a dict, not {type(self.where).__name__}")
            where_sql(self.where)  # validates now, not mid-search

    def __bool__(self) -> bool:
        return bool(
            self.path_glob
            or self.heading
            or self.suffixes
            or self.modified_after is not None
            or self.modified_before is not None
            or self.metadata
            or self.where
        )


# -- LangChain-style expressions ---------------------------------------------------------------

_META = "(case when json_valid(c.metadata) then json_extract(c.metadata, ?) end)"
# Fields that name a chunk's place; an added text's own metadata of the same name comes first,
# exactly as the Document a search returns shows it (integrations/documents.py).
_PLACE = {"source": "f.path", "heading": "c.heading", "page": "c.page"}
_COMPARE = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
OPERATORS = (*_COMPARE, "$in", "$nin", "$and", "$or")


def where_sql(expr: dict[str, Any]) -> tuple[str, list]:
    """A LangChain-style filter expression -> one SQL condition (over ``c`` and ``f``) and its
    parameters.

    ``{field: value}`` is ``$eq``; several keys in one dict must all hold; ``$ne`` and ``$nin``
    also match a missing value (as a Document without that key is "not equal"). Values are
    strings, numbers, booleans or None; ``$in``/``$nin`` take a list of them.

    Raises:
        ConfigError: an unknown operator, a bad value, or a field an operator does not apply to.
        FilterTooLargeError: over :data:`MAX_CONDITIONS`, :data:`MAX_IN_VALUES` or
            :data:`MAX_DEPTH`.
    """
    count = [0]
    sql, params = _node(expr, 0, count)
    return sql, params


def _node(expr, depth: int, count: list[int]) -> tuple[str, list]:
    if depth > MAX_DEPTH:
        raise FilterTooLargeError(f"the filter nests $and/$or deeper than {MAX_DEPTH} levels")
    if not isinstance(expr, dict) or not expr:
        raise ConfigError(f"a filter expression must be a non-empty dict, not {expr!r}")
    parts, params = [], []
    for key, value in expr.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise ConfigError(f"{key} takes a non-empty list of filters, not {value!r}")
            subs = [_node(v, depth + 1, count) for v in value]
            joined = f" {key[1:]} ".join(f"({q})" for q, _ in subs)
            parts.append(f"({joined})")
            params += [p for _, ps in subs for p in ps]
        elif isinstance(key, str) and key.startswith("$"):
            raise ConfigError(
                f"unknown filter operator {key!r} at this level; use {', '.join(OPERATORS)}"
            )
        else:
            ops = value if isinstance(value, dict) else {"$eq": value}
            if not ops:
                raise ConfigError(f"filter on {key!r} has no operator")
            for op, operand in ops.items():
                count[0] += 1
                if count[0] > MAX_CONDITIONS:
                    raise FilterTooLargeError(
                        f"the filter has more than {MAX_CONDITIONS} conditions; narrow it"
                    )
                q, ps = _compare(key, op, operand)
                parts.append(q)
                params += ps
    return " and ".join(parts), params


def _scalar(key: str, value, label: str = "filter") -> object:
    """A value a filter compares with: a string, a finite number, a boolean or None."""
    if value is None or isinstance(value, (bool, str)):
        if isinstance(value, str) and len(value) > MAX_PATTERN:
            raise FilterTooLargeError(f"{label} value for {key!r} is over {MAX_PATTERN} characters")
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{label} {key}={value!r}: NaN and infinity never match")
    if isinstance(value, int) and not (_INT64[0] <= value <= _INT64[1]):
        raise ConfigError(f"{label} {key}={value!r}: integers must fit in 64 bits")
    if isinstance(value, (int, float)):
        return value
    raise ConfigError(f"{label} {key}={value!r}: values are strings, numbers, booleans or None")


def _stored(key, label: str = "filter field") -> tuple[str, list]:
    """The SQL for a key of the stored metadata (JSON), with its parameter. ``json_valid``
    first: a row stored by an older version with invalid JSON (NaN) matches nothing instead of
    failing every filtered search of the index."""
    if not isinstance(key, str) or '"' in key:
        raise ConfigError(f"{label} {key!r} must be a string without '\"'")
    return _META, [f'$."{key}"']


def _field(key) -> tuple[str, list]:
    """The SQL for a field's value (with its parameters): a place field, or stored metadata."""
    x, xp = _stored(key)
    return (f"coalesce({x}, {_PLACE[key]})", xp) if key in _PLACE else (x, xp)


def _compare(key: str, op: str, operand) -> tuple[str, list]:
    if op not in _COMPARE and op not in ("$in", "$nin"):
        raise ConfigError(f"unknown filter operator {op!r} on {key!r}; use {', '.join(OPERATORS)}")
    if op in ("$in", "$nin"):
        if not isinstance(operand, (list, tuple)):
            raise ConfigError(f"{op} on {key!r} takes a list, not {operand!r}")
        if len(operand) > MAX_IN_VALUES:
            raise FilterTooLargeError(
                f"{op} on {key!r} lists {len(operand)} values; at most {MAX_IN_VALUES} are allowed"
            )
        values = [_scalar(key, v) for v in operand]
    else:
        values = [_scalar(key, operand)]
    if key in ("suffix", "type"):
        return _suffix(key, op, values)
    if key == "modified":
        return _modified(op, values)
    x, xp = _field(key)
    if op in ("$in", "$nin"):
        known = [v for v in values if v is not None]
        marks = ",".join("?" * len(known))
        inside = f"{x} in ({marks})" if known else "0"
        if None in values:
            inside = f"({inside} or {x} is null)"
        params = (xp + known if known else []) + (xp if None in values else [])
        if op == "$in":
            return inside, params
        return f"not coalesce({inside}, 0)", params
    (value,) = values
    if value is None:
        if op not in ("$eq", "$ne"):
            raise ConfigError(f"{op} on {key!r} needs a value, not None")
        return f"{x} is {'not ' if op == '$ne' else ''}null", xp
    if op == "$ne":
        return f"({x} is null or {x} != ?)", xp + xp + [value]
    if op == "$eq":
        return f"{x} = ?", [*xp, value]
    # Ordering compares numbers with numbers and strings with strings: SQLite alone would call
    # every string greater than every number ({"year": {"$gte": 2020}} matching "n/a").
    kind = "= 'text'" if isinstance(value, str) else "in ('integer', 'real')"
    return f"(typeof({x}) {kind} and {x} {_COMPARE[op]} ?)", [*xp, *xp, value]


def _suffix(key: str, op: str, values: list) -> tuple[str, list]:
    if op not in ("$eq", "$ne", "$in", "$nin") or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{key!r} takes file types (like '.md') with $eq, $ne, $in or $nin")
    like = "lower(f.path) like ? escape '\\'"
    cond = "(" + " or ".join(like for _ in values) + ")" if values else "0"
    params = ["%" + _like_literal(v if v.startswith(".") else "." + v) for v in values]
    return (cond, params) if op in ("$eq", "$in") else (f"not {cond}", params)


def _modified(op: str, values: list) -> tuple[str, list]:
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ConfigError("'modified' is compared with seconds since the epoch (a number)")
    ns = [_ns(v) for v in values]
    if op in ("$in", "$nin"):
        marks = ",".join("?" * len(ns))
        return (f"f.mtime_ns {'not ' if op == '$nin' else ''}in ({marks})", ns)
    return f"f.mtime_ns {_COMPARE[op]} ?", ns


def metadata_clause(metadata: dict[str, Any]) -> tuple[list[str], list]:
    """SQL conditions on ``c.metadata`` (JSON) for an exact-match metadata filter: the stored
    metadata only (no place field), with the checks of :func:`where_sql`.

    Raises:
        ConfigError: a key with a double quote, or a value that is not a scalar.
    """
    where, params = [], []
    for key, value in metadata.items():
        x, xp = _stored(key, "metadata filter key")
        value = _scalar(key, value, "metadata filter")
        if value is None:
            where.append(f"{x} is null")
            params += xp
        else:
            where.append(f"{x} = ?")
            params += [*xp, value]
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
    if flt.where:
        sql, more_params = where_sql(flt.where)
        where.append(f"({sql})")
        params += more_params
    return where, params


def allowed_ids(store, flt: Filter | None) -> np.ndarray | None:
    """Sorted chunk ids passing the filter (None = no filter: every chunk)."""
    if not flt:
        return None
    rows = store.rows.chunks_where(*filter_sql(flt))
    if flt.path_glob:
        rows = [r for r in rows if fnmatch.fnmatch(r[1], flt.path_glob)]
    if flt.heading:
        want = flt.heading.lower()
        rows = [r for r in rows if r[2] and fnmatch.fnmatchcase(r[2].lower(), want)]
    return np.array(sorted(r[0] for r in rows), dtype=np.int64)


FILTER_FIELDS = frozenset(
    {"path_glob", "heading", "suffixes", "modified_after", "modified_before", "metadata"}
    | {"where"}
    | {"since_days"}  # modified within the last N days (the CLI's and the server's word for it)
)


def as_filter(flt: Filter | dict | None) -> Filter | None:
    """A Filter from what a caller passes: a Filter; a dict of Filter fields
    (``{"path_glob": "docs/*.md"}``); or, as LangChain passes them, a filter expression
    (``{"source": "a.md"}``, ``{"lang": {"$in": ["en", "de"]}}``: any dict with a key that
    is not a Filter field; see :func:`where_sql`).

    Raises:
        ConfigError: anything else.
    """
    if flt is None or isinstance(flt, Filter):
        return flt
    if isinstance(flt, dict) and not flt:
        return None
    if isinstance(flt, dict):
        if flt and set(flt) <= FILTER_FIELDS:
            fields = dict(flt)
            if isinstance(fields.get("suffixes"), list):
                fields["suffixes"] = tuple(fields["suffixes"])
            days = fields.pop("since_days", None)
            if days is not None:
                fields["modified_after"] = time.time() - days * 86400
            return Filter(**fields)
        return Filter(where=flt)
    raise ConfigError(f"filter must be a dict of metadata or a Filter, not {type(flt).__name__}")
