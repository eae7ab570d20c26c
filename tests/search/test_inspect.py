"""Nearest-neighbour inspection (retriever.search.inspect): search parameters and the query
prompt."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings

from retriever import EmbedderConfig, TPEmbedder
from retriever.index.indexer import Indexer, IndexOptions
from retriever.integrations.vectorstore import TPVectorStore
from retriever.search.inspect import compare_tp, near_duplicates, neighbours, pca_map
from retriever.search.searcher import Searcher


class RandomUnit(Embeddings):
    """A fixed random vector per text (seeded by its hash): spread out like real embeddings."""

    def _vec(self, text: str) -> list[float]:
        seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
        return np.random.default_rng(seed).standard_normal(24).tolist()

    def embed_documents(self, texts):
        return [self._vec(t) for t in texts]

    def embed_query(self, text):
        return self._vec(text)


def test_neighbours_on_an_ivf_index_use_the_search_parameters(tmp_path):
    """FAISS's default nprobe of 1 would search 1 of 16 lists and miss most neighbours."""
    store = TPVectorStore(tmp_path / "idx", RandomUnit(), faiss_factory="IVF16,Flat")
    store.add_texts([f"text number {i}" for i in range(640)])
    searcher = store.searcher
    ids = [r[0] for r in searcher.store.db.execute("select id from chunks order by id")]
    vectors = searcher._vectors(ids)
    for cid in ids[:20]:
        got = [n.chunk_id for n in neighbours(searcher, cid, 10)]
        sims = vectors @ vectors[ids.index(cid)]
        want = [ids[i] for i in np.argsort(-sims) if ids[i] != cid][:10]
        assert got == want  # nprobe 16 of 16 lists: exact
    pairs = near_duplicates(searcher, threshold=-1.0, limit=5, per_chunk=3)
    assert len(pairs) == 5
    store.close()


@pytest.fixture
def query_prompt_index(tmp_path, tiny_models, tokenizer):
    config = EmbedderConfig(
        tp_exit=3, prompt="promptreps-passage", query_prompt="promptreps-query", max_length=256
    )
    emb = TPEmbedder(tiny_models("llama"), tokenizer, config)
    root = tmp_path / "docs"
    root.mkdir()
    for name, text in {
        "cats.txt": "The cat sat on the mat.",
        "dogs.txt": "Dogs chase cars down the road.",
        "birds.txt": "Birds sing in the trees at dawn.",
    }.items():
        (root / name).write_text(text)
    Indexer(emb, IndexOptions(chunk_size=48)).sync(root, tmp_path / "idx")
    searcher = Searcher(tmp_path / "idx", emb)
    yield searcher, emb
    searcher.close()


def test_tp_comparison_and_map_embed_the_query_as_search_does(query_prompt_index):
    searcher, emb = query_prompt_index
    query = "a cat on a mat"
    q = emb.encode_query(query)
    assert not np.allclose(q, emb.encode(query))  # the two prompts differ
    rows = compare_tp(searcher, query, candidates=3)
    for r in rows:
        assert r.tp_score == pytest.approx(float(searcher._vectors([r.chunk_id])[0] @ q), abs=1e-5)
    ids = [r.chunk_id for r in rows]
    points = pca_map(searcher, query, ids, per_chunk=1)
    vecs = np.vstack([q[None], searcher._vectors([int(i) for i in _map_ids(searcher, ids)])])
    centred = vecs - vecs.mean(0)
    xy = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
    assert abs(points[0]["x"]) == pytest.approx(abs(float(xy[0, 0])), abs=1e-4)
    assert abs(points[0]["y"]) == pytest.approx(abs(float(xy[0, 1])), abs=1e-4)


def _map_ids(searcher, ids):
    """The chunk ids pca_map plots: the results, then each one's nearest neighbour."""
    out = list(dict.fromkeys(ids))
    for cid in ids:
        for n in neighbours(searcher, cid, 1):
            if n.chunk_id not in out:
                out.append(n.chunk_id)
    return out
