"""`tpr serve`: a real server (uvicorn, started as `python -m retriever serve`) on 127.0.0.1,
driven with real HTTP requests; `tpr search --server` against it."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from click.testing import CliRunner

from retriever import TPEmbedder
from retriever.cli import cli
from retriever.index.indexer import Indexer, IndexOptions

from .ui_server import free_port, listening_addresses

pytest.importorskip("fastapi")


def call(url: str, payload=None, method=None):
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            body = r.read()
            ctype = r.headers.get("content-type", "")
            return r.status, json.loads(body) if "json" in ctype else body.decode()
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("serve")
    docs, idx = tmp / "docs", tmp / "home" / "indexes" / "notes"
    docs.mkdir()
    (docs / "cats.md").write_text("# Pets\n\nThe cat sat on the mat. Cats purr.\n")
    (docs / "dogs.txt").write_text("Dogs chase cars down the road.")
    (docs / "birds.txt").write_text("Birds sing in the trees at dawn.")
    emb = TPEmbedder.load(model=str(tiny_model_dir), tp_exit=3)
    Indexer(emb, IndexOptions(chunk_size=48)).sync(docs, idx)
    with start_serve({**os.environ, "TPR_HOME": str(tmp / "home")}) as (url, port):
        yield url, port, idx


@contextlib.contextmanager
def start_serve(env: dict, *args: str):
    """``python -m retriever serve [ARGS]`` on a free port, up and healthy; yields (url, port)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "retriever", "serve", "--port", str(port), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if call(url + "/health")[1]["status"] == "ok":
                    break
            except OSError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "tpr serve did not start"
            time.sleep(0.3)
        yield url, port
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_health_indexes_docs_and_loopback_only(server):
    url, port, _ = server
    assert call(url + "/health") == (200, {"status": "ok", "indexes": ["notes"]})
    status, rows = call(url + "/indexes")
    assert status == 200 and rows[0]["name"] == "notes" and rows[0]["chunks"] == 3
    status, spec = call(url + "/openapi.json")
    assert status == 200 and "/search" in spec["paths"]
    assert call(url + "/docs")[0] == 200
    assert listening_addresses(port) == {"127.0.0.1"}


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_search_every_mode_with_citations(server, mode):
    url, _, _ = server
    status, out = call(url + "/search", {"query": "the cat mat", "mode": mode, "k": 2})
    assert status == 200, out
    assert out["index"] == "notes" and out["mode"] == mode and len(out["results"]) == 2
    top = out["results"][0]
    assert {"citation", "start_line", "end_line", "heading", "start", "end", "scores"} <= set(top)
    if mode == "bm25":
        assert top["path"] == "cats.md" and top["citation"] == "cats.md:1-3"
        assert top["heading"] == "Pets"


def test_filters_mmr_and_min_score(server):
    url, _, _ = server
    flt = {"query": "the", "mode": "bm25", "k": 5, "filter": {"path_glob": "d*"}}
    assert [r["path"] for r in call(url + "/search", flt)[1]["results"]] == ["dogs.txt"]
    flt["filter"] = {"heading": "pets"}
    assert [r["path"] for r in call(url + "/search", flt)[1]["results"]] == ["cats.md"]
    mmr = call(url + "/search", {"query": "cat", "mode": "dense", "k": 2, "mmr": True})
    assert mmr[0] == 200 and len(mmr[1]["results"]) == 2
    high = call(url + "/search", {"query": "cat", "mode": "bm25", "min_score": 1e9})
    assert high == (200, {**high[1], "results": []})


def test_bad_requests_are_refused_clearly(server):
    url, _, _ = server
    assert call(url + "/search", {"query": "cat", "kk": 3})[0] == 422  # unknown field
    assert call(url + "/search", {"query": "cat", "k": 0})[0] == 422
    assert call(url + "/search", {"query": ""})[0] == 422
    status, body = call(url + "/search", {"query": "cat", "index": "nope"})
    assert status == 404 and "nope" in body["detail"]
    status, body = call(url + "/search", {"query": "cat", "filter": {"metadata": {"a": [1]}}})
    assert status == 422 and "strings, numbers, booleans or None" in body["detail"]


def test_four_concurrent_clients(server):
    url, _, _ = server
    queries = ["cat", "dog road", "birds dawn", "mat"] * 5
    with ThreadPoolExecutor(4) as pool:
        out = list(pool.map(lambda q: call(url + "/search", {"query": q, "k": 1}), queries))
    assert all(status == 200 and len(body["results"]) == 1 for status, body in out)


def test_tpr_search_uses_a_running_server(server):
    url, _, _ = server
    r = CliRunner().invoke(cli, ["search", "cat mat", "--server", url, "--mode", "bm25"])
    assert r.exit_code == 0, r.output
    assert "1. cats.md:1-3 [chunk 0]" in r.output and "loaded in" not in r.output
    r = CliRunner().invoke(cli, ["search", "cat", "--server", "http://127.0.0.1:9"])
    assert r.exit_code == 1 and "no tp-retriever server at" in r.output


def test_a_langchain_retriever_over_http(server):
    from retriever.errors import ConfigError
    from retriever.integrations.remote import TPRemoteRetriever

    url, _, _ = server
    r = TPRemoteRetriever(url=url, k=2, mode="bm25")
    docs = r.invoke("the cat mat")
    assert len(docs) == 2 and docs[0].metadata["source"] == "cats.md"
    assert docs[0].metadata["citation"] == "cats.md:1-3" and docs[0].metadata["scores"]
    only = r.invoke("the", filter={"path_glob": "d*"}, search_kwargs={"k": 5})
    assert [d.metadata["source"] for d in only] == ["dogs.txt"]
    with pytest.raises(ConfigError, match="unknown settings"):
        r.invoke("cat", kk=3)
