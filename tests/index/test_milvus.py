"""Indexes searched in Milvus (through Milvus Lite, in-process on a local file: a real Milvus
engine and the real pymilvus client, no server and no network).

SQLite stays the source of truth; the Milvus collection is its mirror. These tests check that
the mirror follows every change (add, change, delete, move, rebuild, API texts), survives
SIGKILL, is refused inside the indexed folder, and ranks like the local store.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from retriever.errors import ConfigError, IndexLocationError
from retriever.index import milvus
from retriever.index.indexer import Indexer, IndexOptions
from retriever.index.store import FAISS_NAME, Store
from retriever.search.searcher import Searcher

from ..fakes import FakeEmbedder
from ..index.test_index import (
    ROOT,
    Counting,
    check_integrity,
    kill_at_random,
    para,
    write,
)

TOPICS = {
    "cats.md": "The cat sleeps on the sofa. A cat likes fish.",
    "dogs.md": "The dog runs on the road. A dog barks at the car.",
    "sea.md": "Fish swim in the sea. The sea is under the sky.",
    "birds.md": "A bird sits in the tree. Birds fly in the sky.",
    "books.md": "A book about the road. The book has a car on its cover.",
    "trees.md": "The tree grows by the road. A tree gives shade.",
}
QUERIES = {"cat fish": "cats.md", "dog car road": "dogs.md", "bird tree sky": "birds.md"}


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    milvus.close_all()  # Milvus Lite holds its file per process: let the next test open it


@pytest.fixture
def fake(tokenizer):
    return FakeEmbedder(tokenizer)


def _pair(tmp_path, fake):
    root = tmp_path / "docs"
    write(root, TOPICS)
    Indexer(fake).sync(root, tmp_path / "local")
    Indexer(fake, IndexOptions(engine="local")).sync(root, tmp_path / "mv")
    return root, tmp_path / "local", tmp_path / "mv"


def test_same_results_as_the_local_store_in_every_mode(tmp_path, fake):
    _, local, mv = _pair(tmp_path, fake)
    with Store.open(mv) as s:
        assert s.meta_value("milvus")["uri"] == str((mv / milvus.LITE_NAME).resolve())
        assert milvus.verify(s) is None
    a, b = Searcher(local, fake), Searcher(mv, fake)

    def no_fts(*args, **kw):
        raise AssertionError("a Milvus index searched SQLite FTS5")

    b.store.rows.fts_top = no_fts
    try:
        for q, want in QUERIES.items():
            for mode in ("dense", "bm25", "hybrid"):
                ra, rb = a.search(q, k=3, mode=mode), b.search(q, k=3, mode=mode)
                assert ra[0].path == rb[0].path == want, (q, mode)
            # Dense is the same inner product: same ids, same scores.
            da = [(r.path, round(r.score, 5)) for r in a.search(q, k=6, mode="dense")]
            db = [(r.path, round(r.score, 5)) for r in b.search(q, k=6, mode="dense")]
            assert sorted(da) == sorted(db) and da[0] == db[0]
        # A filter means the same on both (resolved in SQLite, passed to Milvus as ids).
        from retriever.search.filters import Filter

        flt = Filter(path_glob="dogs.md")
        for mode in ("dense", "bm25", "hybrid"):
            got = b.search("cat fish", k=5, mode=mode, flt=flt)
            assert {r.path for r in got} <= {"dogs.md"}
        assert b.engine.name == "milvus" and not (mv / FAISS_NAME).exists()  # Milvus answered
    finally:
        a.close()
        b.close()


def test_sync_follows_add_change_delete_move_and_rebuild(tmp_path, fake):
    root, _, mv = _pair(tmp_path, fake)
    emb = Counting(fake)

    def state():
        with Store.open(mv) as s:
            assert milvus.verify(s) is None
            engine = milvus.Collection(s.meta_value("milvus"))
            return {int(i) for i in s.rows.chunk_ids()}, engine.ids(s.rows.max_chunk_id())

    (root / "new.md").write_text("A fish and a bird by the sea.")
    (root / "cats.md").write_text("The cat now reads a book.")
    (root / "trees.md").unlink()
    (root / "dogs.md").rename(root / "hounds.md")
    r = Indexer(emb).sync(root, mv)  # no options: the index keeps its Milvus engine
    assert (r.added, r.updated, r.removed, r.moved) == (1, 1, 1, 1)
    sql, mil = state()
    assert sql == mil
    s = Searcher(mv, fake)
    try:
        assert s.search("cat book", k=1, mode="dense")[0].path == "cats.md"
        assert s.search("dog car road", k=1, mode="bm25")[0].path == "hounds.md"
        assert all(r.path != "trees.md" for r in s.search("tree", k=10, mode="bm25"))
    finally:
        s.close()
    Indexer(emb).sync(root, mv, rebuild=True)  # a rebuild keeps Milvus and starts it afresh
    sql2, mil2 = state()
    assert sql2 == mil2 and not sql2 & sql


def test_moving_an_index_to_milvus_re_embeds_nothing(tmp_path, fake):
    root = tmp_path / "docs"
    write(root, TOPICS)
    idx = tmp_path / "idx"
    Indexer(fake).sync(root, idx)
    emb = Counting(fake)
    Indexer(emb, IndexOptions(engine=str(tmp_path / "elsewhere.db"))).sync(root, idx)
    assert emb.texts == 0
    with Store.open(idx) as s:
        assert s.meta_value("milvus")["uri"].endswith("elsewhere.db")
        assert milvus.verify(s) is None and s.rows.chunk_count() == len(TOPICS)


def test_a_lite_file_inside_the_folder_is_refused(tmp_path, fake):
    root = tmp_path / "docs"
    write(root, TOPICS)
    with pytest.raises(IndexLocationError, match="inside the folder"):
        Indexer(fake, IndexOptions(engine=str(root / "m.db"))).sync(root, tmp_path / "idx")
    with pytest.raises(ConfigError, match=r"ending in \.db"):
        Indexer(fake, IndexOptions(engine="somewhere")).sync(root, tmp_path / "idx2")


def test_a_stale_or_damaged_mirror_is_found_and_repaired(tmp_path, fake):
    from retriever.index import manage

    _, _, mv = _pair(tmp_path, fake)
    with Store.open(mv) as s:
        engine = milvus.Collection(s.meta_value("milvus"))
        victim = int(s.rows.chunk_ids()[0])
    engine.delete([victim])
    engine.upsert([{**_fake_row(fake, 999_999), "id": 999_999}])  # a row SQLite never had
    assert manage.info(mv)["faiss_problem"] == "ids differ from SQLite"
    report = manage.repair(mv)
    assert report.problem == "ids differ from SQLite"
    with Store.open(mv) as s:
        assert milvus.verify(s) is None
    assert manage.info(mv)["engine"] == "milvus"


def _fake_row(fake, i):
    v = fake.vector("cat")
    return {
        **{"vector": v.tolist(), "text": "cat", "path": "x", "start": 0, "end": 3},
        **{"lpath": "x", "mtime": 0, "heading": None, "lheading": None, "page": None},
    }


def test_api_texts_reach_milvus(tmp_path, fake):
    from retriever.integrations.vectorstore import TPVectorStore

    from ..fakes import FakeLC

    _, _, mv = _pair(tmp_path, fake)
    store = TPVectorStore(mv, FakeLC(fake))
    try:
        store.add_texts(["a bird and a book in the sky"], ids=["note-1"])
        hits = store.similarity_search("bird book sky", k=1)
        assert hits[0].id == "note-1"
        store.delete(["note-1"])
        assert all(d.id != "note-1" for d in store.similarity_search("bird book sky", k=6))
    finally:
        store.close()
    with Store.open(mv) as s:
        assert milvus.verify(s) is None


_CHILD = """
import sys
sys.path.insert(0, {root!r})
from tests.conftest import make_tokenizer
from tests.fakes import FakeEmbedder
from retriever.index.indexer import Indexer, IndexOptions

class Slow(FakeEmbedder):
    def encode(self, texts, **kw):
        import time
        time.sleep(0.05)
        return super().encode(texts, **kw)

ix = Indexer(Slow(make_tokenizer()), IndexOptions(chunk_size=24, group_chunks=3, engine="local"))
print("ready", flush=True)
ix.sync({docs!r}, {idx!r})
"""


def test_sigkill_mid_run_loses_and_duplicates_nothing(tmp_path, fake):
    root, idx = tmp_path / "docs", tmp_path / "idx"
    words = ["cat", "dog", "fish", "bird", "tree", "car"]
    write(root, {f"d{i}/f{j}.txt": para(3, words[(i + j) % 6]) for i in range(6) for j in range(4)})
    code = _CHILD.format(root=str(ROOT), docs=str(root), idx=str(idx))
    kills = kill_at_random(code, idx, runs=5, seed=7, wait=(0.5, 3.0))
    assert kills >= 3
    Indexer(fake, IndexOptions(chunk_size=24, group_chunks=3)).sync(root, idx)
    check_integrity(idx, root)
    with Store.open(idx) as s:
        assert milvus.verify(s) is None
        engine = milvus.Collection(s.meta_value("milvus"))
        assert engine.count() == s.rows.chunk_count() == len(engine.ids(s.rows.max_chunk_id()))
        ids = s.rows.chunk_ids()
        got = engine.vectors([int(i) for i in ids[:20]])
        np.testing.assert_allclose(
            np.stack([got[int(i)] for i in ids[:20]]), s.rows.vectors(ids[:20]), atol=1e-6
        )


def test_cli_index_info_search_repair_on_milvus(tmp_path, tiny_model_dir):
    import json

    from click.testing import CliRunner

    from retriever.cli import cli

    root, idx = tmp_path / "docs", tmp_path / "idx"
    write(root, TOPICS)

    def run(*args):
        milvus.close_all()  # each command is its own process in real life
        return CliRunner().invoke(cli, [str(a) for a in args])

    model = ["--model", tiny_model_dir, "--tp-exit", "3"]
    r = run("index", root, "--index", idx, *model, "--milvus", "local")
    assert r.exit_code == 0, r.output
    r = run("info", "--index", idx)
    assert "Milvus " in r.output and "ids and sampled vectors verified" in r.output, r.output
    info = json.loads(run("info", "--index", idx, "--json").stdout)
    assert info["engine"] == "milvus" and info["faiss_problem"] is None
    for mode in ("dense", "bm25", "hybrid"):
        r = run("search", "dog barks car", "--index", idx, "--mode", mode, "--json")
        assert r.exit_code == 0 and json.loads(r.stdout)["results"], (mode, r.output)
    r = run("search", "dog barks car", "--index", idx, "--mode", "bm25", "--json")
    assert json.loads(r.stdout)["results"][0]["path"] == "dogs.md"
    r = run("remove", "dogs.md", "--index", idx)
    assert r.exit_code == 0, r.output
    r = run("search", "dog barks car", "--index", idx, "--mode", "bm25", "--json")
    assert all(x["path"] != "dogs.md" for x in json.loads(r.stdout)["results"])
    assert run("repair", "--index", idx).exit_code == 0


def test_an_interrupted_sync_is_finished_not_restarted(tmp_path, fake):
    _, _, mv = _pair(tmp_path, fake)
    with Store.writer(mv) as s:
        engine = milvus.Collection(s.meta_value("milvus"))
        ids = [int(i) for i in s.rows.chunk_ids()]
        engine.delete(ids[:2])  # as if a sync was killed before these were upserted
        s.set_meta(milvus_synced={"generation": None, "count": None})
        assert milvus.sync(s) == {"upserted": 2, "deleted": 0}
        assert milvus.sync(s) == {"upserted": 0, "deleted": 0}  # current now: nothing to do
        assert milvus.verify(s) is None


def test_a_fresh_process_searches_a_milvus_index_in_hybrid_first(tmp_path, tiny_model_dir):
    """A collection written by another process starts released; the first search of a new
    process is hybrid, whose two sides ask Milvus from two threads at once (they once raced to
    load it under load: "collection is in state 'released'"; the load is now under a lock)."""
    import json
    import os
    import subprocess
    import sys

    root, idx = tmp_path / "docs", tmp_path / "idx"
    write(root, TOPICS)
    env = {**os.environ, "TPR_HOME": str(tmp_path / "home")}
    tpr = [sys.executable, "-m", "retriever"]
    model = ["--model", str(tiny_model_dir), "--tp-exit", "3"]
    r = subprocess.run(
        [*tpr, "index", str(root), "--index", str(idx), *model, "--milvus", "local", "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run(
        [*tpr, "search", "dog car road", "--index", str(idx), "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["results"]


def test_a_milvus_failure_is_one_clear_error(tmp_path, fake):
    from retriever.errors import TPRError

    _, _, mv = _pair(tmp_path, fake)
    with Store.open(mv) as s:
        engine = milvus.Collection({**s.meta_value("milvus"), "collection": "tpr_no_such_thing"})
    with pytest.raises(TPRError, match=r"tpr_no_such_thing.*tpr repair"):
        engine.dense(fake.vector("cat"), 3)


def test_tpr_serve_answers_from_a_milvus_index(tmp_path, tiny_model_dir):
    import os
    import subprocess
    import sys

    pytest.importorskip("fastapi")
    from ..test_server import call, start_serve

    root, home = tmp_path / "docs", tmp_path / "home"
    write(root, TOPICS)
    env = {**os.environ, "TPR_HOME": str(home)}
    # Milvus Lite serves one process per file for that process's life: index in another one.
    model = ["--model", str(tiny_model_dir), "--tp-exit", "3", "--milvus", "local"]
    r = subprocess.run(
        [sys.executable, "-m", "retriever", "index", str(root), "--index", "notes", *model],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    with start_serve(env) as (url, _):
        for mode in ("hybrid", "bm25", "dense"):
            status, body = call(
                url + "/search", {"query": "dog car road", "index": "notes", "mode": mode, "k": 3}
            )
            assert status == 200 and body["results"], (mode, body)
        status, body = call(
            url + "/search", {"query": "dog barks car", "index": "notes", "mode": "bm25"}
        )
        assert body["results"][0]["path"] == "dogs.md"
