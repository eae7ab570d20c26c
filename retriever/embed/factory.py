"""The product-wide embedder factory: an ``EmbedderConfig`` (or an index's recorded settings)
in, a loaded embedder out, for the CLI, the UI, LangChain and the evaluations alike.

* :func:`load_embedder`: ``minilm`` -> :class:`~retriever.embed.minilm.MiniLMEmbedder`, anything
  else -> :class:`~retriever.embed.embedder.TPEmbedder`;
* :class:`LazyEmbedder`: loads on first use (``tpr index`` takes its lock and compares settings
  before any weights load);
* :func:`index_embedder_config`, :func:`load_index_embedder`, :func:`index_settings`: the settings
  an index was built with, and those to build or re-sync one with.
"""

from __future__ import annotations

import contextlib

from ..errors import ConfigError
from .minilm import MINILM, MiniLMEmbedder


def load_embedder(config):
    """The embedder for ``config``: MiniLM for ``model="minilm"``, else a TP embedder."""
    if config.model == MINILM:
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


def index_embedder_config(meta: dict):
    """The ``EmbedderConfig`` an index was built with (from its meta table).

    Raises:
        ConfigError: the index was built through the VectorStore with other LangChain
            embeddings, which cannot be loaded from a name.
    """
    from .config import EmbedderConfig

    config = dict(meta.get("embedder") or {})
    if str(config.get("model", "")).startswith("langchain:"):
        raise ConfigError(
            f"this index was built with LangChain embeddings {config['model'][10:]!r}; search it "
            "from Python with TPVectorStore(index, those_embeddings), or use --mode bm25"
        )
    return EmbedderConfig(**config)


def load_index_embedder(index_dir):
    """Load the embedder an index was built with."""
    from ..index.store import Store

    with Store.open(index_dir) as store:
        return load_embedder(index_embedder_config(store.meta()))


def index_settings(index_dir, given: dict, defaults: dict | None = None, rebuild: bool = False):
    """The ``EmbedderConfig`` to build or re-sync the index at ``index_dir`` with: the settings
    given, then the index's own, then the model's retrieval preset
    (:func:`~retriever.embed.config.index_config`).

    Another model than the index's takes none of the index's settings (MiniLM's prompt "none"
    means nothing to an LLM): its settings then differ from the index's, and the indexer refuses
    them with the list of differences.

    Args:
        index_dir: the index directory (it need not exist).
        given: settings the user chose explicitly.
        defaults: runtime settings and anything else not set otherwise.
        rebuild: the index starts over; it still keeps its own settings where none are given
            (read even from a damaged index.db when its settings survive), so a rebuild never
            silently switches an index to another model.
    """
    from dataclasses import asdict

    from .config import index_config

    meta = _recorded_meta(index_dir, salvage=rebuild)
    stored = None
    # LangChain embeddings cannot be loaded by name (ConfigError): binding refuses them.
    with contextlib.suppress(ConfigError, TypeError):
        if meta.get("embedder"):
            stored = asdict(index_embedder_config(meta))
    if stored and given.get("model", stored["model"]) != stored["model"]:
        stored = None
    return index_config(given, defaults, stored)


def _recorded_meta(index_dir, salvage: bool = False) -> dict:
    """The meta table of the index at ``index_dir`` ({} when there is none yet, or when its
    first run stopped before it recorded anything).

    Args:
        salvage: a damaged index.db gives whatever meta rows can still be read ({} if none)
            instead of raising (``--rebuild`` keeps the settings of the index it replaces).
    """
    from pathlib import Path

    from ..errors import IndexCorruptError
    from ..index.store import DB_NAME, Store, salvage_meta

    if not (Path(index_dir) / DB_NAME).exists():
        return {}
    try:
        with Store.open(index_dir, bound=False) as store:
            return store.meta()
    except IndexCorruptError:
        if not salvage:
            raise
        return salvage_meta(Path(index_dir))
