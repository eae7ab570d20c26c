"""Search: exact rankings (fake embedder), FTS sync, filters, bad queries."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from retriever.errors import ConfigError, EmptyInputError
from retriever.index.faiss_engine import fts_query
from retriever.index.indexer import Indexer, IndexOptions
from retriever.index.store import IndexMismatchError
from retriever.search.filters import Filter
from retriever.search.fusion import RRF_K, score_fusion
from retriever.search.searcher import Searcher, fts_words

from ..fakes import FakeEmbedder

DOCS = {
    "pets/cats.txt": "cat cat cat sleeps.",
    "pets/dogs.md": "dog dog chases a cat.",
    "nature/sea.txt": "fish swim in the sea under the sky.",
    "nature/birds.md": "bird in a tree, bird in the sky.",
    "city/roads.txt": "car on the road, car on the road, another car.",
    "city/books.txt": "a book about a dog and a car.",
}


@pytest.fixture
def index(tmp_path, tokenizer):
    root, idx = tmp_path / "docs", tmp_path / "idx"
    for rel, text in DOCS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    emb = FakeEmbedder(tokenizer)
    Indexer(emb, IndexOptions(chunk_size=64)).sync(root, idx)
    return root, idx, emb


def paths(results):
    return [r.path for r in results]


def test_dense_ranks_by_cosine(index):
    _, idx, emb = index
    s = Searcher(idx, emb)
    res = s.search("cat", k=3, mode="dense")
    assert paths(res)[:2] == ["pets/cats.txt", "pets/dogs.md"]
    q = emb.vector("cat")
    for r in res:
        assert r.scores["dense"] == pytest.approx(float(q @ emb.vector(DOCS[r.path])), abs=1e-5)


def test_bm25_ranks_by_term_frequency(index):
    _, idx, emb = index
    res = Searcher(idx, emb).search("car road", k=3, mode="bm25")
    assert paths(res)[0] == "city/roads.txt" and "city/books.txt" in paths(res)
    assert res[0].scores["bm25"] > res[1].scores["bm25"] > 0


def test_hybrid_is_weighted_rrf_of_both_lists(index):
    _, idx, emb = index
    s = Searcher(idx, emb)
    dense = s.dense("dog sky", 50)
    bm25 = s.bm25("dog sky", 50)
    expected: dict[int, float] = {}
    for w, hits in ((1.0, dense), (0.5, bm25)):
        for rank, (cid, _) in enumerate(hits, start=1):
            expected[cid] = expected.get(cid, 0) + w / (RRF_K + rank)
    want = sorted(expected, key=lambda c: -expected[c])[:4]
    res = s.search("dog sky", k=4, fusion="rrf", weights={"dense": 1.0, "bm25": 0.5})
    assert [r.chunk_id for r in res] == want
    assert all(r.scores["fused"] == pytest.approx(expected[r.chunk_id]) for r in res)


def test_score_fusion_sums_min_max_normalised_scores(index):
    assert score_fusion(
        {"a": [(1, 5.0), (2, 3.0), (3, 1.0)], "b": [(3, 0.9), (4, 0.1)]}, {"b": 2}
    ) == [
        (3, 2.0),
        (1, 1.0),
        (2, 0.5),
        (4, 0.0),
    ]
    assert score_fusion({"a": [(7, 0.3), (8, 0.3)]}) == [(7, 1.0), (8, 1.0)]  # equal -> 1
    _, idx, emb = index
    s = Searcher(idx, emb)
    dense, bm25 = s.dense("dog sky", 50), s.bm25("dog sky", 50)
    want = score_fusion({"dense": dense, "bm25": bm25}, {"dense": 0.5, "bm25": 1.0})[:3]
    res = s.search("dog sky", k=3, fusion="score", weights={"dense": 0.5, "bm25": 1.0})
    assert [(r.chunk_id, r.scores["fused"]) for r in res] == [
        (c, pytest.approx(v)) for c, v in want
    ]
    with pytest.raises(ConfigError, match="unknown fusion"):
        s.search("dog", fusion="max")


def test_fts_follows_updates_and_deletes(index):
    root, idx, emb = index
    (root / "pets/cats.txt").write_text("now only about a fish.")
    (root / "city/books.txt").unlink()
    Indexer(emb, IndexOptions(chunk_size=64)).sync(root, idx)
    s = Searcher(idx, emb)
    assert "pets/cats.txt" not in paths(s.search("sleeps", mode="bm25"))
    assert "pets/cats.txt" in paths(s.search("fish", mode="bm25"))
    assert "city/books.txt" not in paths(s.search("book", mode="bm25"))
    n_fts = s.store.db.execute("select count(*) from chunks_fts").fetchone()[0]
    assert n_fts == s.store.rows.chunk_count()


def test_filters_apply_before_ranking_and_still_return_k(index):
    root, idx, emb = index
    s = Searcher(idx, emb)
    for mode in ("dense", "bm25", "hybrid"):
        res = s.search("cat dog car", k=2, mode=mode, flt=Filter(path_glob="city/*"))
        assert len(res) == 2 and all(p.startswith("city/") for p in paths(res)), mode
    md = s.search("bird", k=5, mode="dense", flt=Filter(suffixes=(".md",)))
    assert sorted(paths(md)) == ["nature/birds.md", "pets/dogs.md"]
    old = time.time() - 3600
    os.utime(root / "pets/cats.txt", (old, old))
    Indexer(emb, IndexOptions(chunk_size=64)).sync(root, idx)
    s = Searcher(idx, emb)
    recent = s.search("cat", k=10, mode="dense", flt=Filter(modified_after=time.time() - 600))
    assert "pets/cats.txt" not in paths(recent) and len(recent) == len(DOCS) - 1
    assert s.search("cat", mode="hybrid", flt=Filter(path_glob="nothing/*")) == []


@pytest.mark.parametrize(
    "query",
    [
        '"unbalanced quote',
        "cat AND",
        "NEAR(cat dog)",
        "*",
        "dog*",
        "the of a",
        "OR OR",
        "x" * 5000,
        "café ü",
        "-cat",
        "col:cat",
        "'; drop table chunks; --",
    ],
)
def test_awkward_queries_never_reach_sqlite_as_syntax(index, query):
    _, idx, emb = index
    s = Searcher(idx, emb)
    for mode in ("bm25", "hybrid", "dense"):
        res = s.search(query, k=3, mode=mode)
        assert isinstance(res, list)
    assert s.store.rows.chunk_count() == len(DOCS)


def test_a_pasted_document_as_query_is_cut_to_max_query_words():
    from retriever.index.engine import MAX_QUERY_WORDS, fts_words

    words = fts_words(" ".join(f"w{i}" for i in range(3 * MAX_QUERY_WORDS)))
    assert len(words) == MAX_QUERY_WORDS and words[0] == "w0"


def test_stop_words_only_still_match(index):
    _, idx, emb = index
    assert Searcher(idx, emb).search("the", mode="bm25")  # "the" occurs; OR + bm25 ranks it


def test_clear_errors(index, tokenizer):
    _, idx, emb = index
    s = Searcher(idx, emb)
    with pytest.raises(EmptyInputError):
        s.search("   ")
    with pytest.raises(ConfigError, match="unknown search mode"):
        s.search("cat", mode="semantic")
    with pytest.raises(IndexMismatchError, match="built with embedder"):
        Searcher(idx, FakeEmbedder(tokenizer, salt="other"))
    assert fts_query(fts_words("!!!")) is None and fts_query(fts_words('a "b"')) == '"a" OR "b"'


def test_results_carry_offsets_and_chunk_text(index):
    root, idx, emb = index
    r = Searcher(idx, emb).search("fish", k=1, mode="bm25")[0]
    assert (root / r.path).read_text()[r.start : r.end] == r.text and r.ordinal == 0
    assert np.isfinite(r.score)


def test_langchain_retriever_sync_and_async(index):
    import asyncio

    from langchain_core.documents import Document

    from retriever.integrations.retriever import TPRetriever

    _, idx, emb = index
    r = TPRetriever(searcher=Searcher(idx, emb), k=2, mode="bm25")
    docs = r.invoke("car road")
    assert all(isinstance(d, Document) for d in docs) and len(docs) == 2
    assert docs[0].metadata["source"] == "city/roads.txt" and "bm25" in docs[0].metadata["scores"]
    adocs = asyncio.run(r.ainvoke("car road"))
    assert [d.page_content for d in adocs] == [d.page_content for d in docs]
    filtered = TPRetriever(
        searcher=Searcher(idx, emb), k=3, mode="dense", filter=Filter(path_glob="pets/*")
    ).invoke("car")
    assert {d.metadata["source"] for d in filtered} <= {"pets/cats.txt", "pets/dogs.md"}


def test_mmr_diversifies(tmp_path, tokenizer):
    root, idx = tmp_path / "docs", tmp_path / "idx"
    root.mkdir()
    # Three near-duplicates about cats and one cat+sea document.
    for i in range(3):
        (root / f"dup{i}.txt").write_text("cat cat cat cat" + " cat" * i)
    (root / "mixed.txt").write_text("cat sea sea")
    emb = FakeEmbedder(tokenizer)
    Indexer(emb, IndexOptions(chunk_size=64)).sync(root, idx)
    s = Searcher(idx, emb)
    plain = paths(s.search("cat sea", k=2, mode="dense"))
    assert "mixed.txt" in plain  # most relevant alone
    top_plain = paths(s.search("cat", k=2, mode="dense"))
    assert all(p.startswith("dup") for p in top_plain)  # relevance alone: two duplicates
    diverse = paths(s.search("cat", k=2, mode="dense", mmr=True, lambda_mult=0.3))
    assert diverse[0].startswith("dup") and diverse[1] == "mixed.txt"
    pure = paths(s.search("cat", k=2, mode="dense", mmr=True, lambda_mult=1.0))
    assert all(p.startswith("dup") for p in pure)  # lambda 1 = relevance only (ties: any dup)
    with pytest.raises(ConfigError, match="MMR needs the embedder"):
        Searcher(idx).search("cat", mode="bm25", mmr=True)


def test_min_score_uses_each_modes_scale(index):
    _, idx, emb = index
    s = Searcher(idx, emb)
    dense = s.search("cat", k=10, mode="dense", min_score=0.5)
    assert dense and all(r.scores["dense"] >= 0.5 for r in dense)
    assert len(dense) < len(s.search("cat", k=10, mode="dense"))
    assert s.search("cat", mode="bm25", min_score=1e9) == []
    fused = s.search("cat", k=10, mode="hybrid", min_score=1.5 / 61)
    assert all(r.scores["fused"] >= 1.5 / 61 for r in fused)


def test_hybrid_defaults_come_per_setting_from_the_measured_table(index):
    from dataclasses import replace

    from retriever.embed.config import DEFAULT_HYBRID, FALLBACK_HYBRID

    _, idx, emb = index
    original = emb.config
    for match, (method, dense) in DEFAULT_HYBRID:
        emb.config = replace(original, **match)
        s = Searcher(idx, emb)
        assert s.default_hybrid() == (method, {"dense": dense, "bm25": 1.0})
        explicit = s.search("car road sky", k=6, fusion=method, weights={"dense": dense})
        assert [r.chunk_id for r in s.search("car road sky", k=6)] == [r.chunk_id for r in explicit]
    # A measured model under unmeasured settings, and an unmeasured model: the fallback.
    emb.config = replace(original, model="gemma3-270m", prompt="ke", pooling="mean")
    assert Searcher(idx, emb).default_hybrid() == (FALLBACK_HYBRID[0], {"dense": 0.2, "bm25": 1.0})
    emb.config = replace(original, model="some/other")
    method, weights = Searcher(idx, emb).default_hybrid()
    assert (method, weights["dense"]) == FALLBACK_HYBRID
    emb.config = original


def test_rrf_with_dense_weight_zero_keeps_bm25_order_first(index):
    _, idx, emb = index
    s = Searcher(idx, emb)
    bm25 = [r.chunk_id for r in s.search("car road sky", k=3, mode="bm25")]
    hybrid = s.search("car road sky", k=6, fusion="rrf", weights={"dense": 0.0, "bm25": 1.0})
    assert [r.chunk_id for r in hybrid][: len(bm25)] == bm25  # dense-only hits may follow


def test_bm25_leaves_out_words_in_most_chunks_without_changing_scores(
    tmp_path, tokenizer, monkeypatch
):
    import retriever.index.faiss_engine as search_mod

    root, idx = tmp_path / "docs", tmp_path / "idx"
    root.mkdir()
    texts = ["the cat sat", "the dog ran", "the car stopped", "the sea", "a cat and a dog"]
    for i, t in enumerate(texts):
        (root / f"{i}.txt").write_text(t)
    emb = FakeEmbedder(tokenizer)
    Indexer(emb, IndexOptions(chunk_size=64)).sync(root, idx)
    s = Searcher(idx, emb)
    full = {r.path: r.scores["bm25"] for r in s.search("the cat", k=5, mode="bm25")}
    assert len(full) == 5  # below PRUNE_MIN_CHUNKS every word is matched
    monkeypatch.setattr(search_mod, "PRUNE_MIN_CHUNKS", 1)
    s = Searcher(idx, emb)
    assert s.engine.informative_words(["the", "cat"]) == ["cat"]  # "the" is in 4 of 5 chunks
    assert s.engine.informative_words(["the"]) == ["the"]  # never prune a query to nothing
    pruned = s.search("the cat", k=5, mode="bm25")
    assert sorted(r.path for r in pruned) == ["0.txt", "4.txt"]
    for r in pruned:
        assert r.scores["bm25"] == pytest.approx(full[r.path], abs=1e-5)
    # Large indexes also leave out words in more than a quarter of the chunks ("cat" and "dog"
    # are in 2 of 5), but never all the words that the first rule kept.
    assert s.engine.informative_words(["dog", "sea"]) == ["dog", "sea"]
    monkeypatch.setattr(search_mod, "COMMON_MIN_CHUNKS", 1)
    s = Searcher(idx, emb)
    assert s.engine.informative_words(["dog", "sea"]) == ["sea"]
    assert s.engine.informative_words(["the", "cat", "dog"]) == ["cat", "dog"]
    assert [r.path for r in s.search("the dog sea", k=5, mode="bm25")] == ["3.txt"]


def test_dense_search_embeds_the_query_with_encode_query(index):
    _, idx, emb = index

    class AsymmetricFake(FakeEmbedder):
        def encode_query(self, text):  # a query prompt that always asks about the sea
            return self.vector("sea")

    asym = AsymmetricFake(emb.tokenizer)
    res = Searcher(idx, asym).search("cat", k=1, mode="dense")
    assert res[0].path == "nature/sea.txt"
