"""The layout's rules, checked by walking the source (issue 16).

* no import circle between the package's modules (module- or function-level imports alike);
* nobody but the store (``index/store.py``, ``index/tables.py``, ``index/migrations.py``)
  reaches the SQLite database (``.db``, ``.conn``);
* nobody but ``index/vectors.py`` imports FAISS;
* the CLI stays thin, and the UI holds no SQL.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "retriever"
STORE = {"retriever.index.store", "retriever.index.tables", "retriever.index.migrations"}
FAISS_OWNER = "retriever.index.vectors"


def modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports, anywhere in its body."""
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - node.level + 1]
                target = ".".join([*anchor, *(node.module.split(".") if node.module else [])])
            else:
                target = node.module or ""
            for a in node.names:  # "from pkg import module" names a module
                sub = f"{target}.{a.name}"
                found.add(sub if sub in known else target)
    return {m for m in found if m in known and m != name}


def test_no_import_circle():
    mods = modules()
    graph = {n: imports_of(n, p, set(mods)) for n, p in mods.items()}
    # A package's __init__ that re-exports its own modules is not a circle with them.
    for n in graph:
        graph[n] = {m for m in graph[n] if not (n.startswith(m + ".") and m in mods)}
    index, low, stack, on, circles, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


def test_only_the_store_touches_sqlite():
    offenders = []
    for name, path in {**modules(), "ui.app": ROOT / "ui" / "app.py"}.items():
        if name in STORE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("db", "conn"):
                offenders.append(f"{name}:{node.lineno} .{node.attr}")
    assert not offenders, offenders


def test_only_the_faiss_owner_imports_faiss():
    offenders = []
    for name, path in modules().items():
        if name == FAISS_OWNER:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import) and any(a.name == "faiss" for a in node.names):
                offenders.append(f"{name}:{node.lineno}")
            if (
                isinstance(node, ast.ImportFrom)
                and not node.level  # "from .faiss_engine import" is this package's own module
                and (node.module or "").split(".")[0] == "faiss"
            ):
                offenders.append(f"{name}:{node.lineno}")
    assert not offenders, offenders


def test_the_cli_is_thin_and_the_ui_holds_no_sql():
    assert len((PKG / "cli.py").read_text().splitlines()) <= 450
    ui = (ROOT / "ui" / "app.py").read_text()
    assert not re.search(r"\b(select|insert|update|delete)\b[^\"']*\b(from|into|set)\b", ui, re.I)
    assert '"index.db"' not in ui


# Each layer may import the ones to its left, never those to its right.
LAYERS = ("embed", "index", "search", "integrations")


def test_layers_only_point_down():
    """embed imports nothing of index/search/integrations; index nothing of search or
    integrations; search nothing of integrations (issue 25)."""
    mods = modules()
    offenders = []
    for name, path in mods.items():
        parts = name.split(".")
        if len(parts) < 2 or parts[1] not in LAYERS:
            continue
        level = LAYERS.index(parts[1])
        for target in imports_of(name, path, set(mods)):
            t = target.split(".")
            if len(t) > 1 and t[1] in LAYERS and LAYERS.index(t[1]) > level:
                offenders.append(f"{name} -> {target}")
    assert not offenders, offenders


# The modules that know which engines exist; the CLI's options name --milvus and pass its URI.
ENGINE_MODULES = {
    "retriever.index.engine",
    "retriever.index.engines",
    "retriever.index.faiss_engine",
    "retriever.index.milvus",
    "retriever.index.milvus_collection",
    "retriever.index.milvus_filter",
}
URI_WIRING = {"retriever.cli", "retriever.options"}


def test_only_the_engine_modules_know_milvus():
    """Nothing outside the engine modules (and the CLI wiring that passes a URI through)
    mentions Milvus, in code or words: a third engine changes none of it (issue 25)."""
    offenders = []
    for name, path in {**modules(), "ui.app": ROOT / "ui" / "app.py"}.items():
        if name in ENGINE_MODULES | URI_WIRING:
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if "milvus" in line.lower():
                offenders.append(f"{name}:{number}")
    assert not offenders, offenders


def test_no_module_is_over_500_lines():
    """Small rooms (issue 25): a module past 500 lines holds more than one idea."""
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert not {n: k for n, k in sizes.items() if k > 500}
