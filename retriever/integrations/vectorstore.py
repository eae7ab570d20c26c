"""``TPVectorStore``: a LangChain ``VectorStore`` over a tp-retriever index.

The index stays the one source of truth. A text added through this class is stored as one
``files`` row (status ``added``, path ``vectorstore://<id>``) with one chunk: it is never split
again (LangChain callers split before adding), its metadata goes in the chunk's JSON
``metadata`` column, and folder syncs leave it alone. So one index can hold a synced folder
*and* texts added from code, and ``tpr search``, the UI and :class:`TPRetriever` see both.

Ids: a text added here keeps the caller's id (or gets a UUID); a chunk of a folder file is
``chunk-<n>`` (read-only here: change the folder and re-sync instead). Adding an existing id
replaces it.

Embeddings: :class:`~retriever.integrations.embeddings.TPEmbeddings` (or anything with an
``embedder`` that has a ``fingerprint``) is used directly, so the index is the same as one ``tpr
index`` builds. Any other LangChain ``Embeddings`` is wrapped in :class:`EmbeddingsAdapter`,
fingerprinted by class and scalar parameters, and vectors are L2-normalised so that scores are
cosine similarities. An index refuses embeddings other than the ones it was built with.

Writes take the index's writer lock for the duration of the call only, commit in one
transaction, and update the FAISS cache in place (a rebuild from SQLite where the index type
cannot remove ids).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from ..errors import ConfigError
from ..index import sparse_terms
from ..index.engines import engine_for
from ..index.settings import OPEN_HINT, bind
from ..index.store import Store, resolve_index
from ..index.tables import ADDED, file_row
from ..index.vectors import DEFAULT_FACTORY
from ..search.filters import Filter, as_filter
from ..search.searcher import FOLDER_ID, Searcher
from .documents import to_document


class EmbeddingsAdapter:
    """Any LangChain ``Embeddings`` behind the embedder interface the index and Searcher use.

    Args:
        embeddings: the LangChain embeddings object.
    """

    def __init__(self, embeddings: Embeddings):
        self.embeddings = embeddings
        cls = type(embeddings)
        self.dimension = len(embeddings.embed_query("dimension probe"))
        self.identity = {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "params": _scalar_params(embeddings),
            "dimension": self.dimension,
        }
        blob = json.dumps(self.identity, sort_keys=True).encode()
        self.fingerprint = hashlib.sha256(blob).hexdigest()

        class _Config:  # what Searcher.default_hybrid reads
            model = f"langchain:{cls.__qualname__}"

        self.config = _Config()

    def describe(self) -> dict:
        return {
            "config": {"model": self.config.model, "langchain": self.identity},
            "fingerprint": self.fingerprint,
        }

    def encode(self, sentences: str | Sequence[str]) -> np.ndarray:
        """str -> 1-D, list -> 2-D float32, L2-normalised (so inner product = cosine)."""
        single = isinstance(sentences, str)
        if single:
            vecs = np.asarray([self.embeddings.embed_query(sentences)], dtype=np.float32)
        else:
            vecs = np.asarray(self.embeddings.embed_documents(list(sentences)), dtype=np.float32)
            vecs = vecs.reshape(len(sentences), self.dimension)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        vecs = vecs / np.where(norms == 0, 1.0, norms)
        return vecs[0] if single else vecs


def _scalar_params(embeddings) -> dict:
    """The scalar settings of a (pydantic) embeddings object: stable across processes."""
    dump = getattr(embeddings, "model_dump", None)
    if dump is None:
        return {}
    try:
        data = dump()
    except Exception:  # a model that cannot dump is fingerprinted by class only
        return {}
    return {k: v for k, v in data.items() if isinstance(v, (str, int, float, bool, type(None)))}


def as_embedder(embeddings: Embeddings):
    """The embedder to store and search with: ours directly, anything else adapted."""
    inner = getattr(embeddings, "embedder", None)
    if inner is not None and getattr(inner, "fingerprint", None):
        return inner
    return EmbeddingsAdapter(embeddings)


class TPVectorStore(VectorStore):
    """A LangChain vector store whose storage is a tp-retriever index directory.

    Args:
        index_dir: index path or name (created if missing).
        embedding: LangChain embeddings; must match the index's if it exists.
        faiss_factory: FAISS index type; None: the index's own, else "auto" (Flat while
            small, then IVF). A new value on an existing index is applied to all of it.

    Raises:
        IndexMismatchError: the index was built with other embeddings.
        IndexLockedError: another process is writing to the index right now.
    """

    def __init__(
        self,
        index_dir: str | Path,
        embedding: Embeddings,
        faiss_factory: str | None = None,
    ):
        self.index_dir = resolve_index(index_dir)
        self._embeddings = embedding
        self.embedder = as_embedder(embedding)
        with Store.writer(self.index_dir) as store:
            factory = faiss_factory or DEFAULT_FACTORY
            info = self.embedder.describe()
            bind(store, None, info, self.embedder.dimension, factory, remedy=OPEN_HINT)
            if faiss_factory and store.meta_value("faiss_factory") != faiss_factory:
                store.set_meta(faiss_factory=faiss_factory)  # applied to the whole index
                engine_for(store).repair()
        self.searcher = Searcher(self.index_dir, self.embedder)
        self._root = self.searcher.meta.get("root")

    @property
    def embeddings(self) -> Embeddings:
        return self._embeddings

    def close(self) -> None:
        self.searcher.close()

    # -- writing ----------------------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict] | None = None,
        *,
        ids: list[str | None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and store texts (one chunk each); an existing id is replaced.

        Raises:
            ConfigError: mismatched lengths, duplicate or reserved ids, metadata that is not
                JSON.
            EmptyInputError: an empty text.
        """
        texts = list(texts)
        metadatas = list(metadatas) if metadatas is not None else [{} for _ in texts]
        ids = [i or str(uuid.uuid4()) for i in ids] if ids is not None else []
        ids = ids or [str(uuid.uuid4()) for _ in texts]
        if not (len(texts) == len(metadatas) == len(ids)):
            raise ConfigError(
                f"got {len(texts)} texts, {len(metadatas)} metadatas and {len(ids)} ids; "
                "pass one of each per text"
            )
        if len(set(ids)) != len(ids):
            raise ConfigError("ids must be unique within one call")
        for i in ids:
            if FOLDER_ID.fullmatch(i):
                raise ConfigError(f"id {i!r} is reserved for chunks of the indexed folder")
        meta_json = [_metadata_json(m, i) for i, m in enumerate(metadatas)]
        for i, text in enumerate(texts):
            if isinstance(text, str) and "\x00" in text:
                raise ConfigError(
                    f"text {i} contains NUL characters, which SQLite and the tokenizer treat as "
                    "the end of the text; remove them (text.replace('\\x00', ''))"
                )
        if not texts:
            return []
        embedded = self.embedder.encode(texts).astype(np.float32, copy=False)
        tokenize = getattr(self.embedder, "tokenize", None)
        with Store.writer(self.index_dir) as store:
            before = store.generation()
            with store.atomic():
                removed = store.rows.delete_added(ids)
                added = []
                for doc_id, text, meta, vec in zip(ids, texts, meta_json, embedded, strict=True):
                    data = text.encode()
                    row = file_row("", len(data), 0, hashlib.sha256(data).hexdigest(), ADDED)
                    chunk = {
                        "ordinal": 0,
                        "text": text,
                        "start": 0,
                        "end": len(text),
                        "page": None,
                        "start_line": 1,
                        "end_line": text.count("\n") + 1,
                        "tokens": len(tokenize(text).ids) if tokenize else 0,
                        "vector": vec.tobytes(),
                        "metadata": meta,
                    }
                    added.append(store.rows.add_text(doc_id, row, chunk))
                after = store.bump_generation()
            self._update_engine(store, before, after, removed, added, embedded)
            scale = store.meta_value("sparse_scale")
            if scale is not None:  # an index built with --sparse keeps its sparse words whole
                encoder = sparse_terms.encoder_for(self.embedder, scale)
                sparse_terms.catch_up(store, self.embedder, encoder)
        return ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Delete texts added here by id (all of them when ids is None); missing ids are
        ignored.

        Raises:
            ConfigError: an id names a chunk of the indexed folder.
        """
        for i in ids or []:
            if FOLDER_ID.fullmatch(i):
                raise ConfigError(
                    f"{i} is a chunk of the indexed folder; remove or exclude the file and "
                    "re-sync (`tpr index`) instead"
                )
        with Store.writer(self.index_dir) as store:
            if ids is None:
                ids = store.rows.added_ids()
            before = store.generation()
            with store.atomic():
                removed = store.rows.delete_added(list(ids))
                if not removed:
                    return True
                after = store.bump_generation()
            self._update_engine(store, before, after, removed, [], None)
        return True

    def _update_engine(self, store, before, after, removed, added, embedded) -> None:
        """Bring the index's engine from generation ``before`` to ``after`` through the
        searcher's engine (which patches what it holds instead of rebuilding, where it can)."""
        self.searcher.engine.write_through(store, before, after, removed, added, embedded)

    # -- reading ----------------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Documents for the ids that exist (added texts, or ``chunk-<n>`` folder chunks)."""
        chunk_ids = self.searcher.chunk_ids_for(ids)
        rows = self.searcher.fetch(chunk_ids)
        return [to_document(rows[c], root=self._root) for c in chunk_ids if c in rows]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: dict | Filter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Dense search; the score is the cosine similarity (-1..1, higher is closer)."""
        results = self.searcher.search(query, k=k, mode="dense", flt=as_filter(filter))
        return [(to_document(r.as_dict(), root=self._root), r.score) for r in results]

    def similarity_search(
        self, query: str, k: int = 4, filter: dict | Filter | None = None, **kwargs: Any
    ) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: dict | Filter | None = None, **kwargs
    ) -> list[Document]:
        vec = _unit(embedding)
        results = self.searcher.search(
            "", k=k, mode="dense", flt=as_filter(filter), query_vector=vec
        )
        return [to_document(r.as_dict(), root=self._root) for r in results]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: dict | Filter | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """MMR over the ``fetch_k`` nearest chunks (1 = relevance only, 0 = diversity only).
        The query is embedded as similarity search embeds it (the query prompt)."""
        vec = self.searcher.embed_query(query)
        return self.max_marginal_relevance_search_by_vector(
            vec, k, fetch_k, lambda_mult, filter, **kwargs
        )

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: dict | Filter | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        results = self.searcher.search(
            "",
            k=k,
            mode="dense",
            flt=as_filter(filter),
            fetch_k=fetch_k,
            mmr=True,
            lambda_mult=lambda_mult,
            query_vector=_unit(embedding),
        )
        return [to_document(r.as_dict(), root=self._root) for r in results]

    def _select_relevance_score_fn(self):
        # Scores are cosine similarities; relevance is the same number clipped to [0, 1].
        return lambda score: min(1.0, max(0.0, score))

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict] | None = None,
        *,
        ids: list[str] | None = None,
        index_dir: str | Path | None = None,
        **kwargs: Any,
    ) -> TPVectorStore:
        """Create (or open) the index at ``index_dir`` and add the texts.

        Raises:
            ConfigError: no ``index_dir`` given.
        """
        if index_dir is None:
            raise ConfigError(
                "TPVectorStore.from_texts needs index_dir=... (a folder or index name to keep "
                "the index in)"
            )
        store = cls(index_dir, embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store


def _metadata_json(metadata, i: int) -> str:
    """One text's metadata as strict JSON, checked at the door: a value that is not JSON (NaN,
    Infinity, a set, bytes) would make every filtered search of the index fail later.

    Raises:
        ConfigError: naming the text and the problem.
    """
    if metadata is None:
        return "{}"
    if not isinstance(metadata, dict):
        raise ConfigError(f"metadata {i} must be a dict, not {type(metadata).__name__}")
    try:
        return json.dumps(metadata, sort_keys=True, allow_nan=False)
    except ValueError:
        bad = [k for k, v in metadata.items() if isinstance(v, float) and not np.isfinite(v)]
        raise ConfigError(
            f"metadata {i} has NaN or infinity ({', '.join(map(repr, bad)) or 'nested'}), "
            "which JSON cannot hold; store None or a string instead"
        ) from None
    except TypeError as e:
        raise ConfigError(
            f"metadata {i} is not JSON-serialisable ({e}); use strings, numbers, booleans, "
            "None, lists and dicts with string keys"
        ) from None


def _unit(vector) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    n = float(np.linalg.norm(v))
    return v / n if n else v
