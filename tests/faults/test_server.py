"""Issue 23, D (the server) and F21 (``tpr search --server`` keeps ``--sparse-weight``): a real
``tpr serve`` process over an index built with the tiny local model, real HTTP requests."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request

import pytest

from retriever.embed.embedder import TPEmbedder
from retriever.index.indexer import Indexer, IndexOptions
from retriever.index.store import DB_NAME

from ..test_server import call, start_serve
from .helpers import run

pytest.importorskip("fastapi")

PETS = {"cats.md": "# Pets\n\nThe cat sat on the mat. Cats purr.\n",
        "dogs.txt": "Dogs chase cars down the road.",
        "birds.txt": "Birds sing in the trees at dawn."}  # fmt: skip


def write(root, files):
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("serve-faults")
    idx = tmp / "home" / "indexes" / "notes"
    emb = TPEmbedder.load(model=str(tiny_model_dir), tp_exit=2, pooling="last+mean")
    docs = write(tmp / "docs", PETS)
    Indexer(emb, IndexOptions(chunk_size=48, sparse=True)).sync(docs, idx)
    # a second index, for the test that deletes and re-creates one under the server
    Indexer(emb, IndexOptions(chunk_size=48)).sync(docs, tmp / "home" / "indexes" / "scratch")
    with start_serve({**os.environ, "TPR_HOME": str(tmp / "home")}) as (url, _):
        yield url, idx, emb, tmp


def raw(url: str, body: str):
    """POST a body as it is (JSON with NaN or 1e400 cannot be made by json.dumps strictly)."""
    req = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.parametrize(
    "body",
    [
        '{"query": "cat", "index": "notes", "min_score": NaN}',
        '{"query": "cat", "index": "notes", "min_score": Infinity}',
        '{"query": "cat", "index": "notes", "min_score": 1e400}',
        '{"query": "cat", "index": "notes", "filter": {"modified_after": NaN}}',
        '{"query": "cat", "index": "notes", "filter": {"modified_before": -Infinity}}',
        '{"query": "cat", "index": "notes", "filter": {"since_days": 1e400}}',
        '{"query": "cat", "index": "notes", "filter": {"where": {"modified": {"$gt": 1e400}}}}',
    ],
)
def test_non_finite_numbers_are_a_422_that_serialises(served, body):
    status, answer = raw(served[0] + "/search", body)
    assert status == 422, answer
    assert answer["detail"]


@pytest.mark.parametrize(
    ("flt", "limit"),
    [
        ({"metadata": {f"k{i}": i for i in range(1000)}}, "100"),
        ({"suffixes": [f".x{i}" for i in range(40_000)]}, "100"),
        ({"where": {"$or": [{"source": f"f{i}.md"} for i in range(1000)]}}, "200"),
        ({"where": {"source": {"$in": [f"f{i}" for i in range(5000)]}}}, "1000"),
    ],
)
def test_oversized_filters_are_refused_with_the_limit_never_called_damage(served, flt, limit):
    status, answer = call(served[0] + "/search", {"query": "cat", "index": "notes", "filter": flt})
    assert status == 422, answer
    text = json.dumps(answer)
    assert limit in text and "damaged" not in text


def test_a_where_filter_on_source_and_suffix(served):
    url = served[0] + "/search"
    body = {"query": "the", "mode": "bm25", "k": 5, "index": "notes"}
    only = call(url, {**body, "filter": {"where": {"source": "dogs.txt"}}})[1]["results"]
    assert [r["path"] for r in only] == ["dogs.txt"]
    not_md = call(url, {**body, "filter": {"where": {"suffix": {"$ne": ".md"}}}})[1]["results"]
    assert {r["path"] for r in not_md} == {"dogs.txt", "birds.txt"}


def test_search_through_the_server_keeps_the_sparse_weight(served):
    url = served[0]
    r = run("search", "cat mat", "--server", url, "--index", "notes", "--sparse-weight", "0.5",
            "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    results = json.loads(r.stdout)["results"]
    assert results and any("sparse" in x["scores"] for x in results)


def test_an_index_db_replaced_under_the_server_is_reopened(served, tiny_model_dir):
    url, notes, emb, tmp = served
    idx = notes.parent / "scratch"

    def search(query, mode="bm25", k=5):
        return call(url + "/search", {"query": query, "mode": mode, "k": k, "index": "scratch"})

    assert search("zebra stripes")[1]["results"] == []
    # Delete the index and build another folder in its place, as a user re-creating it would.
    for name in (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm", "vectors.faiss"):
        (idx / name).unlink(missing_ok=True)
    status, health = call(url + "/health")
    assert status == 503 and health["status"] == "degraded" and "scratch" in health["problems"]
    status, gone = search("cat")
    assert status == 404, gone  # never answers from the deleted file
    other = write(tmp / "docs2", {"zebra.md": "A zebra has black and white stripes."})
    Indexer(emb, IndexOptions(chunk_size=48)).sync(other, idx)
    assert call(url + "/health")[0] == 200
    deadline = time.time() + 30
    while True:
        status, answer = search("zebra stripes")
        if status == 200 and answer["results"]:
            break
        assert time.time() < deadline, (status, answer)
        time.sleep(0.2)
    assert answer["results"][0]["path"] == "zebra.md"
    for mode in ("dense", "hybrid"):
        status, answer = search("zebra", mode, 1)
        assert status == 200 and answer["results"][0]["path"] == "zebra.md", (mode, answer)
    shutil.rmtree(tmp / "docs2")


def test_the_remote_retriever_takes_per_call_settings_async_and_where_filters(served):
    import asyncio

    from retriever.integrations.remote import TPRemoteRetriever

    remote = TPRemoteRetriever(url=served[0], index="notes", k=3, mode="bm25")
    assert len(asyncio.run(remote.ainvoke("the cat dog birds", k=1))) == 1
    assert len(asyncio.run(remote.ainvoke("the cat dog birds", search_kwargs={"k": 2}))) == 2
    docs = remote.invoke("the cat dog birds", filter={"source": {"$in": ["dogs.txt"]}})
    assert [d.metadata["source"] for d in docs] == ["dogs.txt"]
