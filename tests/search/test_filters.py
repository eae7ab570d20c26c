"""The SQL a filter becomes, on a real local index of texts with metadata (the VectorStore):
the cases the Milvus comparison (tests/index/test_milvus_filters.py) found wrong in SQLite."""

from __future__ import annotations

import pytest

from retriever.search import filters
from retriever.search.filters import Filter

from ..fakes import FakeEmbedder, FakeLC

TEXTS = [
    ("cat one", {"lang": "en", "year": 2024}),
    ("cat two", {"lang": None, "year": "n/a"}),
    ("cat three", {"year": 2019}),
]


@pytest.fixture
def store(tmp_path, tokenizer):
    from retriever.integrations.vectorstore import TPVectorStore

    vs = TPVectorStore(tmp_path / "ix", FakeLC(FakeEmbedder(tokenizer)))
    ids = vs.add_texts([t for t, _ in TEXTS], [m for _, m in TEXTS])
    yield vs.searcher.store, dict(zip(ids, (t for t, _ in TEXTS), strict=True))
    vs.close()


def _texts(store, where) -> set[str]:
    s, _ = store
    ids = filters.allowed_ids(s, Filter(where=where)).tolist()
    return {r["text"] for r in s.rows.chunk_rows(ids).values()}


def test_in_with_only_none_or_nothing(store):
    # were "Incorrect number of bindings" errors: a parameter for a comparison not written
    assert _texts(store, {"lang": {"$in": [None]}}) == {"cat two", "cat three"}
    assert _texts(store, {"lang": {"$in": []}}) == set()
    assert _texts(store, {"lang": {"$nin": []}}) == {"cat one", "cat two", "cat three"}


def test_ordering_compares_numbers_with_numbers_and_strings_with_strings(store):
    # SQLite alone orders every string above every number: "n/a" >= 2020 was true
    assert _texts(store, {"year": {"$gte": 2020}}) == {"cat one"}
    assert _texts(store, {"year": {"$lt": 2100}}) == {"cat one", "cat three"}
    assert _texts(store, {"year": {"$gt": "a"}}) == {"cat two"}
