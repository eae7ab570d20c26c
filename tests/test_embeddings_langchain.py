"""The LangChain Embeddings wrapper."""

from __future__ import annotations

import asyncio

import numpy as np
from langchain_core.embeddings import Embeddings

from retriever import EmbedderConfig, TPEmbedder
from retriever.embeddings import TPEmbeddings


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
