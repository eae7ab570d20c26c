"""LLM sparse vectors (PromptReps-style) from the forward pass that gives the dense vector.

PromptReps (Zhuang et al., 2024) reads the next-token logits at the prompt's last position as a
bag-of-words vector: the prompt asks for one word that stands for the text, so the logits rank
vocabulary words by how well they represent it. When the output layer is the model's last, the
dense last-token vector *is* that position's final-normed hidden state ``h``, so the logits are
``lm_head(h)``: no second forward pass. Vectors stored L2-normalised are scaled back by the
typical norm of ``h`` (:func:`hidden_norm`), which the final RMSNorm keeps nearly constant.

Words, not tokens. After ``in one word:"`` the model predicts a word with no leading space and
often capitalised, while the text's own tokens carry a leading space. A word's weight is the
largest logit over the first tokens of its spellings (``word``, `` word``, ``Word``,
`` Word``), through ``log(1 + relu(x))`` as in PromptReps. Only words that occur in the text
are kept, which makes the vector an LLM-weighted bag of the text's words that matches queries
word for word, as BM25 does; ``expand`` adds the top vocabulary words (single-token words the
text does not contain) as expansion terms.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError

WORD = re.compile(r"[^\W\d_]{2,}")  # words of two or more letters


def words_of(text: str) -> list[str]:
    """Distinct lower-cased words of a text, in order."""
    return list(dict.fromkeys(w.lower() for w in WORD.findall(text)))


def hidden_norm(embedder, texts: Sequence[str]) -> float:
    """Median norm of the unnormalised final-layer last-token vectors of a few texts."""
    c = embedder.config
    rng = (c.tp_start, c.tp_exit) if c.tp else None
    grid = embedder.encode_grid(
        list(texts), [rng], [c.output_layer], ["last"], normalize_embeddings=False
    )
    return float(np.median(np.linalg.norm(grid[(rng, c.output_layer, "last")], axis=1)))


# Poolings whose stored vectors carry the last-token state (``last+mean`` puts it first, see
# :func:`retriever.embed.embedder.combine_poolings`).
LAST_TOKEN_POOLINGS = ("last", "last+mean")


def stored_last_token(vectors: np.ndarray, pooling: str, hidden: int) -> np.ndarray:
    """Unit last-token vectors from stored dense vectors of ``last`` or ``last+mean`` pooling."""
    v = np.atleast_2d(vectors)
    part = v[:, :hidden] if pooling == "last+mean" else v
    return part / np.maximum(np.linalg.norm(part, axis=1, keepdims=True), 1e-12)


class SparseEncoder:
    """Word-weight vectors from a TP embedder's final-layer last-token vectors.

    Args:
        embedder: a :class:`~retriever.embed.embedder.TPEmbedder` whose output layer is the last and
            pooling ``last`` or ``last+mean`` (the logits belong to the last position of the
            final layer; give :meth:`encode` the last-token part, :func:`stored_last_token`).
        scale: the norm to give stored unit vectors back (see :func:`hidden_norm`); 1.0 for
            unnormalised vectors.

    Raises:
        ConfigError: another output layer or pooling.
    """

    def __init__(self, embedder, scale: float = 1.0):
        c = embedder.config
        if c.output_layer != embedder.backbone.num_layers or c.pooling not in LAST_TOKEN_POOLINGS:
            raise ConfigError(
                "sparse vectors need the final layer's last-token state (output_layer="
                f"{embedder.backbone.num_layers}, pooling 'last' or 'last+mean'), not layer "
                f"{c.output_layer} with {c.pooling!r} pooling"
            )
        import torch

        self.torch = torch
        self.tokenizer = embedder.tokenizer
        head = embedder.model.get_output_embeddings()
        self.weight = head.weight.detach().to("cpu", torch.float32)  # [V, H]
        cfg = embedder.model.config.get_text_config()
        self.softcap = getattr(cfg, "final_logit_softcapping", None)
        self.scale = scale
        self._ids: dict[str, np.ndarray] = {}
        self._vocab_words: list[str | None] | None = None

    def _spelling_ids(self, words: list[str]) -> None:
        new = [w for w in words if w not in self._ids]
        if not new:
            return
        spellings = [s for w in new for s in (w, " " + w, w.capitalize(), " " + w.capitalize())]
        ids = self.tokenizer(spellings, add_special_tokens=False)["input_ids"]
        for i, w in enumerate(new):
            firsts = {t[0] for t in ids[4 * i : 4 * i + 4] if t}
            self._ids[w] = np.fromiter(firsts, dtype=np.int64)

    def _vocab(self) -> list[str | None]:
        """Token id -> the lower-cased word it spells on its own (None if not a word)."""
        if self._vocab_words is None:
            tokens = self.tokenizer.convert_ids_to_tokens(list(range(self.weight.shape[0])))
            out: list[str | None] = []
            for t in tokens:
                w = (t or "").replace("▁", " ").replace("Ġ", " ").strip().lower()
                out.append(w if WORD.fullmatch(w) else None)
            self._vocab_words = out
        return self._vocab_words

    def _expansion(self, row: np.ndarray, bag: dict, n: int) -> dict[str, float]:
        """The n best-scoring vocabulary words that are not in ``bag`` already."""
        vocab = self._vocab()
        top = np.argpartition(-row, n * 4)[: n * 4]
        extra: dict[str, float] = {}
        for tid in top[np.argsort(-row[top])]:
            w = vocab[tid]
            if w and w not in bag and w not in extra and row[tid] > 0:
                extra[w] = float(np.log1p(row[tid]))
                if len(extra) == n:
                    break
        return extra

    def logits(self, vectors: np.ndarray) -> np.ndarray:
        """[N, V] next-token logits for [N, H] last-token vectors."""
        t = self.torch
        h = t.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)) * self.scale
        x = h @ self.weight.T
        if self.softcap:
            x = t.tanh(x / self.softcap) * self.softcap
        return x.numpy()

    def encode(
        self, texts: Sequence[str], vectors: np.ndarray, expand: int = 0, batch: int = 64
    ) -> list[dict[str, float]]:
        """Sparse ``{word: weight}`` per text; weights are ``log(1 + relu(logit))``.

        Args:
            texts: the texts the vectors were computed from (their words are kept).
            vectors: [N, H] final-layer last-token vectors, in the same order.
            expand: also keep this many top-logit vocabulary words not in the text.
            batch: texts per logits matrix ([batch, vocab] floats in memory).
        """
        if len(texts) != len(vectors):
            raise ConfigError(f"{len(texts)} texts but {len(vectors)} vectors")
        out: list[dict[str, float]] = []
        for a in range(0, len(texts), batch):
            logits = self.logits(vectors[a : a + batch])
            for text, row in zip(texts[a : a + batch], logits, strict=True):
                words = words_of(text)
                self._spelling_ids(words)
                bag = {}
                for w in words:
                    ids = self._ids[w]
                    if len(ids):
                        x = float(row[ids].max())
                        if x > 0:
                            bag[w] = float(np.log1p(x))
                if expand:
                    bag.update(self._expansion(row, bag, expand))
                out.append(bag)
        return out


def sparse_scores(queries: list[dict[str, float]], docs: list[dict[str, float]]) -> np.ndarray:
    """[Q, D] dot products of word-weight vectors (scipy sparse matrices)."""
    from scipy import sparse

    vocab: dict[str, int] = {}

    def matrix(bags):
        rows, cols, vals = [], [], []
        for i, bag in enumerate(bags):
            for w, x in bag.items():
                rows.append(i)
                cols.append(vocab.setdefault(w, len(vocab)))
                vals.append(x)
        return rows, cols, vals

    d = matrix(docs)
    q = matrix(queries)
    shape_v = len(vocab)
    dm = sparse.csr_matrix((d[2], (d[0], d[1])), shape=(len(docs), shape_v), dtype=np.float32)
    qm = sparse.csr_matrix((q[2], (q[0], q[1])), shape=(len(queries), shape_v), dtype=np.float32)
    return (qm @ dm.T).toarray()
