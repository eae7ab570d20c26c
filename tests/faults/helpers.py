"""What the fault tests share: a folder of small documents, the CLI runner, and real mounts
(a tiny tmpfs for a full disk, a read-only bind mount) where this machine allows them."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from retriever.cli import cli
from retriever.index.store import Store

DOCS = {
    "cats.txt": "The cat sat on the mat. A cat and a cat.",
    "dogs.txt": "The dog ran down the road after a car.",
    "fish.txt": "A fish swam in the sea under the sky.",
    "trees.txt": "A bird sang in the tree by the road.",
}


def run(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def folder(root: Path, files: dict[str, str] = DOCS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def contents(index_dir: Path) -> dict:
    """What an index holds, comparable between two builds: files with status, reason and chunk
    texts, and the vectors rounded."""
    with Store.open(index_dir) as store:
        table = store.rows
        files = {r["path"]: (r["status"], r["reason"], r["chunks"]) for r in table.list_files()}
        ids = [int(i) for i in table.chunk_ids()]
        rows = table.chunk_rows(ids)
        chunks = sorted((r["path"], r["ordinal"], r["text"]) for r in rows.values())
        vectors = sorted(tuple(round(float(x), 5) for x in v) for v in table.vectors(ids))
    return {"files": files, "chunks": chunks, "vectors": vectors}


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextlib.contextmanager
def small_disk(path: Path, size: str):
    """A real tmpfs of ``size`` at ``path`` (root only); skips the test where mounting is not
    allowed."""
    path.mkdir(parents=True, exist_ok=True)
    if not _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)):
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def read_only(path: Path):
    """``path`` bind-mounted read-only over itself (root only); skips where not allowed."""
    if not _mount("--bind", str(path), str(path)):
        pytest.skip("a read-only bind mount needs root")
    try:
        if not _mount("-o", "remount,bind,ro", str(path)):
            pytest.skip("remounting read-only is not allowed here")
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def wait_for(predicate, timeout=20.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def watching(root: Path, index_dir: Path, indexer, interval=0.1, debounce=0.1):
    """``watch`` on a daemon thread; yields (reports, waits, thread) and stops it after."""
    from retriever.index.watch import watch

    reports, waits, stop = [], [], threading.Event()
    args = (root, index_dir, indexer, interval, debounce, stop, reports.append, waits.append)
    thread = threading.Thread(target=watch, args=args, daemon=True)
    thread.start()
    try:
        yield reports, waits, thread
    finally:
        stop.set()
        thread.join(10)
