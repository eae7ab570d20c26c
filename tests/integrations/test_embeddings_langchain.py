"""The LangChain Embeddings wrapper."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from retriever import EmbedderConfig, TPEmbedder
from retriever.integrations.embeddings import TPEmbeddings


def test_documents_and_query_share_the_embedder(tiny_models, tokenizer):
    emb = TPEmbedder(tiny_models("qwen2"), tokenizer, EmbedderConfig(tp_exit=3))
    lc = TPEmbeddings(emb)
    assert isinstance(lc, Embeddings)
    docs = lc.embed_documents(["a cat", "a dog on a mat"])
    assert len(docs) == 2 and all(len(d) == emb.dimension for d in docs)
    assert all(isinstance(x, float) for x in docs[0])
    np.testing.assert_allclose(lc.embed_query("a cat"), docs[0], atol=1e-5)
    # The async API of the base class delegates to the sync methods.
    np.testing.assert_allclose(asyncio.run(lc.aembed_query("a cat")), docs[0], atol=1e-5)


class _Params:
    """The embeddings under test load a tiny Llama from a local HF directory."""

    @pytest.fixture(autouse=True)
    def _model_dir(self, tiny_model_dir):
        self._dir = str(tiny_model_dir)

    @property
    def embeddings_class(self):
        return TPEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model": self._dir, "tp_start": 0, "tp_exit": 2, "output_layer": 2}


class TestStandardUnit(_Params, EmbeddingsUnitTests):
    pass


class TestStandardIntegration(_Params, EmbeddingsIntegrationTests):
    pass


def test_keyword_settings_reach_the_embedder(tiny_model_dir):
    lc = TPEmbeddings(model=str(tiny_model_dir), tp=False, output_layer=1)
    assert lc.embedder.config.tp is False and lc.embedder.config.output_layer == 1


def test_embed_query_uses_the_query_prompt(tiny_models, tokenizer):
    cfg = EmbedderConfig(tp_exit=3, prompt="promptreps-passage", query_prompt="promptreps-query")
    emb = TPEmbedder(tiny_models("qwen2"), tokenizer, cfg)
    lc = TPEmbeddings(emb)
    np.testing.assert_allclose(lc.embed_query("rust"), emb.encode_query("rust"), atol=1e-6)
    assert not np.allclose(lc.embed_query("rust"), lc.embed_documents(["rust"])[0], atol=1e-3)
