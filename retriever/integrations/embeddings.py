"""LangChain ``Embeddings`` over a :class:`~retriever.embed.embedder.TPEmbedder`.

Documents and queries go through the same embedder, so query and passage vectors share one
space and one fingerprint.
"""

from __future__ import annotations

from dataclasses import replace

from langchain_core.embeddings import Embeddings

from ..embed.config import EmbedderConfig
from ..embed.embedder import TPEmbedder


class TPEmbeddings(Embeddings):
    """LangChain embeddings backed by Token Prepending.

    ``TPEmbeddings()`` loads the default model; ``TPEmbeddings(model="/path/to/hf-model",
    tp_exit=6)`` takes any :class:`~retriever.embed.embedder.EmbedderConfig` field as a keyword
    (``model="minilm"`` gives the baseline behind the same class).

    Args:
        embedder: an existing embedder; when None, one is loaded from ``config``.
        config: settings used to load an embedder when ``embedder`` is None.
        **overrides: config fields that replace those of ``config``.
    """

    def __init__(
        self,
        embedder: TPEmbedder | None = None,
        config: EmbedderConfig | None = None,
        **overrides,
    ):
        if embedder is None:
            from ..embed.factory import load_embedder

            embedder = load_embedder(replace(config or EmbedderConfig(), **overrides))
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        encode = getattr(self.embedder, "encode_query", None) or self.embedder.encode
        return encode(text).tolist()
