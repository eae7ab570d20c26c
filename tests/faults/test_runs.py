"""Issue 23, A (runs that stop and restart) and C9/D14 (what --rebuild keeps, and what a reader
sees while it runs). Real files, real SQLite, real FAISS; the bag-of-words fake embedder makes
contents comparable exactly, and CLI paths use the tiny local model."""

from __future__ import annotations

import errno
import json
import threading

import pytest

import retriever.cli as cli_module
import retriever.index.indexer as indexer_module
from retriever.errors import FolderNotFoundError, IndexDiskFullError
from retriever.index.indexer import Indexer, IndexOptions
from retriever.index.loaders import file_sha256
from retriever.index.store import STAGING, Store
from retriever.search.searcher import Searcher

from ..fakes import FakeEmbedder, FakeLC
from .helpers import DOCS, contents, folder, run, wait_for, watching


@pytest.fixture
def fake(tokenizer):
    return FakeEmbedder(tokenizer)


def clean_build(tmp_path, fake, docs) -> dict:
    idx = tmp_path / "clean-index"
    Indexer(fake).sync(docs, idx)
    return contents(idx)


# -- A1: a first run stopped while the model loads -------------------------------------------


def test_a_first_run_stopped_while_the_model_loads_is_simply_started_again(
    tmp_path, tiny_model_dir, monkeypatch
):
    docs, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    loader = cli_module.load_logged

    def interrupted(config):  # Ctrl-C while the weights load
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module, "load_logged", interrupted)
    assert run("index", docs, "--model", tiny_model_dir, "--index", idx).exit_code != 0
    assert (idx / "index.db").exists()  # the run had taken its lock and started the index
    info = run("info", "--index", idx)
    assert info.exit_code == 1 and "damaged" not in info.output
    assert f"tpr index FOLDER --index {idx}" in info.output

    monkeypatch.setattr(cli_module, "load_logged", loader)
    r = run("index", docs, "--model", tiny_model_dir, "--index", idx, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["added"] == len(DOCS)


# -- A2: repair / remove on an index that does not exist -------------------------------------


@pytest.mark.parametrize("command", [["repair"], ["remove", "cats.txt"]])
@pytest.mark.parametrize("where", ["path", "name"])
def test_repair_and_remove_refuse_a_missing_index_and_create_nothing(
    tmp_path, command, where, tiny_model_dir
):
    idx = tmp_path / "nothing-here" if where == "path" else "ghost"
    r = run(*command, "--index", idx)
    assert r.exit_code == 1 and "no index at" in r.output, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)  # no traceback
    from retriever.index.store import resolve_index

    assert not resolve_index(str(idx)).exists()
    # and nothing blocks building it afterwards
    docs = folder(tmp_path / "docs")
    assert run("index", docs, "--model", tiny_model_dir, "--index", idx).exit_code == 0


# -- A3: files deleted or renamed while a run reads the folder -------------------------------


class Vanishing(FakeEmbedder):
    """Deletes (or renames) a file of the folder when the first group is embedded: the run has
    walked and hashed it, and is about to read it."""

    def __init__(self, tokenizer, victim, rename_to=None):
        super().__init__(tokenizer)
        self.victim, self.rename_to = victim, rename_to

    def encode(self, texts, **kw):
        if self.victim.exists():
            if self.rename_to:
                self.victim.rename(self.rename_to)
            else:
                self.victim.unlink()
        return super().encode(texts, **kw)


@pytest.mark.parametrize("rename", [False, True])
def test_a_file_that_vanishes_before_it_is_read_is_skipped_and_the_rest_indexed(
    tmp_path, tokenizer, fake, rename
):
    docs, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    victim = docs / "trees.txt"
    emb = Vanishing(tokenizer, victim, docs / "zz-renamed.txt" if rename else None)
    r = Indexer(emb, IndexOptions(group_chunks=1)).sync(docs, idx)
    assert r.added == 3
    assert [p for p, why in r.skipped if "vanished" in why] == ["trees.txt"]
    with Store.open(idx) as store:
        assert store.rows.file_by_path("trees.txt") is None  # nothing recorded for it
    again = Indexer(fake).sync(docs, idx)
    assert (again.added, again.removed) == ((1, 0) if rename else (0, 0))
    assert contents(idx) == clean_build(tmp_path, fake, docs)


def test_a_file_that_vanishes_before_it_is_hashed_is_skipped(tmp_path, fake, monkeypatch):
    docs, idx = folder(tmp_path / "docs"), tmp_path / "idx"

    def hash_after_delete(path):
        if path.name == "fish.txt":
            path.unlink()
        return file_sha256(path)

    monkeypatch.setattr(indexer_module, "file_sha256", hash_after_delete)
    r = Indexer(fake).sync(docs, idx)
    assert r.added == 3 and [p for p, w in r.skipped if "vanished" in w] == ["fish.txt"]
    monkeypatch.undo()
    assert contents(idx) == clean_build(tmp_path, fake, docs)


def test_a_vanished_folder_removes_nothing_from_its_index(tmp_path, fake):
    docs, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    Indexer(fake).sync(docs, idx)
    before = contents(idx)
    docs.rename(tmp_path / "elsewhere")  # unmounted, moved
    with pytest.raises(FolderNotFoundError, match="left as it is"):
        Indexer(fake).sync(docs, idx)
    assert contents(idx) == before


class FailingOnce(FakeEmbedder):
    """The first embedding call meets a full disk; later ones work."""

    def encode(self, texts, **kw):
        if not getattr(self, "failed", False):
            self.failed = True
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().encode(texts, **kw)


def test_the_watcher_survives_a_failed_round_and_a_vanishing_file(tmp_path, tokenizer, fake):
    docs, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    indexer = Indexer(FailingOnce(tokenizer))
    with watching(docs, idx, indexer) as (reports, waits, thread):
        assert wait_for(lambda: any("disk is full" in w for w in waits)), waits
        assert wait_for(lambda: len(reports) == 1), waits  # the next round did it
        assert reports[0].added == len(DOCS) and thread.is_alive()
        # A file deleted during a round is skipped by that round, and the watcher goes on.
        indexer.embedder = Vanishing(tokenizer, docs / "fish.txt")
        (docs / "a-new.txt").write_text("a new cat")
        assert wait_for(lambda: len(reports) >= 2), waits
        assert thread.is_alive()
        assert wait_for(lambda: any(r.removed == 1 for r in reports[1:])), reports
    assert contents(idx) == clean_build(tmp_path, fake, docs)


# -- C9: a rebuild keeps the index's own settings --------------------------------------------


def test_a_rebuild_keeps_chunking_selection_factory_and_added_texts(tmp_path, fake):
    docs = folder(tmp_path / "docs", {**DOCS, "noise.log": "log cat cat cat"})
    idx = tmp_path / "idx"
    opts = IndexOptions(chunk_size=40, overlap=4, exclude=["*.log"], faiss_factory="Flat")
    Indexer(fake, opts).sync(docs, idx)
    from retriever.integrations.vectorstore import TPVectorStore

    store = TPVectorStore(idx, FakeLC(fake))
    store.add_texts(["a book about the sea"], ids=["note-1"], metadatas=[{"lang": "en"}])
    store.close()
    with Store.open(idx) as s:
        before_max = s.rows.max_chunk_id()
    Indexer(fake).sync(docs, idx, rebuild=True)  # nothing given: everything kept
    with Store.open(idx) as s:
        meta = s.meta()
        assert meta["chunking"] == {"chunk_size": 40, "overlap": 4}
        assert meta["selection"]["exclude"] == ["*.log"]
        assert meta["faiss_factory"] == "Flat"
        assert s.rows.file_by_path("noise.log") is None
        assert s.rows.added_ids() == ["note-1"]
        assert min(int(i) for i in s.rows.chunk_ids()) > before_max  # ids are never reused
    assert not (idx / STAGING).exists()
    Indexer(fake, IndexOptions(chunk_size=60)).sync(docs, idx, rebuild=True)
    with Store.open(idx) as s:
        assert s.meta_value("chunking") == {"chunk_size": 60, "overlap": 4}


def test_a_rebuild_keeps_the_model(tmp_path, tiny_model_dir):
    docs, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    assert run("index", docs, "--model", tiny_model_dir, "--index", idx).exit_code == 0
    before = json.loads(run("info", "--index", idx, "--json").stdout)
    r = run("index", docs, "--index", idx, "--rebuild")  # no --model: the index's own
    assert r.exit_code == 0, r.output
    after = json.loads(run("info", "--index", idx, "--json").stdout)
    assert after["embedder"]["model"] == str(tiny_model_dir)
    assert after["dimension"] == before["dimension"]
    assert after["fingerprint"] == before["fingerprint"]


# -- D14: readers during a rebuild see the old index or the new one -------------------------


def test_a_connection_that_met_the_rebuilds_swap_is_replaced_not_retried(
    tmp_path, fake, monkeypatch
):
    """The race behind D14's rare failure, made certain: a rebuild commits its backup while a
    search runs, and the reader's connection then keeps failing on FTS5's table ("vtable
    constructor failed: chunks_fts", seen 1 run in 6-12 of the test below under load). The
    search must go on through a new connection, not retry the stuck one until it gives up."""
    import sqlite3

    docs, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    Indexer(fake).sync(docs, idx)
    reader = Searcher(idx, fake)
    want = [r.path for r in reader.search("fish sea", k=2, mode="bm25")]
    real, stuck = Searcher._search, reader.store

    def met_the_swap(self, *args):
        if self.store is stuck:
            if self.store.generation() == 1:
                Indexer(fake).sync(docs, idx, rebuild=True)  # committed mid-search
            raise sqlite3.OperationalError("vtable constructor failed: chunks_fts")
        return real(self, *args)

    monkeypatch.setattr(Searcher, "_search", met_the_swap)
    try:
        assert [r.path for r in reader.search("fish sea", k=2, mode="bm25")] == want
        assert reader.store is not stuck
    finally:
        reader.close()


def test_searches_during_a_rebuild_see_the_old_index_or_the_new(tmp_path, fake):
    docs, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    Indexer(fake).sync(docs, idx)
    reader = Searcher(idx, fake)
    queries = [("cat mat", "dense"), ("dog road", "bm25"), ("fish sea", "hybrid")]
    expected = {q: [r.path for r in reader.search(q, k=2, mode=m)] for q, m in queries}
    stop, problems, searched = threading.Event(), [], [0]

    def read():
        while not stop.is_set():
            for q, m in queries:
                try:
                    got = [r.path for r in reader.search(q, k=2, mode=m)]
                except Exception as e:  # any error at all is a failure
                    problems.append(f"{m}: {type(e).__name__}: {e}")
                    continue
                searched[0] += 1
                if got != expected[q]:
                    problems.append(f"{m} {q!r}: {got} != {expected[q]}")

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        for _ in range(4):
            Indexer(fake).sync(docs, idx, rebuild=True)
    finally:
        stop.set()
        thread.join(10)
        reader.close()
    assert searched[0] > 0 and not problems, "\n".join(problems[:5])


def test_a_rebuild_that_fails_leaves_the_old_index_and_cleans_up_next_time(
    tmp_path, fake, monkeypatch
):
    docs, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    Indexer(fake).sync(docs, idx)
    before = contents(idx)
    calls = [0]
    real = FakeEmbedder.encode

    def full_disk_midway(self, texts, **kw):
        calls[0] += 1
        if calls[0] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, texts, **kw)

    monkeypatch.setattr(FakeEmbedder, "encode", full_disk_midway)
    with pytest.raises(IndexDiskFullError, match="disk is full") as e:
        Indexer(fake, IndexOptions(group_chunks=1)).sync(docs, idx, rebuild=True)
    assert "--rebuild" not in str(e.value)
    monkeypatch.undo()
    assert contents(idx) == before  # the old index, untouched and searchable
    s = Searcher(idx, fake)
    assert s.search("cat", k=1, mode="dense")[0].path == "cats.txt"
    s.close()
    assert (idx / STAGING).exists()
    Indexer(fake).sync(docs, idx)
    assert not (idx / STAGING).exists()
