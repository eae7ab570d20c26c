"""TPRetriever: LangChain's standard retriever suite, and its per-call options."""

from __future__ import annotations

import pytest
from langchain_tests.integration_tests import RetrieversIntegrationTests

from retriever.index.indexer import Indexer, IndexOptions
from retriever.integrations.retriever import TPRetriever
from retriever.search.searcher import Searcher

from ..fakes import FakeEmbedder

DOCS = {
    "cats.txt": "cat cat cat sleeps.",
    "dogs.md": "dog dog chases a cat.",
    "sea.txt": "fish swim in the sea, a cat watches.",
    "roads.txt": "car on the road.",
    "books.txt": "a book about a cat and a car.",
}


@pytest.fixture(scope="module")
def searcher(tmp_path_factory):
    from ..conftest import make_tokenizer

    root = tmp_path_factory.mktemp("docs")
    idx = tmp_path_factory.mktemp("idx")
    for rel, text in DOCS.items():
        (root / rel).write_text(text)
    emb = FakeEmbedder(make_tokenizer())
    Indexer(emb, IndexOptions(chunk_size=64)).sync(root, idx)
    s = Searcher(idx, emb)
    yield s
    s.close()


class TestStandardSuite(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _searcher(self, searcher):
        self._s = searcher

    @property
    def retriever_constructor(self):
        return TPRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"searcher": self._s, "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "cat"


def test_invoke_overrides_fields_for_one_call(searcher):
    r = TPRetriever(searcher=searcher, k=4, mode="hybrid")
    assert len(r.invoke("cat")) == 4
    bm25 = r.invoke("car", k=1, mode="bm25")
    assert len(bm25) == 1 and bm25[0].metadata["scores"].keys() == {"bm25"}
    # min_score on the dense scale (cosine): only the pure "cat" text passes 0.99.
    strict = r.invoke("cat", mode="dense", min_score=0.99)
    assert [d.metadata["source"] for d in strict] == ["cats.txt"]
    assert r.k == 4 and r.mode == "hybrid"  # the fields did not change


def test_mmr_field_diversifies(searcher):
    plain = TPRetriever(searcher=searcher, k=2, mode="dense").invoke("cat")
    mmr = TPRetriever(searcher=searcher, k=2, mode="dense", mmr=True, lambda_mult=0.1).invoke("cat")
    assert plain[0].id == mmr[0].id
    assert plain[1].id != mmr[1].id
