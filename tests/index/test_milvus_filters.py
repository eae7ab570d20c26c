"""Filters run inside Milvus (a boolean expression on the mirror's scalar fields) and mean
exactly what the SQL of a local index means: every filter kind is run both ways on one real
index (Milvus Lite, files with headings, pages and times, texts with metadata) and the chunk
ids are compared.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from retriever.index import milvus, milvus_filter
from retriever.index.indexer import Indexer, IndexOptions
from retriever.index.store import Store
from retriever.search import filters
from retriever.search.filters import Filter
from retriever.search.searcher import Searcher

from ..fakes import FakeEmbedder, FakeLC
from .test_index import para, write

PDF = Path(__file__).parent.parent / "fixtures" / "two_pages.pdf"
DAY = 86400.0
T0 = 1_700_000_000.0

FILES = {
    "guide/intro.md": "# Intro\n\n" + para(3, "cat") + "\n\n## Setup\n\n" + para(3, "dog"),
    "guide/Deep/API.MD": "# API\n\n## Calls\n\n" + para(4, "bird"),
    "notes/a_b%.txt": para(2, "sea"),
    "notes/plain.txt": para(2, "tree"),
    "src/mod.py": "def f():\n    return 1\n\n" * 20,
    "café/é.md": "# Été\n\n" + para(2, "book"),
}
TEXTS = [  # (text, metadata) added through the VectorStore
    ("a cat text in english", {"lang": "en", "year": 2024, "flag": True}),
    ("a dog text in german", {"lang": "de", "year": 2019, "flag": False}),
    ("a bird text with a string year", {"lang": "en", "year": "n/a"}),
    ("a sea text with its own source", {"source": "guide/intro.md", "heading": "Custom"}),
    ("a tree text with a null", {"lang": None, "page": 7, "n": 3.0}),
    ("a book text without metadata", {}),
    ("a cat text with a tab in its language", {"lang": "tab\there"}),
]

FILTERS = [
    Filter(suffixes=(".md",)),
    Filter(suffixes=("md", ".TXT", ".py")),
    Filter(suffixes=("_xt",)),  # LIKE's wildcard is literal
    Filter(path_glob="guide/*"),
    Filter(path_glob="*.md"),
    Filter(path_glob="notes/a_b%.txt"),
    Filter(path_glob="notes/?_b*"),
    Filter(path_glob="café/*"),
    Filter(heading="*setup*"),
    Filter(heading="API > calls"),
    Filter(heading="é*"),
    Filter(modified_after=T0 + 1.5 * DAY),
    Filter(modified_before=T0 + 2.5 * DAY),
    Filter(modified_after=T0 + 0.5 * DAY, modified_before=T0 + 3.5 * DAY, suffixes=(".md",)),
    Filter(metadata={"lang": "en"}),
    Filter(metadata={"lang": None}),
    Filter(metadata={"flag": True}),
    Filter(metadata={"year": 2024, "lang": "en"}),
    Filter(metadata={"n": 3}),
    Filter(where={"source": "guide/intro.md"}),
    Filter(where={"source": {"$ne": "guide/intro.md"}}),
    Filter(where={"source": {"$in": ["notes/plain.txt", "src/mod.py"]}}),
    Filter(where={"heading": "Custom"}),
    Filter(where={"heading": {"$ne": "Intro"}}),
    Filter(where={"heading": None}),
    Filter(where={"page": 1}),
    Filter(where={"page": {"$gte": 2}}),
    Filter(where={"page": {"$gt": 1.5}}),
    Filter(where={"page": None}),
    Filter(where={"suffix": ".md"}),
    Filter(where={"suffix": {"$nin": [".md", ".pdf"]}}),
    Filter(where={"type": {"$ne": ".txt"}}),
    Filter(where={"modified": {"$gte": T0 + 2 * DAY}}),
    Filter(where={"modified": {"$in": [T0, T0 + 3 * DAY]}}),
    Filter(where={"lang": {"$in": ["en", "de"]}}),
    Filter(where={"lang": {"$nin": ["en"]}}),
    Filter(where={"lang": {"$nin": ["en", None]}}),
    Filter(where={"lang": {"$in": [None]}}),
    Filter(where={"lang": {"$ne": "en"}}),
    Filter(where={"lang": {"$ne": None}}),
    Filter(where={"year": {"$gte": 2020}}),  # the string "n/a" is not >= 2020
    Filter(where={"year": {"$lt": "z"}}),  # only strings are ordered against a string
    Filter(where={"year": {"$lte": 2019.0}}),
    Filter(where={"flag": False}),
    Filter(where={"flag": {"$in": [True, 0]}}),
    Filter(where={"$or": [{"suffix": ".py"}, {"lang": "de"}]}),
    Filter(where={"$and": [{"suffix": ".md"}, {"heading": {"$ne": None}}]}),
    Filter(where={"$or": [{"$and": [{"lang": "en"}, {"year": 2024}]}, {"page": 2}]}),
    Filter(where={"lang": {"$in": []}}),
    Filter(where={"lang": {"$nin": []}}),
    Filter(where={"missing": None}),
    Filter(where={"text": 'quote " and back\\slash'}),
    Filter(suffixes=(".md",), where={"modified": {"$lt": T0 + 3 * DAY}}, heading="*"),
]
# Said with SQLite's ids (no expression has the same meaning): still filtered, only by id list
FALLBACK = [
    Filter(path_glob="guide/[a-i]*"),
    Filter(where={"year": {"$gt": True}}),
    Filter(where={"lang": "tab\there"}),
]


@pytest.fixture(scope="module")
def index(tmp_path_factory, tokenizer):
    from retriever.integrations.vectorstore import TPVectorStore

    tmp = tmp_path_factory.mktemp("filters")
    root = tmp / "docs"
    write(root, FILES)
    shutil.copy(PDF, root / "paper.pdf")
    for i, path in enumerate(sorted(p for p in root.rglob("*") if p.is_file())):
        os.utime(path, (T0 + i * DAY, T0 + i * DAY))
    fake = FakeEmbedder(tokenizer)
    opts = dict(chunk_size=24, overlap=4)
    Indexer(fake, IndexOptions(**opts, engine="local")).sync(root, tmp / "mv")
    Indexer(fake, IndexOptions(**opts)).sync(root, tmp / "local")
    for where in ("mv", "local"):
        vs = TPVectorStore(tmp / where, FakeLC(fake))
        vs.add_texts([t for t, _ in TEXTS], [m for _, m in TEXTS])
        vs.close()
    yield root, tmp / "mv", tmp / "local", fake
    milvus.close_all()


def _both(mv, flt):
    with Store.open(mv) as s:
        sql = filters.allowed_ids(s, flt)
        collection = milvus.Collection(s.meta_value("milvus"))
        expression = milvus_filter.expression(flt)
        got = collection.matching(milvus.Where(expression)) if expression else None
    return set(sql.tolist()), got, expression


def _name(flt: Filter) -> str:
    return " ".join(f"{k}={v!r}" for k, v in vars(flt).items() if v not in (None, ()))[:80]


@pytest.mark.parametrize("flt", FILTERS, ids=[_name(f) for f in FILTERS])
def test_every_filter_kind_selects_the_same_chunks_in_milvus_as_in_sqlite(index, flt):
    _, mv, _, _ = index
    sql, got, expression = _both(mv, flt)
    assert expression is not None, flt
    assert got == sql, (expression, sorted(got - sql), sorted(sql - got))


def test_the_filters_tell_chunks_apart(index):
    """The comparison above means something: the filters select many different sets, most
    neither empty nor everything."""
    _, mv, _, _ = index
    with Store.open(mv) as s:
        total = len(s.rows.chunk_ids())
    sizes = [len(_both(mv, f)[0]) for f in FILTERS]
    assert sum(0 < n < total for n in sizes) >= 40, sizes
    assert len(set(sizes)) >= 15, sizes


@pytest.mark.parametrize("flt", FALLBACK, ids=[_name(f) for f in FALLBACK])
def test_what_no_expression_says_falls_back_to_sqlite_ids(index, flt):
    _, mv, local, fake = index
    assert milvus_filter.expression(flt) is None
    a, b = Searcher(local, fake), Searcher(mv, fake)
    try:
        want = {r.chunk_id for r in a.search("cat dog bird", k=50, mode="dense", flt=flt)}
        got = {r.chunk_id for r in b.search("cat dog bird", k=50, mode="dense", flt=flt)}
        assert want and got == want
    finally:
        a.close(), b.close()


def test_a_filtered_milvus_search_sends_an_expression_not_ids(index, monkeypatch):
    _, mv, local, fake = index
    sent = []
    real = milvus.Collection._filter

    def spy(self, allowed):
        sent.append(real(self, allowed))
        return sent[-1]

    monkeypatch.setattr(milvus.Collection, "_filter", spy)
    flt = Filter(suffixes=(".md",), where={"lang": {"$ne": "de"}})
    a, b = Searcher(local, fake), Searcher(mv, fake)
    try:
        for mode in ("dense", "bm25", "hybrid"):
            ra = a.search("cat dog sea book", k=8, mode=mode, flt=flt)
            rb = b.search("cat dog sea book", k=8, mode=mode, flt=flt)
            assert {r.path for r in ra} == {r.path for r in rb}, mode
    finally:
        a.close(), b.close()
    assert sent and all(s and "id in" not in s and "lpath like" in s for s in sent), sent


def test_a_touched_or_renamed_file_is_filtered_by_its_new_place(tmp_path, tokenizer):
    """Same content, new mtime or new name: the chunks keep their ids (nothing re-embedded),
    and the mirror's path and time follow, so a filter on them means the same on both."""
    root = tmp_path / "docs"
    write(root, {"a.md": para(2, "cat"), "b.md": para(2, "dog")})
    for p in root.iterdir():
        os.utime(p, (T0, T0))
    fake = FakeEmbedder(tokenizer)
    Indexer(fake, IndexOptions(engine="local")).sync(root, tmp_path / "mv")
    os.utime(root / "a.md", (T0 + 10 * DAY, T0 + 10 * DAY))  # touched
    (root / "b.md").rename(root / "c.txt")  # renamed
    try:
        Indexer(fake, IndexOptions(engine="local")).sync(root, tmp_path / "mv")
        for flt in (
            Filter(modified_after=T0 + DAY),
            Filter(suffixes=(".txt",)),
            Filter(path_glob="b.*"),
        ):
            sql, got, _ = _both(tmp_path / "mv", flt)
            assert got == sql and (sql or flt.path_glob), flt
        with Store.open(tmp_path / "mv") as s:
            assert milvus.verify(s) is None
    finally:
        milvus.close_all()


def test_a_collection_made_before_the_filter_fields_is_made_again(tmp_path, tokenizer):
    root = tmp_path / "docs"
    write(root, {"a.md": para(2, "cat"), "b.txt": para(2, "dog")})
    fake = FakeEmbedder(tokenizer)
    Indexer(fake, IndexOptions(engine="local")).sync(root, tmp_path / "mv")
    try:
        with Store.open(tmp_path / "mv") as s:  # what schema 1 wrote: no filter fields
            c = milvus.Collection(s.meta_value("milvus"))
            c.drop()
            client = c.client
            schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
            from pymilvus import DataType

            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(s.meta_value("dimension")))
            schema.add_field("path", DataType.VARCHAR, max_length=4096)
            params = client.prepare_index_params()
            params.add_index(field_name="vector", index_type="FLAT", metric_type="IP")
            client.create_collection(c.collection, schema=schema, index_params=params)
            stamp = {"generation": s.generation(), "count": s.rows.chunk_count()}
            s.set_meta(milvus_synced=stamp)
        searcher = Searcher(tmp_path / "mv", fake)
        try:
            hits = searcher.search("cat", k=5, flt=Filter(suffixes=(".md",)))
        finally:
            searcher.close()
        assert hits and {h.path for h in hits} == {"a.md"}
        with Store.open(tmp_path / "mv") as s:
            assert milvus.Collection(s.meta_value("milvus")).has_scalars()
            assert milvus.verify(s) is None
    finally:
        milvus.close_all()
