"""One search request (issue 25, item 5): every field of SearchRequest, sent through every door
(the library's retriever, the server, the remote retriever, the CLI and the CLI through a
server), reaches the Searcher unchanged. A door that drops or alters an option fails here.

The Searcher is a real one over a real index, recording the request it is given."""

from __future__ import annotations

import json
import threading
import time

import pytest

from retriever.index.indexer import Indexer
from retriever.search.filters import Filter
from retriever.search.request import MODES, SEARCH_FIELDS, SearchRequest
from retriever.search.searcher import Searcher

from ..fakes import FakeEmbedder
from ..faults.helpers import folder, run

pytest.importorskip("fastapi")

# Every field away from its default, so a door that drops one is seen.
EXPECTED = SearchRequest(
    query="cat on the road",
    k=7,
    mode="dense",
    filter=Filter(
        suffixes=(".txt",),
        path_glob="c*",
        metadata={"lang": "en"},
        where={"source": {"$ne": "x.txt"}},
    ),
    fetch_k=33,
    fusion="rrf",
    weights={"dense": 0.3, "bm25": 1.0},
    sparse_weight=0.25,
    mmr=True,
    lambda_mult=0.8,
    min_score=0.125,
)


def test_every_field_is_away_from_its_default():
    defaults = SearchRequest("q")
    assert [f for f in SEARCH_FIELDS if getattr(EXPECTED, f) == getattr(defaults, f)] == []


class Recording(Searcher):
    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.requests: list[SearchRequest] = []

    def run(self, request, query_vector=None):
        self.requests.append(request)
        return []


@pytest.fixture
def recorder(tmp_path, tokenizer):
    idx = tmp_path / "idx"
    Indexer(FakeEmbedder(tokenizer)).sync(folder(tmp_path / "docs"), idx)
    s = Recording(idx, FakeEmbedder(tokenizer))
    yield s
    s.close()


@pytest.fixture
def server(recorder):
    """A real ``tpr serve`` app on 127.0.0.1 whose one index is the recording Searcher."""
    import uvicorn

    from retriever.server import create_app

    from ..ui_server import free_port

    app = create_app({"notes": recorder.index_dir}, load=lambda config: None)
    app.state.searchers._searchers["notes"] = recorder
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started:
        assert time.time() < deadline
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def settings() -> dict:
    """The request's fields as retriever settings (the filter as a dict, as LangChain passes)."""
    out = {f: getattr(EXPECTED, f) for f in SEARCH_FIELDS if f != "query"}
    out["filter"] = {"suffixes": [".txt"], "path_glob": "c*", "metadata": {"lang": "en"},
                     "where": {"source": {"$ne": "x.txt"}}}  # fmt: skip
    return out


def cli_args() -> list[str]:
    e = EXPECTED
    return ["search", e.query, "-k", e.k, "--mode", e.mode, "--type", ".txt", "--path", "c*",
            "--meta", "lang=en", "--where", json.dumps(e.filter.where), "--fusion", e.fusion,
            "--sparse-weight", e.sparse_weight, "--mmr", "--mmr-lambda", e.lambda_mult,
            "--fetch-k", e.fetch_k, "--dense-weight", e.weights["dense"],
            "--min-score", e.min_score, "--json"]  # fmt: skip


def through_retriever(recorder, _):
    from retriever.integrations.retriever import TPRetriever

    TPRetriever(searcher=recorder, **settings()).invoke(EXPECTED.query)


def through_retriever_per_call(recorder, _):
    from retriever.integrations.retriever import TPRetriever

    TPRetriever(searcher=recorder).invoke(EXPECTED.query, search_kwargs=settings())


def through_server(recorder, url):
    from ..test_server import call

    status, body = call(url + "/search", {"index": "notes", **EXPECTED.as_dict()})
    assert status == 200, body


def through_remote_retriever(recorder, url):
    from retriever.integrations.remote import TPRemoteRetriever

    TPRemoteRetriever(url=url, index="notes", **settings()).invoke(EXPECTED.query)


def through_cli(recorder, _, monkeypatch):
    monkeypatch.setattr(Searcher, "open", classmethod(lambda cls, *a, **kw: recorder))
    r = run(*cli_args(), "--index", recorder.index_dir)
    assert r.exit_code == 0, r.output


def through_cli_and_server(recorder, url):
    r = run(*cli_args(), "--index", "notes", "--server", url)
    assert r.exit_code == 0, r.output


DOORS = [
    through_retriever,
    through_retriever_per_call,
    through_server,
    through_remote_retriever,
    through_cli,
    through_cli_and_server,
]


@pytest.mark.parametrize("door", DOORS, ids=[d.__name__ for d in DOORS])
def test_every_field_reaches_the_searcher(door, recorder, server, monkeypatch):
    if door is through_cli:
        door(recorder, server, monkeypatch)
    else:
        door(recorder, server)
    assert len(recorder.requests) == 1
    got = recorder.requests[0]
    differ = [f for f in SEARCH_FIELDS if getattr(got, f) != getattr(EXPECTED, f)]
    assert not differ, {f: (getattr(got, f), getattr(EXPECTED, f)) for f in differ}


def test_the_doors_list_the_modes_and_fusions_defined_once():
    from retriever.search.fusion import FUSIONS
    from retriever.server import SearchIn

    schema = SearchIn.model_json_schema()
    assert tuple(schema["properties"]["mode"]["enum"]) == MODES
    help_text = run("search", "--help").output
    assert all(m in help_text for m in MODES) and all(f in help_text for f in FUSIONS)
    assert set(SearchIn.model_fields) - {"index"} == set(SEARCH_FIELDS)
