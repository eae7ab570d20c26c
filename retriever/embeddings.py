"""LangChain ``Embeddings`` over a :class:`~retriever.embedder.TPEmbedder`.

Documents and queries go through the same embedder, so query and passage vectors share one
space and one fingerprint.
"""

from __future__ import annotations

from langchain_core.embeddings import Embeddings

from .embedder import EmbedderConfig, TPEmbedder


class TPEmbeddings(Embeddings):
    """LangChain embeddings backed by Token Prepending.

    Args:
        embedder: an existing embedder; when None, one is loaded from ``config``.
        config: settings used to load an embedder when ``embedder`` is None.
    """

    def __init__(self, embedder: TPEmbedder | None = None, config: EmbedderConfig | None = None):
        self.embedder = embedder or TPEmbedder.load(config)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.encode(text).tolist()
