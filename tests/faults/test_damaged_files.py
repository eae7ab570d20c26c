"""Fault injection: what a folder, a file or a caller throws at an index must not break it,
hang it or make it lie (issue 15).

FIFOs and sockets, symlink loops and links out of the folder, damaged FAISS bytes, a damaged
index.db, NaN metadata through every public path, and ``--index NAME`` with ``./NAME`` present.
Real files, real SQLite, real FAISS; the bag-of-words fake embedder makes rankings exact, and
CLI paths that need a model use the tiny local one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sqlite3
import threading
from pathlib import Path

import faiss
import numpy as np
import pytest
from click.testing import CliRunner
from langchain_core.documents import Document

from retriever.cli import cli
from retriever.errors import ConfigError
from retriever.index.faiss_engine import FaissEngine
from retriever.index.indexer import Indexer, IndexOptions
from retriever.index.store import (
    DB_NAME,
    FAISS_NAME,
    IndexCorruptError,
    IndexLocationError,
    Store,
    resolve_index,
)
from retriever.integrations.retriever import TPRetriever
from retriever.integrations.vectorstore import TPVectorStore
from retriever.search.filters import Filter
from retriever.search.searcher import Searcher

from ..fakes import FakeEmbedder, FakeLC

DOCS = {
    "cats.txt": "The cat sat on the mat. A cat and a cat.",
    "dogs.txt": "The dog ran down the road after a car.",
    "fish.txt": "A fish swam in the sea under the sky.",
    "trees.txt": "A bird sang in the tree by the road.",
}


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def fake(tokenizer):
    return FakeEmbedder(tokenizer)


def folder(root: Path, files: dict[str, str] = DOCS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        (root / rel).write_text(text)
    return root


def sync_within(seconds: float, fn) -> object:
    """Run ``fn`` on a daemon thread; fail (instead of hanging the suite) if it takes longer."""
    out: dict = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as e:  # re-raised below
            out["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still running after {seconds}s (hung)"
    if "error" in out:
        raise out["error"]
    return out["value"]


# -- 1. index names and locations ---------------------------------------------------------


def test_a_bare_name_never_means_a_folder_in_the_current_directory(
    tmp_path, monkeypatch, tiny_model_dir
):
    monkeypatch.setenv("TPR_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    notes = folder(tmp_path / "notes", {"a.txt": "Alpha text about cats."})
    assert resolve_index("notes") == tmp_path / "home/indexes/notes"
    assert resolve_index("./notes") == Path("./notes") and resolve_index("~/x").name == "x"
    # The README's own example, run from the folder's parent.
    r = run("index", "notes", "--index", "notes", "--model", tiny_model_dir, "--tp-exit", "3")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in notes.iterdir()) == ["a.txt"]  # nothing written into it
    assert (tmp_path / "home/indexes/notes" / DB_NAME).is_file()


def test_an_index_inside_its_folder_is_refused(tmp_path, fake):
    root = folder(tmp_path / "docs")
    for inside in (root, root / "idx", root / "sub" / "idx"):
        with pytest.raises(IndexLocationError, match="inside the folder being indexed"):
            Indexer(fake).sync(root, inside)
    assert sorted(p.name for p in root.iterdir()) == sorted(DOCS)


def test_a_new_index_never_moves_into_a_folder_with_other_files(tmp_path, fake):
    root = folder(tmp_path / "docs")
    busy = folder(tmp_path / "photos", {"holiday.txt": "not an index"})
    with pytest.raises(IndexLocationError, match=r"holiday\.txt.*directory of its own"):
        Indexer(fake).sync(root, busy)
    assert sorted(p.name for p in busy.iterdir()) == ["holiday.txt"]


def test_no_index_files_are_ever_indexed(tmp_path, fake):
    other = folder(tmp_path / "other", {"x.txt": "A fish in the sea."})
    root = folder(tmp_path / "docs")
    Indexer(fake).sync(other, root / "old-index")  # another index that lives in the folder
    for name in ("index.db", "lock", "vectors.json"):  # a folder an old version wrote into
        (root / name).write_text('{"generation": 3}' if name.endswith("json") else "")
    Indexer(fake).sync(root, tmp_path / "idx")
    with Store.open(tmp_path / "idx") as s:
        paths = {r["path"] for r in s.db["files"].rows}
    assert paths == set(DOCS)


# -- 2. a damaged FAISS file --------------------------------------------------------------


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    for i in range(mid, min(mid + 200, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _shuffle_ids(path: Path) -> None:
    index = faiss.read_index(str(path))
    ids = faiss.vector_to_array(index.id_map)
    faiss.copy_array_to_vector(np.roll(ids, 1), index.id_map)
    faiss.write_index(index, str(path))


def _replace_vectors(path: Path) -> None:
    index = faiss.read_index(str(path))
    ids = faiss.vector_to_array(index.id_map)
    fresh = faiss.IndexIDMap2(faiss.IndexFlatIP(index.d))
    rng = np.random.default_rng(0)
    fresh.add_with_ids(30 * rng.standard_normal((len(ids), index.d)).astype(np.float32), ids)
    faiss.write_index(fresh, str(path))


@pytest.mark.parametrize("damage", [_flip, _shuffle_ids, _replace_vectors])
def test_a_damaged_faiss_file_is_caught_and_rebuilt_once(tmp_path, fake, damage, caplog):
    root, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    Indexer(fake).sync(root, idx)
    damage(idx / FAISS_NAME)
    with caplog.at_level(logging.WARNING, logger="retriever"):
        searcher = Searcher(idx, fake)
        hits = searcher.search("cat", k=4, mode="dense")
        searcher.close()
    assert hits[0].path == "cats.txt"
    assert all(-1.0 <= h.score <= 1.0 for h in hits)
    warned = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert len(warned) == 1 and FAISS_NAME in warned[0] and "rebuilt from" in warned[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="retriever"):  # written back: said once
        searcher = Searcher(idx, fake)
        assert searcher.search("cat", k=1, mode="hybrid")[0].path == "cats.txt"
        searcher.close()
    assert not caplog.records
    with Store.open(idx) as s:
        assert FaissEngine(s).verify() is None


@pytest.mark.parametrize("damage", [_flip, _shuffle_ids, _replace_vectors])
def test_info_and_repair_see_a_damaged_faiss_file(tmp_path, fake, damage):
    root, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    Indexer(fake).sync(root, idx)
    damage(idx / FAISS_NAME)
    info = json.loads(run("info", "--index", idx, "--json").stdout)
    assert not info["faiss_current"] and info["faiss_problem"].startswith("damaged")
    r = run("repair", "--index", idx)
    assert r.exit_code == 0 and "was damaged" in r.stdout and "rebuilt from SQLite" in r.stdout
    r = run("repair", "--index", idx)
    assert r.exit_code == 0 and "nothing to do" in r.stdout
    assert json.loads(run("info", "--index", idx, "--json").stdout)["faiss_current"]


def test_repair_compares_vectors_with_sqlite(tmp_path, fake):
    """Even a file whose stamp was forged to match is checked against SQLite's vectors."""
    root, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    Indexer(fake).sync(root, idx)
    _replace_vectors(idx / FAISS_NAME)
    with Store.writer(idx) as s:
        FaissEngine(s).write(faiss.read_index(str(idx / FAISS_NAME)))  # stamps the bad file as good
        assert FaissEngine(s).verify() == "vectors differ from SQLite"


# -- 3. chunking and the FAISS factory belong to the index --------------------------------


def test_other_chunking_settings_are_refused_and_rebuild_applies_them(tmp_path, fake):
    root, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    Indexer(fake, IndexOptions(chunk_size=64, overlap=8)).sync(root, idx)
    with pytest.raises(Exception, match=r"chunk_size: 64 -> 16; overlap: 8 -> 0.*--rebuild"):
        Indexer(fake, IndexOptions(chunk_size=16, overlap=0)).sync(root, idx)
    (root / "long.txt").write_text(" ".join(["cat dog fish bird"] * 40))
    Indexer(fake).sync(root, idx)  # no options: the index's own settings
    with Store.open(idx) as s:
        assert s.meta_value("chunking") == {"chunk_size": 64, "overlap": 8}
        tokens = [r[0] for r in s.db.execute("select tokens from chunks")]
    assert max(tokens) > 16
    Indexer(fake, IndexOptions(chunk_size=16, overlap=0)).sync(root, idx, rebuild=True)
    with Store.open(idx) as s:
        assert s.meta_value("chunking") == {"chunk_size": 16, "overlap": 0}
        assert max(r[0] for r in s.db.execute("select tokens from chunks")) <= 16


def test_a_new_faiss_factory_is_applied_to_the_whole_index(tmp_path, fake):
    root, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    Indexer(fake).sync(root, idx)
    report = Indexer(fake, IndexOptions(faiss_factory="HNSW8")).sync(root, idx)
    assert report.faiss_factory == ("auto", "HNSW8") and report.chunks == 0
    written = faiss.read_index(str(idx / FAISS_NAME))  # kept alive while its inner is used
    assert isinstance(faiss.downcast_index(written.index), faiss.IndexHNSW)
    with Store.open(idx) as s:
        assert FaissEngine(s).is_current() and s.meta_value("faiss_factory") == "HNSW8"


def test_cli_refuses_other_chunking_before_loading_a_model(tmp_path, tiny_model_dir):
    root, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    model = ["--model", tiny_model_dir, "--tp-exit", "3", "--index", idx]
    assert run("index", root, *model, "--chunk-size", "64").exit_code == 0
    r = run("index", root, "--index", idx, "--chunk-size", "63")
    assert r.exit_code == 1 and "chunk_size: 64 -> 63" in r.output and "loaded in" not in r.output


# -- 4. metadata that JSON cannot hold -----------------------------------------------------


POISON = [
    {"score": float("nan")},
    {"score": float("inf")},
    {"nested": {"x": float("-inf")}},
    {"tags": {"a", "b"}},
    {"blob": b"bytes"},
    "not a dict",
]


@pytest.mark.parametrize("bad", POISON, ids=lambda b: repr(b)[:20])
def test_bad_metadata_is_refused_through_every_public_path(tmp_path, fake, bad):
    idx = tmp_path / "idx"
    emb = FakeLC(fake)
    store = TPVectorStore.from_texts(["a cat"], emb, [{"topic": "cat"}], index_dir=idx)
    doc = Document(page_content="a dog", metadata=bad) if isinstance(bad, dict) else None
    calls = [
        lambda: store.add_texts(["a dog"], [bad]),
        lambda: TPVectorStore.from_texts(["a dog"], emb, [bad], index_dir=idx),
        lambda: asyncio.run(store.aadd_texts(["a dog"], [bad])),
    ]
    if doc is not None:
        calls += [
            lambda: store.add_documents([doc]),
            lambda: TPVectorStore.from_documents([doc], emb, index_dir=idx),
            lambda: asyncio.run(store.aadd_documents([doc])),
        ]
    for call in calls:
        with pytest.raises(ConfigError, match="metadata 0"):
            call()
    hits = store.similarity_search("cat", k=5, filter={"topic": "cat"})
    assert [d.page_content for d in hits] == ["a cat"]  # nothing stored, filters still work
    store.close()


def test_a_poisoned_row_from_an_older_version_never_breaks_filters(tmp_path, fake):
    root, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    Indexer(fake).sync(root, idx)
    store = TPVectorStore(idx, FakeLC(fake))
    store.add_texts(["a cat on a road", "a cat in a tree"], [{"topic": "x"}, {"topic": "y"}])
    with sqlite3.connect(idx / DB_NAME) as db:  # what an older version stored for NaN
        db.execute("update chunks set metadata = ? where metadata like ?", ['{"s": NaN}', "%y%"])
    assert [d.page_content for d in store.similarity_search("cat", filter={"topic": "x"})] == [
        "a cat on a road"
    ]
    retriever = TPRetriever.from_index(idx, fake, k=3, mode="bm25")
    assert [d.page_content for d in retriever.invoke("cat", filter={"topic": "x"})] == [
        "a cat on a road"
    ]
    r = run("search", "cat", "--index", idx, "--mode", "bm25", "--meta", "topic=x", "--json")
    assert r.exit_code == 0, r.output
    assert [x["text"] for x in json.loads(r.stdout)["results"]] == ["a cat on a road"]
    with pytest.raises(ConfigError, match="NaN"):
        Filter(metadata={"s": float("nan")})
    r = run("search", "cat", "--index", idx, "--mode", "bm25", "--meta", "s=NaN")
    assert r.exit_code == 1 and "NaN" in r.output and "Traceback" not in r.output
    store.close()


def test_texts_with_nul_are_refused(tmp_path, fake):
    store = TPVectorStore(tmp_path / "idx", FakeLC(fake))
    with pytest.raises(ConfigError, match="NUL"):
        store.add_texts(["a cat\x00 hidden"])
    store.close()


# -- 5-7. files that hang or abort a run ---------------------------------------------------


def test_fifos_and_sockets_are_skipped_not_opened(tmp_path, fake):
    root, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    os.mkfifo(root / "pipe.txt")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock.txt"))
    try:
        report = sync_within(60, lambda: Indexer(fake).sync(root, idx))
        again = sync_within(60, lambda: Indexer(fake).sync(root, idx))  # lock was released
    finally:
        sock.close()
    assert dict(report.skipped) == {
        "pipe.txt": "not a regular file",
        "sock.txt": "not a regular file",
    }
    assert report.added == len(DOCS) and again.unchanged == len(DOCS)


def test_symlink_loops_and_links_out_are_skipped_and_listed(tmp_path, fake):
    root, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    outside = tmp_path / "secret.txt"
    outside.write_text("a secret cat")
    os.symlink("self.txt", root / "self.txt")
    os.symlink("b.txt", root / "a.txt")
    os.symlink("a.txt", root / "b.txt")
    os.symlink(outside, root / "out.txt")
    os.symlink(root / "missing.txt", root / "dangling.txt")
    os.symlink(root / "cats.txt", root / "alias.txt")  # inside: indexed (a move-safe copy)
    os.symlink(tmp_path, root / "dirlink")
    report = sync_within(60, lambda: Indexer(fake).sync(root, idx))
    assert dict(report.skipped) == {
        "self.txt": "symlink loop",
        "a.txt": "symlink loop",
        "b.txt": "symlink loop",
        "out.txt": "symlink to outside the folder",
        "dangling.txt": "broken symlink (target missing)",
        "dirlink": "symlink to a folder (not followed)",
    }
    assert report.added == len(DOCS) + 1
    r = run("files", "--index", idx, "--skipped")
    assert r.exit_code == 0
    assert "self.txt  (skipped: symlink loop)" in r.stdout
    assert "out.txt  (skipped: symlink to outside the folder)" in r.stdout
    assert "dangling.txt  (skipped: broken symlink" in r.stdout
    (root / "dangling.txt").unlink()
    assert ("dangling.txt", "broken symlink (target missing)") not in dict(
        Indexer(fake).sync(root, idx).skipped
    ).items()


# -- 8. a damaged index.db -----------------------------------------------------------------


def _zero(path: Path) -> None:
    path.write_bytes(b"")


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(8192))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def _flip_pages(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for p in range(1, len(data) // page):  # every b-tree page header but the first
        for i in range(p * page, p * page + 12):
            data[i] ^= 0x5A
    path.write_bytes(bytes(data))


DB_DAMAGE = [_zero, _garbage, _truncate, _flip_pages]


@pytest.mark.parametrize("damage", DB_DAMAGE)
def test_a_damaged_index_db_is_named_with_the_way_out(tmp_path, fake, damage):
    root, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    Indexer(fake).sync(root, idx)
    damage(idx / DB_NAME)
    for args in (["info"], ["files"], ["search", "cat", "--mode", "bm25"], ["repair"]):
        r = run(*args, "--index", idx)
        assert r.exit_code == 1, (args, r.output)
        assert f"{idx / DB_NAME} is damaged" in r.output and "--rebuild" in r.output, args
        assert "Traceback" not in r.output
    with pytest.raises(IndexCorruptError):
        Store.open(idx)
    report = Indexer(fake).sync(root, idx, rebuild=True)  # the way out: starts afresh
    assert report.added == len(DOCS)
    assert len(list(idx.glob(f"{DB_NAME}.damaged-*"))) == 1  # the damaged file is kept
    with Store.open(idx) as s:
        s.check_integrity()


def test_the_ui_names_a_damaged_index_without_a_traceback(tmp_path, fake, monkeypatch):
    from streamlit.testing.v1 import AppTest

    root, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    Indexer(fake).sync(root, idx)
    _garbage(idx / DB_NAME)
    monkeypatch.setenv("TPR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TPR_INDEX", str(idx))
    at = AppTest.from_file(str(Path(__file__).parents[2] / "ui" / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert "is damaged" in at.error[0].value and "--rebuild" in at.error[0].value


# -- 10-12. input a user can get wrong, and what runs before the model ---------------------


def test_cli_validates_numbers_and_file_types(tmp_path, fake):
    root, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    Indexer(fake).sync(root, idx)
    base = ["search", "cat", "--index", idx, "--mode", "bm25"]
    for bad in (
        ["-k", "10000000000000000000"],
        ["-k", "0"],
        ["--since-days", "1e300"],
        ["--since-days", "nan"],
        ["--since-days", "-1"],
        ["--type", "%"],
    ):
        r = run(*base, *bad)
        assert r.exit_code == 2 and "Invalid value" in r.output, bad
    r = run(*base, "--type", "_xt")  # a wildcard once, now a literal: matches no .txt
    assert r.exit_code == 0 and "no results" in r.output
    r = run(*base, "--type", "txt", "--since-days", "3650")
    assert r.exit_code == 0 and "cats.txt" in r.output


def test_library_validates_k_and_filters(tmp_path, fake):
    root, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    Indexer(fake).sync(root, idx)
    searcher = Searcher(idx, fake)
    for k in (10**19, 0, -1, 2.5, True):
        with pytest.raises(ConfigError, match="k must"):
            searcher.search("cat", k=k)
    for value in (float("nan"), float("inf"), "yesterday"):
        with pytest.raises(ConfigError, match="modified_after"):
            Filter(modified_after=value)
    assert searcher.search("cat", mode="bm25", flt=Filter(suffixes=("_xt",))) == []
    assert searcher.search("cat", mode="bm25", flt=Filter(suffixes=("%",))) == []
    old = Filter(modified_after=-1e300)  # finite and absurd: clamped, not an overflow
    assert searcher.search("cat", k=1, mode="bm25", flt=old)[0].path == "cats.txt"
    searcher.close()


def test_the_lock_is_taken_before_the_model_loads(tmp_path, tiny_model_dir):
    root, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    model = ["--model", tiny_model_dir, "--tp-exit", "3", "--index", idx]
    assert run("index", root, *model).exit_code == 0
    r = run("index", root, "--index", idx)  # nothing changed: no model at all
    assert r.exit_code == 0 and "nothing to embed" in r.output and "loaded in" not in r.output
    (root / "new.txt").write_text("A new file about a cat.")
    with Store.writer(idx):
        r = run("index", root, "--index", idx)
        assert r.exit_code == 1 and f"locked by PID {os.getpid()}" in r.output
        assert "loaded in" not in r.output
        info = run("info", "--index", idx)
        assert f"PID {os.getpid()} is updating this index" in info.output
    r = run("index", root, "--index", idx)
    assert r.exit_code == 0 and "loaded in" in r.output and "added 1" in r.output


def test_another_model_on_a_minilm_index_lists_the_differences(tmp_path, tiny_model_dir):
    root, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    assert run("index", root, "--model", tiny_model_dir, "--index", idx).exit_code == 0
    minilm = {  # what a MiniLM index records (retriever.embed.minilm.MiniLMEmbedder)
        "model": "minilm",
        "prompt": "none",
        "template": None,
        "tp": False,
        "tp_start": None,
        "tp_exit": None,
        "output_layer": None,
        "pooling": "mean",
        "max_length": 256,
        "preprocess": False,
    }
    with Store.writer(idx) as s:
        s.set_meta(embedder=minilm)
    r = run("index", root, "--model", tiny_model_dir, "--index", idx)
    assert r.exit_code == 1
    assert f"model: 'minilm' -> '{tiny_model_dir}'" in r.output and "--rebuild" in r.output
    assert "unknown prompt method" not in r.output
