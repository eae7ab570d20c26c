"""Sparse words stored per chunk (``--sparse``): computed from stored vectors, kept in step with
the chunks, and searched in SQLite with exactly the scores the encoder implies."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from retriever import ConfigError, EmbedderConfig, TPEmbedder
from retriever.cli import cli
from retriever.embed.sparse import sparse_scores, stored_last_token
from retriever.index.indexer import Indexer, IndexOptions
from retriever.index.sparse_terms import encoder_for, query_bag
from retriever.index.store import Store
from retriever.search.searcher import Searcher

from ..index.test_index import Counting, write

TEXTS = {
    "animals.txt": "Cats chase mice through the garden while dogs sleep in the sun.",
    "ocean.txt": "Whales and dolphins swim in the deep blue ocean near the coast.",
    "cooking.txt": "Bake the bread in a hot oven and serve it with butter and honey.",
    "space.txt": "Astronauts orbit the planet in a station far above the clouds.",
    "music.txt": "The violin and the piano play a slow song in the concert hall.",
    "digits.txt": "1234 5678 90 — 42",  # no word of two letters: the empty-word marker row
}


@pytest.fixture(scope="module")
def embedder(tiny_models, tokenizer):
    # The retrieval preset's shape: final layer, last+mean pooling (last-token state first).
    config = EmbedderConfig(tp_exit=2, pooling="last+mean", max_length=96)
    return TPEmbedder(tiny_models("llama"), tokenizer, config)


def stored(idx) -> dict[int, tuple[str, np.ndarray, dict[str, float]]]:
    """chunk id -> (text, vector, {word: weight}) as the index holds them."""
    with Store.open(idx) as s:
        out = {
            cid: (text, np.frombuffer(vec, dtype=np.float32), {})
            for cid, text, vec in s.db.execute("select id, text, vector from chunks")
        }
        for cid, word, weight in s.db.execute("select chunk_id, word, weight from sparse_terms"):
            out[cid][2][word] = weight
    return out


def test_each_chunk_stores_the_words_its_vector_gives(tmp_path, embedder):
    root, idx = tmp_path / "docs", tmp_path / "idx"
    write(root, TEXTS)
    report = Indexer(embedder, IndexOptions(sparse=True)).sync(root, idx)
    assert report.sparse_chunks == len(TEXTS)
    with Store.open(idx) as s:
        scale = s.meta()["sparse_scale"]
    assert scale > 0
    encoder = encoder_for(embedder, scale)
    hidden = embedder.backbone.hidden_size
    chunks = stored(idx)
    assert len(chunks) == len(TEXTS)
    for text, vec, bag in chunks.values():
        want = encoder.encode([text], stored_last_token(vec, "last+mean", hidden))[0]
        assert bag == pytest.approx(want or {"": 0.0}, abs=1e-6)  # logits batched differently
    assert any(len(bag) > 3 for _, _, bag in chunks.values())  # real words, not just markers


def test_sparse_search_scores_are_the_dot_products(tmp_path, embedder):
    root, idx = tmp_path / "docs", tmp_path / "idx"
    write(root, TEXTS)
    Indexer(embedder, IndexOptions(sparse=True)).sync(root, idx)
    chunks = stored(idx)
    searcher = Searcher(idx, embedder)
    query = "the dogs and cats in the garden, the ocean and the piano"
    qvec = searcher.embed_query(query)
    bag = query_bag(
        encoder_for(embedder, searcher.store.meta()["sparse_scale"]), embedder, query, qvec
    )
    ids = list(chunks)
    # Each query word weighs log(N / df) more, df over the stored words (IDF); words in more
    # than half of the chunks are left out.
    df = {w: sum(w in b for _, _, b in chunks.values()) for w in bag}
    n = len(chunks)
    weighted = {w: x * np.log(n / df[w]) for w, x in bag.items() if 0 < df[w] <= n // 2}
    assert df["the"] > n // 2 and "the" not in weighted and weighted
    want = sparse_scores([weighted], [chunks[i][2] for i in ids])[0]
    expected = sorted(
        ((ids[j], float(x)) for j, x in enumerate(want) if x > 0), key=lambda t: -t[1]
    )
    assert expected, "the query shares weighted words with some chunk"
    hits = searcher.search(query, k=len(TEXTS), mode="sparse")
    assert [h.chunk_id for h in hits] == [cid for cid, _ in expected]
    assert [h.score for h in hits] == pytest.approx([x for _, x in expected], rel=1e-5)
    # As a third hybrid side (only when weighted): every result carries its sparse score.
    fused = searcher.search(
        query, k=3, mode="hybrid", fusion="score", weights={"dense": 0.3, "bm25": 1, "sparse": 1}
    )
    top = dict(expected)
    assert any("sparse" in h.scores for h in fused)
    for h in fused:
        if "sparse" in h.scores:
            assert h.scores["sparse"] == pytest.approx(top[h.chunk_id], rel=1e-5)
    plain = searcher.search(query, k=3, mode="hybrid")
    assert all("sparse" not in h.scores for h in plain)


def test_turning_it_on_later_fills_in_without_embedding(tmp_path, embedder):
    root, idx = tmp_path / "docs", tmp_path / "idx"
    write(root, TEXTS)
    Indexer(embedder, IndexOptions()).sync(root, idx)
    searcher = Searcher(idx, embedder)
    with pytest.raises(ConfigError, match="--sparse"):
        searcher.search("cats", mode="sparse")
    counting = Counting(embedder)
    report = Indexer(counting, IndexOptions(sparse=True)).sync(root, idx)
    assert counting.texts == 0 and report.chunks == 0  # words come from the stored vectors
    assert report.sparse_chunks == len(TEXTS)
    assert searcher.search("cats and dogs", k=2, mode="sparse")  # the same searcher sees them
    # Later runs keep them on without the option, for new files only.
    write(root, {"birds.txt": "Birds sing in the trees at dawn."})
    report = Indexer(embedder, IndexOptions()).sync(root, idx)
    assert report.sparse_chunks == 1
    result = CliRunner().invoke(cli, ["info", "--index", str(idx)])
    assert f"sparse      {len(TEXTS) + 1} chunks with LLM sparse words" in result.output


def test_sparse_words_go_with_their_chunks(tmp_path, embedder):
    root, idx = tmp_path / "docs", tmp_path / "idx"
    write(root, TEXTS)
    Indexer(embedder, IndexOptions(sparse=True)).sync(root, idx)
    (root / "ocean.txt").unlink()
    (root / "music.txt").write_text("A trumpet and drums play loud music outside.")
    report = Indexer(embedder, IndexOptions()).sync(root, idx)
    assert report.removed == 1 and report.updated == 1 and report.sparse_chunks == 1
    chunks = stored(idx)
    assert all(bag for _, _, bag in chunks.values())  # no chunk without words
    with Store.open(idx) as s:
        orphans = s.db.execute(
            "select count(*) from sparse_terms where chunk_id not in (select id from chunks)"
        ).fetchone()[0]
    assert orphans == 0
    assert not any("whales" in bag for _, _, bag in chunks.values())
    # A rebuild recomputes them from the new vectors (the option stays on).
    options = IndexOptions()
    indexer = Indexer(embedder, options)
    report = indexer.sync(root, idx, rebuild=True)
    assert report.sparse_chunks == len(TEXTS) - 1
    # ... for that index only: the caller's options are left as given, so the same indexer
    # syncing another index does not turn sparse words on there.
    assert options.sparse is False and indexer.options.sparse is False
    other = tmp_path / "other"
    assert indexer.sync(root, other).sparse_chunks == 0
    with Store.open(other) as s:
        assert s.meta_value("sparse_scale") is None


def test_an_embedder_without_the_final_last_token_state_is_refused_first(
    tmp_path, tiny_models, tokenizer
):
    root, idx = tmp_path / "docs", tmp_path / "idx"
    write(root, TEXTS)
    early = TPEmbedder(tiny_models("llama"), tokenizer, EmbedderConfig(tp_exit=2, output_layer=2))
    counting = Counting(early)
    with pytest.raises(ConfigError, match="leave out --sparse"):
        Indexer(counting, IndexOptions(sparse=True)).sync(root, idx)
    assert counting.texts == 0  # refused before any embedding


def test_texts_added_through_the_vectorstore_get_their_words(tmp_path, embedder):
    from retriever.integrations.embeddings import TPEmbeddings
    from retriever.integrations.vectorstore import TPVectorStore

    root, idx = tmp_path / "docs", tmp_path / "idx"
    write(root, TEXTS)
    Indexer(embedder, IndexOptions(sparse=True)).sync(root, idx)
    vs = TPVectorStore(idx, TPEmbeddings(embedder))
    vs.add_texts(["Penguins waddle across the frozen ice."], ids=["p1"])
    chunks = stored(idx)
    assert len(chunks) == len(TEXTS) + 1 and all(bag for _, _, bag in chunks.values())
    vs.delete(["p1"])
    assert len(stored(idx)) == len(TEXTS)
    vs.close()
