"""A deterministic fake embedder: normalised bag-of-words over a fixed vocabulary.

It has the parts of TPEmbedder that indexing and search use (encode, tokenize, tokenizer,
config, fingerprint, describe, dimension), so rankings can be asserted exactly.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict

import numpy as np
from langchain_core.embeddings import Embeddings

from retriever.embed.batching import Encoded
from retriever.embed.config import EmbedderConfig

VOCAB = ["cat", "dog", "fish", "bird", "tree", "car", "road", "sea", "sky", "book"]


class FakeEmbedder:
    def __init__(self, tokenizer, vocab=VOCAB, salt: str = ""):
        self.tokenizer = tokenizer
        self.vocab = list(vocab)
        self.config = EmbedderConfig(model="fake", max_length=128)
        self.dimension = len(self.vocab)
        self.fingerprint = hashlib.sha256(
            ("fake" + ",".join(self.vocab) + salt).encode()
        ).hexdigest()
        self.calls = 0

    def describe(self) -> dict:
        return {"config": asdict(self.config), "fingerprint": self.fingerprint}

    def tokenize(self, text: str, tp=None) -> Encoded:
        ids = self.tokenizer(text)["input_ids"]
        return Encoded(ids, None, 0, len(ids))

    def vector(self, text: str) -> np.ndarray:
        words = re.findall(r"\w+", text.lower())
        v = np.array([sum(w.startswith(t) for w in words) for t in self.vocab], np.float32)
        v[-1] += 1e-3  # never all-zero
        return v / np.linalg.norm(v)

    def encode(self, texts, **kw):
        self.calls += 1
        if isinstance(texts, str):
            return self.vector(texts)
        return np.stack([self.vector(t) for t in texts]) if texts else np.zeros((0, self.dimension))

    def encode_query(self, text: str, **kw) -> np.ndarray:
        """Queries are embedded with their own prompt, as TPEmbedder's are: here the word
        ``query`` becomes ``fish``, so a query embedded with the
        passage side (``encode``) ranks differently and a test can tell the two apart."""
        self.query_calls = getattr(self, "query_calls", 0) + 1
        return self.vector(re.sub(r"\bquery\b", "fish", text))


class FakeLC(Embeddings):
    """LangChain face of the bag-of-words fake embedder (``embedder`` is used directly)."""

    def __init__(self, embedder):
        self.embedder = embedder

    def embed_documents(self, texts):
        return self.embedder.encode(list(texts)).tolist()

    def embed_query(self, text):
        return self.embedder.encode(text).tolist()
