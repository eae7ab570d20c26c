"""The product-wide embedder factory: an ``EmbedderConfig`` in, a loaded embedder out, for the
CLI, the UI, LangChain and the evaluations alike.

* :func:`load_embedder`: ``minilm`` -> :class:`~retriever.embed.minilm.MiniLMEmbedder`, anything
  else -> :class:`~retriever.embed.embedder.TPEmbedder`;
* :class:`LazyEmbedder`: loads on first use (``tpr index`` takes its lock and compares settings
  before any weights load).

Which embedder an index needs is read from the index: :mod:`retriever.index.settings`.
"""

from __future__ import annotations

from ..errors import ConfigError
from .config import MINILM


def load_embedder(config):
    """The embedder for ``config``: MiniLM for ``model="minilm"``, else a TP embedder. Both
    modules import torch, so they are imported here, when a model is loaded."""
    if config.model == MINILM:
        from .minilm import MiniLMEmbedder

        return MiniLMEmbedder(config)
    from .embedder import TPEmbedder

    if config.model.lower().startswith("minilm"):
        raise ConfigError(f"unknown model {config.model!r}; the baseline is named {MINILM!r}")
    return TPEmbedder.load(config)


class LazyEmbedder:
    """An embedder that loads its model on first use.

    ``tpr index`` wraps its embedder in one: the run takes the index's lock, compares settings
    and hashes files first, and a re-run over an unchanged folder never loads the weights.
    ``config`` is the requested config until the model loads, the resolved one after.

    Args:
        config: the ``EmbedderConfig`` to load.
        load: called once with ``config`` to load the embedder (default :func:`load_embedder`).
    """

    def __init__(self, config, load=None):
        self.requested_config = config
        self._load = load or load_embedder
        self._inner = None

    @property
    def loaded(self) -> bool:
        return self._inner is not None

    @property
    def config(self):
        return self._inner.config if self._inner is not None else self.requested_config

    def get(self):
        """The loaded embedder (loading it now if needed)."""
        if self._inner is None:
            self._inner = self._load(self.requested_config)
        return self._inner

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.get(), name)
