"""TPVectorStore: LangChain's standard vector-store suite, plus index-specific behaviour.

The standard suite (``langchain-tests``) runs on its own deterministic fake embeddings, which
exercises the adapter for third-party ``Embeddings``. The rest uses the bag-of-words fake
embedder, so rankings can be asserted exactly, and a real folder index next to added texts.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from retriever.errors import ConfigError
from retriever.index.faiss_engine import FaissEngine
from retriever.index.indexer import Indexer, IndexOptions
from retriever.index.store import IndexMismatchError, Store
from retriever.integrations.retriever import TPRetriever
from retriever.integrations.vectorstore import EmbeddingsAdapter, TPVectorStore
from retriever.search.filters import Filter
from retriever.search.searcher import Searcher

from ..fakes import VOCAB, FakeEmbedder, FakeLC


class TestStandardSuite(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, tmp_path):
        store = TPVectorStore(tmp_path / "idx", self.get_embeddings())
        yield store
        store.close()


@pytest.fixture
def fake(tokenizer):
    return FakeEmbedder(tokenizer)


@pytest.fixture
def vs(tmp_path, fake):
    store = TPVectorStore(tmp_path / "idx", FakeLC(fake))
    yield store
    store.close()


def texts(docs):
    return [d.page_content for d in docs]


def test_search_ranks_by_cosine_and_scores_are_cosines(vs, fake):
    vs.add_texts(["cat cat dog", "dog road", "sea sky fish"], ids=["a", "b", "c"])
    hits = vs.similarity_search_with_score("cat", k=3)
    assert [d.id for d, _ in hits] == ["a", "b", "c"]
    q = fake.vector("cat")
    for doc, score in hits:
        assert score == pytest.approx(float(q @ fake.vector(doc.page_content)), abs=1e-5)


def test_metadata_filter_returns_k_whenever_k_match(vs):
    # 30 "cat" texts outrank the two "dog" texts, but the filter is applied before FAISS.
    vs.add_texts([f"cat {i}" for i in range(30)], [{"kind": "cat"} for _ in range(30)])
    vs.add_texts(["dog", "dog dog"], [{"kind": "dog", "n": 1}, {"kind": "dog", "n": 2}])
    docs = vs.similarity_search("cat", k=2, filter={"kind": "dog"})
    assert sorted(texts(docs)) == ["dog", "dog dog"]
    assert texts(vs.similarity_search("cat", k=5, filter={"kind": "dog", "n": 2})) == ["dog dog"]
    assert vs.similarity_search("cat", k=5, filter={"kind": "bird"}) == []
    with pytest.raises(ConfigError, match="strings, numbers, booleans or None"):
        vs.similarity_search("cat", filter={"kind": ["dog"]})


def test_mmr_diversifies(vs):
    vs.add_texts(["cat cat", "cat cat", "cat dog"], ids=["x", "y", "z"])
    plain = vs.similarity_search("cat", k=2)
    assert {d.id for d in plain} == {"x", "y"}
    mmr = vs.max_marginal_relevance_search("cat", k=2, fetch_k=3, lambda_mult=0.3)
    assert [d.id for d in mmr][1] == "z"
    retriever = vs.as_retriever(search_type="mmr", search_kwargs={"k": 2, "lambda_mult": 0.3})
    assert retriever.invoke("cat")[1].id == "z"


def test_search_by_vector_matches_search_by_text(vs, fake):
    vs.add_texts(["cat", "dog", "sea"], ids=["1", "2", "3"])
    by_vec = vs.similarity_search_by_vector((fake.vector("dog") * 7).tolist(), k=2)
    assert by_vec == vs.similarity_search("dog", k=2)


def test_relevance_scores_are_clipped_cosines(vs):
    vs.add_texts(["cat", "dog"], ids=["1", "2"])
    rel = dict((d.id, s) for d, s in vs.similarity_search_with_relevance_scores("cat", k=2))
    assert rel["1"] == pytest.approx(1.0, abs=1e-5) and 0.0 <= rel["2"] < 0.1


def test_writes_persist_faiss_and_survive_reopening(tmp_path, fake):
    vs = TPVectorStore(tmp_path / "idx", FakeLC(fake))
    vs.add_texts(["cat", "dog", "sea"], [{"n": 1}, {"n": 2}, {"n": 3}], ids=["1", "2", "3"])
    vs.delete(["2"])
    vs.close()
    with Store.open(tmp_path / "idx") as store:
        assert FaissEngine(store).is_current() and store.rows.chunk_count() == 2
    again = TPVectorStore(tmp_path / "idx", FakeLC(fake))
    assert again.get_by_ids(["1", "2", "3"]) == [
        Document(id="1", page_content="cat", metadata={"n": 1}),
        Document(id="3", page_content="sea", metadata={"n": 3}),
    ]
    again.delete()  # None = every added text
    assert again.similarity_search("cat") == []


def test_hnsw_index_falls_back_to_a_rebuild_on_delete(tmp_path, fake):
    vs = TPVectorStore(tmp_path / "idx", FakeLC(fake), faiss_factory="HNSW8")
    vs.add_texts(["cat", "dog", "sea", "sky"], ids=["1", "2", "3", "4"])
    vs.delete(["1"])  # HNSW cannot remove ids
    assert vs.similarity_search("cat sea", k=3)[0].id == "3"
    assert "1" not in [d.id for d in vs.similarity_search("cat", k=4)]


def test_other_embeddings_are_refused(tmp_path, fake):
    TPVectorStore(tmp_path / "idx", FakeLC(fake)).add_texts(["cat"])
    with pytest.raises(IndexMismatchError, match="another embedder"):
        TPVectorStore(tmp_path / "idx", DeterministicFakeEmbedding(size=10))


def test_adapter_fingerprint_follows_settings_and_vectors_are_unit():
    a, b = EmbeddingsAdapter(DeterministicFakeEmbedding(size=6)), None
    assert a.fingerprint == EmbeddingsAdapter(DeterministicFakeEmbedding(size=6)).fingerprint
    b = EmbeddingsAdapter(DeterministicFakeEmbedding(size=8))
    assert a.fingerprint != b.fingerprint and b.dimension == 8
    vecs = a.encode(["one", "two"])
    assert vecs.shape == (2, 6) and a.encode("one").shape == (6,)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)


def test_bad_input_gives_clear_errors(vs, tmp_path, fake):
    with pytest.raises(ConfigError, match="reserved"):
        vs.add_texts(["cat"], ids=["chunk-3"])
    with pytest.raises(ConfigError, match="JSON"):
        vs.add_texts(["cat"], [{"when": object()}])
    with pytest.raises(ConfigError, match="one of each"):
        vs.add_texts(["cat", "dog"], ids=["1"])
    with pytest.raises(ConfigError, match="unique"):
        vs.add_texts(["cat", "dog"], ids=["1", "1"])
    with pytest.raises(ConfigError, match="index_dir"):
        TPVectorStore.from_texts(["cat"], FakeLC(fake))
    assert vs.similarity_search("cat") == []  # nothing was half-written


def test_from_texts_and_async(tmp_path, fake):
    vs = TPVectorStore.from_texts(
        ["cat", "dog"], FakeLC(fake), [{"n": 1}, {"n": 2}], ids=["a", "b"], index_dir=tmp_path / "i"
    )
    docs = asyncio.run(vs.asimilarity_search("dog", k=1))
    assert docs == [Document(id="b", page_content="dog", metadata={"n": 2})]


# -- one index holding a synced folder and texts added from code ---------------------------


@pytest.fixture
def mixed(tmp_path, fake):
    root = tmp_path / "docs"
    root.mkdir()
    (root / "cats.txt").write_text("cat cat cat sleeps.")
    (root / "roads.txt").write_text("car on the road.")
    idx = tmp_path / "idx"
    Indexer(fake, IndexOptions(chunk_size=64)).sync(root, idx)
    vs = TPVectorStore(idx, FakeLC(fake))
    vs.add_texts(
        ["a bird in a tree", "a fish in the sea"],
        [{"t": "bird"}, {"t": "fish"}],
        ids=["bird", "fish"],
    )
    yield root, idx, vs
    vs.close()


def test_folder_chunks_and_added_texts_are_searched_together(mixed, fake):
    _, idx, vs = mixed
    docs = vs.similarity_search("cat bird", k=2)
    assert sorted(d.metadata.get("source", d.id) for d in docs) == ["bird", "cats.txt"]
    folder = next(d for d in docs if d.id != "bird")
    assert folder.id.startswith("chunk-") and folder.metadata["chunk_id"] == int(folder.id[6:])
    assert vs.get_by_ids([folder.id]) == [folder]
    with pytest.raises(ConfigError, match="re-sync"):
        vs.delete([folder.id])
    # Hybrid search and the LangChain retriever see the added texts, with their metadata.
    hits = TPRetriever(searcher=Searcher(idx, fake), k=4).invoke("fish sea")
    assert hits[0].id == "fish" and hits[0].metadata["t"] == "fish"
    assert hits[0].metadata["source"] == "vectorstore://fish"


def test_folder_sync_keeps_added_texts_and_rebuild_reembeds_them(mixed, tokenizer):
    root, idx, vs = mixed
    (root / "roads.txt").unlink()
    report = Indexer(FakeEmbedder(tokenizer), IndexOptions(chunk_size=64)).sync(root, idx)
    assert report.removed == 1
    assert [d.id for d in vs.get_by_ids(["bird", "fish"])] == ["bird", "fish"]
    # A rebuild with another embedder re-embeds the added texts instead of dropping them.
    # The rotated vocabulary puts every word on another axis, so stale vectors would score 0.
    other = FakeEmbedder(tokenizer, vocab=VOCAB[1:] + VOCAB[:1])
    Indexer(other, IndexOptions(chunk_size=64)).sync(root, idx, rebuild=True)
    s = Searcher(idx, other)
    hits = s.search("fish", k=1, mode="dense")
    expected = float(other.vector("fish") @ other.vector("a fish in the sea"))
    assert hits[0].doc_id == "fish" and hits[0].scores["dense"] == pytest.approx(expected, abs=1e-5)
    assert s.search("bird", k=1, mode="dense", flt=Filter(metadata={"t": "bird"}))[0].doc_id == (
        "bird"
    )


def test_api_only_index_takes_the_first_folder_synced(tmp_path, vs, fake):
    vs.add_texts(["cat"], ids=["c"])
    root = tmp_path / "docs"
    root.mkdir()
    (root / "dog.txt").write_text("dog")
    Indexer(fake, IndexOptions(chunk_size=64)).sync(root, tmp_path / "idx")
    with Store.open(tmp_path / "idx") as store:
        assert store.meta()["root"] == str(root.resolve()) and store.rows.chunk_count() == 2


def test_cli_searches_added_texts_with_a_metadata_filter(tmp_path):
    import json

    from click.testing import CliRunner

    from retriever.cli import cli

    idx = tmp_path / "idx"
    vs = TPVectorStore(idx, DeterministicFakeEmbedding(size=6))
    vs.add_texts(["cat one", "cat two", "cat three"], [{"n": 1}, {"n": 2}, {"n": 3}])
    vs.close()
    run = CliRunner().invoke(
        cli, ["search", "cat", "--index", str(idx), "--mode", "bm25", "--meta", "n=2", "--json"]
    )
    assert run.exit_code == 0, run.output
    hits = json.loads(run.output)["results"]
    assert [h["text"] for h in hits] == ["cat two"] and hits[0]["metadata"] == {"n": 2}
    bad = CliRunner().invoke(cli, ["search", "cat", "--index", str(idx), "--meta", "n"])
    assert bad.exit_code != 0 and "KEY=VALUE" in bad.output
    # Dense search needs those third-party embeddings, which the CLI cannot load by name.
    dense = CliRunner().invoke(cli, ["search", "cat", "--index", str(idx), "--mode", "dense"])
    assert dense.exit_code == 1 and "LangChain embeddings" in dense.output
