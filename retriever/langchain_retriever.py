"""``TPRetriever``: a LangChain retriever over an index, for any RAG chain.

Each LangChain ``Document`` carries the chunk text as ``page_content`` and, in ``metadata``,
the source path, offsets, page, chunk id and every score component, so a chain can cite its
sources. The async API comes from ``BaseRetriever`` (the sync search runs in an executor).
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from .search import Filter, Searcher


class TPRetriever(BaseRetriever):
    """Retrieve chunks from a tp-retriever index.

    Attributes:
        searcher: an open :class:`~retriever.search.Searcher` (index + embedder).
        k: documents returned.
        mode: hybrid, dense or bm25.
        filter: restricts candidates (path glob, suffixes, mtime).
        fetch_k: candidates per side before fusion.
        weights: RRF weights for hybrid.
    """

    searcher: Any
    k: int = 5
    mode: str = "hybrid"
    filter: Filter = Filter()
    fetch_k: int = 50
    weights: dict[str, float] | None = None

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        results = self.searcher.search(
            query,
            k=self.k,
            mode=self.mode,
            flt=self.filter,
            fetch_k=self.fetch_k,
            weights=self.weights,
        )
        return [
            Document(
                page_content=r.text,
                id=str(r.chunk_id),
                metadata={
                    "source": r.path,
                    "chunk_id": r.chunk_id,
                    "ordinal": r.ordinal,
                    "start": r.start,
                    "end": r.end,
                    "page": r.page,
                    "score": r.score,
                    "scores": r.scores,
                },
            )
            for r in results
        ]

    @classmethod
    def from_index(cls, index_dir, embedder=None, **kwargs) -> TPRetriever:
        """Open an index (path or name), loading the embedder it was built with if none given."""
        from .store import resolve_index

        index_dir = resolve_index(index_dir)
        if embedder is None:
            from .baselines import load_embedder
            from .embedder import EmbedderConfig
            from .store import Store

            with Store.open(index_dir) as store:
                config = EmbedderConfig(**store.meta()["embedder"])
            embedder = load_embedder(config)
        return cls(searcher=Searcher(index_dir, embedder), **kwargs)
