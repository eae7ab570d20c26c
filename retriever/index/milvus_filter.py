"""A search filter as a Milvus boolean expression over the mirror's scalar fields.

Design. A filtered search on a Milvus index runs inside Milvus: the filter becomes one boolean
expression over the collection's scalar fields, so a filter that matches most of a million
chunks costs one short expression, not a list of every matching id. The expression means
exactly what the SQL of :mod:`retriever.search.filters` means over SQLite (the test compares
the ids of every filter kind on both), which takes care in four places:

* **place fields** (``source``, ``heading``, ``page``) are ``coalesce(metadata[key], field)``
  in SQL; here ``(m is not null and C(m)) or (m is null and C(field))``;
* **three-valued logic**: both treat a comparison with a missing value as unknown, so ``$ne``
  and ``$nin`` spell out "or missing" as the SQL does;
* **types**: equality never matches across strings and numbers (SQLite's ``coalesce`` drops
  the column's affinity, Milvus compares typed), and ordering compares numbers with numbers
  and strings with strings only (the SQL guards it with ``typeof``);
* **text matching**: globs become LIKE patterns (``*`` -> ``%``, ``?`` -> ``_``, literals
  escaped), file types match the ASCII-lowered path as SQLite's ``lower()`` does, heading globs
  the Unicode-lowered heading as Python's ``fnmatchcase`` of lower-cased strings does.

What it cannot say with the same meaning (a glob with a ``[...]`` class, a string with control
characters, a boolean compared by order) makes :func:`expression` return None, and the engine
falls back to the ids SQLite finds (``id in [...]``): correct, only not scalable.

The collection's scalar fields (see :data:`SCALARS`): ``path``, ``lpath`` (ASCII-lowered),
``mtime`` (ns), ``heading``, ``lheading`` (lowered), ``page``, ``metadata`` (JSON).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# field -> (Milvus type, nullable); what _row in milvus.py writes
SCALARS = {
    "path": ("VARCHAR", False),
    "lpath": ("VARCHAR", False),
    "mtime": ("INT64", False),
    "heading": ("VARCHAR", True),
    "lheading": ("VARCHAR", True),
    "page": ("INT64", True),
}
# where-fields that name a chunk's place: an added text's own metadata of that name comes first
_PLACE = {"source": "path", "heading": "heading", "page": "page"}
_ORDER = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


class Unsupported(Exception):
    """The filter needs SQLite's ids: no Milvus expression means the same."""


def ascii_lower(text: str) -> str:
    """``text`` lower-cased in ASCII only, as SQLite's ``lower()`` does."""
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def expression(flt) -> str | None:
    """The Milvus expression of a :class:`~retriever.search.filters.Filter` (already
    validated), or None when only SQLite's ids can say it (see the module docstring)."""
    try:
        parts = []
        if flt.modified_after is not None:
            parts.append(f"mtime >= {_ns(flt.modified_after)}")
        if flt.modified_before is not None:
            parts.append(f"mtime <= {_ns(flt.modified_before)}")
        if flt.suffixes:
            parts.append(_suffix("$in", list(flt.suffixes)))
        for key, value in (flt.metadata or {}).items():
            m = _json(key)
            parts.append(f"{m} is null" if value is None else _eq(m, "JSON", value))
        if flt.where:
            parts.append(_node(flt.where))
        if flt.path_glob:
            parts.append(f"path like {_glob(flt.path_glob)}")
        if flt.heading:
            parts.append(f'lheading like {_glob(flt.heading.lower())} and lheading != ""')
    except Unsupported:
        return None
    return " and ".join(f"({p})" for p in parts) if parts else None


def _node(expr: dict[str, Any]) -> str:
    parts = []
    for key, value in expr.items():
        if key in ("$and", "$or"):
            parts.append("(" + f" {key[1:]} ".join(f"({_node(v)})" for v in value) + ")")
            continue
        ops = value if isinstance(value, dict) else {"$eq": value}
        for op, operand in ops.items():
            values = list(operand) if op in ("$in", "$nin") else [operand]
            parts.append(_compare(key, op, values))
    return " and ".join(parts)


def _compare(key: str, op: str, values: list) -> str:
    if key in ("suffix", "type"):
        return _suffix(op, values)
    if key == "modified":
        ns = [_ns(v) for v in values]
        if op in _ORDER:
            return f"mtime {_ORDER[op]} {ns[0]}"
        inside = _any([f"mtime == {n}" for n in ns])
        return inside if op in ("$eq", "$in") else f"not ({inside})"
    m = _json(key)
    if key not in _PLACE:
        return _condition(op, values, m, "JSON", nullable=True)
    name = _PLACE[key]
    kind, nullable = SCALARS[name]
    own = _condition(op, values, m, "JSON", nullable=True)
    place = _condition(op, values, name, kind, nullable)
    return f"(({m} is not null and {own}) or ({m} is null and {place}))"


def _condition(op: str, values: list, x: str, kind: str, nullable: bool) -> str:
    """``x op values`` with the SQL's meaning (see ``filters._compare``)."""
    is_null = f"{x} is null" if nullable else "false"
    if op in ("$in", "$nin"):
        inside = _any([_eq(x, kind, v) for v in values if v is not None])
        if None in values:
            inside = f"({inside} or {is_null})"
            return inside if op == "$in" else f"not ({inside})"
        return inside if op == "$in" else f"({is_null} or not ({inside}))"
    (value,) = values
    if value is None:
        return is_null if op == "$eq" else ("true" if not nullable else f"{x} is not null")
    if op == "$eq":
        return _eq(x, kind, value)
    if op == "$ne":
        return f"({is_null} or not ({_eq(x, kind, value)}))"
    return _order(x, kind, _ORDER[op], value)


def _eq(x: str, kind: str, value) -> str:
    """Equality, never across strings and numbers (booleans are the numbers 0 and 1)."""
    if kind == "JSON":
        return f"{x} == {_literal(value)}"
    if kind == "VARCHAR":
        return f"{x} == {_literal(value)}" if isinstance(value, str) else "false"
    if isinstance(value, str):  # INT64
        return "false"
    if isinstance(value, float) and not value.is_integer():
        return "false"
    return f"{x} == {int(value)}"


def _order(x: str, kind: str, op: str, value) -> str:
    """Ordering, numbers with numbers and strings with strings only (the SQL's typeof guard)."""
    if isinstance(value, bool):
        raise Unsupported  # SQLite orders booleans as 0 and 1; JSON booleans are not numbers
    if kind == "JSON":
        return f"{x} {op} {_literal(value)}"
    if (kind == "VARCHAR") != isinstance(value, str):
        return "false"
    if kind == "INT64" and isinstance(value, float):  # an integer field against a fraction
        value = math.floor(value) if op in (">", "<=") else math.ceil(value)
    return f"{x} {op} {_literal(value)}"


def _suffix(op: str, values: list) -> str:
    """File types: the ASCII-lowered path ends with each (as ``lower(f.path) like '%.md'``)."""
    likes = [
        f"lpath like {_like('%', (v if v.startswith('.') else '.' + v).lower())}" for v in values
    ]
    inside = _any(likes)
    return inside if op in ("$eq", "$in") else f"not ({inside})"


def _any(conditions: list[str]) -> str:
    return "(" + " or ".join(conditions) + ")" if conditions else "false"


def _glob(pattern: str) -> str:
    """An fnmatch glob as a LIKE pattern literal; a character class is Unsupported."""
    if "[" in pattern:
        raise Unsupported
    out = []
    for part in re.split(r"([*?])", pattern):
        out.append({"*": "%", "?": "_"}.get(part) or _escape_like(part))
    return _string("".join(out))


def _like(prefix: str, literal: str) -> str:
    return _string(prefix + _escape_like(literal))


def _escape_like(text: str) -> str:
    return re.sub(r"([\\%_])", r"\\\1", text)


def _json(key: str) -> str:
    return f"metadata[{_string(key)}]"


def _literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return _string(value)


def _string(text: str) -> str:
    """A Milvus string literal (it knows ``\\"`` and ``\\\\`` but not ``\\u`` escapes)."""
    if any(ord(c) < 32 for c in text):
        raise Unsupported
    return json.dumps(text, ensure_ascii=False)


def _ns(seconds: float) -> int:
    """Seconds -> nanoseconds, clamped as the SQL does (``filters._ns``)."""
    return int(min(max(seconds * 1e9, -9.2e18), 9.2e18))
