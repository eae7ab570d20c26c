"""LangChain ``Embeddings`` over a :class:`~retriever.embed.embedder.TPEmbedder`.

Documents and queries go through the same embedder (queries with its query prompt), so they
share one space and one fingerprint. ``TPEmbeddings()`` has the settings ``tpr index`` gives a
new index (the model's retrieval preset), so it opens what ``tpr index`` and ``tpr demo`` built;
``TPEmbeddings.from_index(name)`` takes whatever settings an existing index records.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from langchain_core.embeddings import Embeddings

from ..embed.config import EmbedderConfig
from ..embed.embedder import TPEmbedder
from ..errors import ConfigError


class TPEmbeddings(Embeddings):
    """LangChain embeddings backed by Token Prepending.

    ``TPEmbeddings()`` loads the default model with its retrieval preset (what ``tpr index``
    uses); ``TPEmbeddings(model="/path/to/hf-model", tp_exit=6)`` takes any
    :class:`~retriever.embed.config.EmbedderConfig` field as a keyword on top of that model's
    preset (``model="minilm"`` gives the baseline behind the same class). Pass ``config`` for
    exactly those settings, e.g. ``EmbedderConfig()`` for the paper's sentence-similarity ones.

    Args:
        embedder: an existing embedder; when None, one is loaded from ``config``.
        config: settings used to load an embedder when ``embedder`` is None (default: the
            retrieval preset of ``overrides.get("model")``).
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

            if config is None:
                config = EmbedderConfig.for_retrieval(**overrides)
            else:
                config = replace(config, **overrides)
            embedder = load_embedder(config)
        self.embedder = embedder

    @classmethod
    def from_index(cls, index: str | Path, **runtime) -> TPEmbeddings:
        """The embeddings an existing index was built with (a name or a path).

        Args:
            index: the index.
            **runtime: ``device``, ``dtype`` or ``batch_size`` for this machine.

        Raises:
            IndexNotFoundError: no index there. ConfigError: a runtime setting that is not one,
                or an index built with other LangChain embeddings (pass those instead).
        """
        from ..embed.factory import load_embedder
        from ..index.settings import index_embedder_config
        from ..index.store import Store, resolve_index

        unknown = set(runtime) - {"device", "dtype", "batch_size"}
        if unknown:
            raise ConfigError(
                f"from_index takes only device, dtype and batch_size, not {sorted(unknown)}: "
                "an index's other settings are what make its vectors mean something"
            )
        with Store.open(resolve_index(index)) as store:
            config = index_embedder_config(store.meta())
        return cls(load_embedder(replace(config, **runtime)))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        encode = getattr(self.embedder, "encode_query", None) or self.embedder.encode
        return encode(text).tolist()
