"""``TPRetriever``: a LangChain retriever over an index, for any RAG chain.

Each LangChain ``Document`` carries the chunk text as ``page_content`` and, in ``metadata``,
the source path, offsets, page, chunk id and every score component, so a chain can cite its
sources. The async API comes from ``BaseRetriever`` (the sync search runs in an executor).
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor

from ..errors import ConfigError
from ..search.filters import Filter, as_filter
from ..search.request import SEARCH_FIELDS, SearchRequest
from ..search.searcher import Searcher
from .documents import to_document


class PerCallRetriever(BaseRetriever):
    """A retriever whose async calls take per-call settings (``ainvoke(q, k=2)``,
    ``search_kwargs=``) as its sync calls do: BaseRetriever's async default drops them."""

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        # Run the sync search, with the settings, on an executor thread (Searchers and the
        # HTTP client are thread-safe).
        return await run_in_executor(
            None, self._get_relevant_documents, query, run_manager=run_manager.get_sync(), **kwargs
        )


class TPRetriever(PerCallRetriever):
    """Retrieve chunks from a tp-retriever index.

    Attributes:
        searcher: an open :class:`~retriever.search.searcher.Searcher` (index + embedder).
        k: documents returned.
        mode: hybrid, dense or bm25.
        filter: restricts candidates: a :class:`~retriever.search.filters.Filter`, or a dict of
            its fields (``{"path_glob": "docs/*.md"}``), or a dict of stored metadata to match.
        fetch_k: candidates per side before fusion.
        weights: fusion weights for hybrid (default per model).
        fusion: ``rrf`` (ranks) or ``score`` (min-max normalised scores) for hybrid; None =
            the model's measured default.
        mmr: re-rank the candidates by maximal marginal relevance.
        lambda_mult: MMR trade-off, 1 = relevance only, 0 = diversity only.
        min_score: drop results below this score (cosine for dense, BM25 for bm25, the fused
            score for hybrid; see :meth:`~retriever.search.searcher.Searcher.search`).
        sparse_weight: > 0 adds the LLM's sparse words as a third hybrid side.

    Each setting is a field of :class:`~retriever.search.request.SearchRequest`, the one
    request every door builds. ``invoke(query, k=..., mode=..., ...)`` (or
    ``search_kwargs={...}``) overrides any of these for one call; an unknown keyword is an
    error.
    """

    searcher: Any
    k: int = 5
    mode: str = "hybrid"
    filter: Filter = Filter()
    fetch_k: int = 50
    weights: dict[str, float] | None = None
    mmr: bool = False
    lambda_mult: float = 0.5
    min_score: float | None = None
    fusion: str | None = None
    sparse_weight: float = 0.0

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        kwargs = _settings(kwargs, "invoke")
        opts = {name: kwargs.get(name, getattr(self, name)) for name in SETTINGS}
        opts["filter"] = as_filter(opts["filter"])
        results = self.searcher.run(SearchRequest(query, **opts))
        root = self.searcher.meta.get("root")
        return [to_document(r.as_dict(), scores=True, root=root) for r in results]

    @classmethod
    def from_index(cls, index_dir, embedder=None, **kwargs) -> TPRetriever:
        """Open an index (path or name), loading the embedder it was built with if none given.

        Settings come as keywords (``k=4, mode="dense"``) or, as LangChain's ``as_retriever``
        passes them, in ``search_kwargs={"k": 4}``; an unknown one is refused, never ignored.

        Raises:
            ConfigError: an unknown setting.
        """
        kwargs = _settings(kwargs, "from_index")
        return cls(searcher=Searcher.open(index_dir, embedder), **kwargs)


SETTINGS = tuple(name for name in SEARCH_FIELDS if name != "query")


def _settings(kwargs: dict, where: str) -> dict:
    """Keywords with ``search_kwargs`` merged in; an unknown key raises, naming the known ones."""
    kwargs = dict(kwargs)
    nested = kwargs.pop("search_kwargs", None) or {}
    if not isinstance(nested, dict):
        raise ConfigError(f"search_kwargs must be a dict, not {type(nested).__name__}")
    merged = {**nested, **kwargs}
    unknown = sorted(set(merged) - set(SETTINGS))
    if unknown:
        raise ConfigError(
            f"TPRetriever.{where} got unknown settings {unknown}; the settings are "
            f"{', '.join(SETTINGS)} (directly or in search_kwargs)"
        )
    return merged
