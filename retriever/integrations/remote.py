"""``TPRemoteRetriever``: a LangChain retriever over a running ``tpr serve``.

The model stays loaded in the server; a chain in another process (or on another machine the user
exposed the server to) asks over HTTP and gets the same Documents as
:class:`~retriever.integrations.retriever.TPRetriever`: chunk text, and in the metadata the source,
``path:line`` citation, lines, heading, offsets, page and every score.
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

from ..client import remote_search
from ..errors import ConfigError
from ..search.filters import FILTER_FIELDS
from .documents import to_document
from .retriever import _settings

REMOTE_KEYS = ("k", "mode", "fetch_k", "mmr", "lambda_mult", "min_score", "fusion")


class TPRemoteRetriever(BaseRetriever):
    """Retrieve chunks from an index served by ``tpr serve``.

    Attributes:
        url: the server, e.g. ``http://127.0.0.1:8765``.
        index: the index name (optional when the server serves one).
        k, mode, fetch_k, mmr, lambda_mult, min_score, fusion: as for ``TPRetriever``.
        filter: a dict of Filter fields (``{"path_glob": "docs/*"}``, ``heading``, ``suffixes``,
            ``since_days``, ``metadata``) or of stored metadata to match.
        timeout: seconds to wait for an answer.

    ``invoke(query, k=..., search_kwargs={...})`` overrides settings for one call; an unknown
    setting is an error.
    """

    url: str
    index: str | None = None
    k: int = 5
    mode: str = "hybrid"
    filter: dict | None = None
    fetch_k: int = 50
    mmr: bool = False
    lambda_mult: float = 0.5
    min_score: float | None = None
    fusion: str | None = None
    timeout: float = 60.0

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        # BaseRetriever's async default drops the per-call settings (k=, search_kwargs=)
        return await run_in_executor(
            None, self._get_relevant_documents, query, run_manager=run_manager.get_sync(), **kwargs
        )

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        kwargs = _settings(kwargs, "invoke")
        if kwargs.get("weights") is not None:
            raise ConfigError("a served index uses its default fusion weights; pass fusion=")
        payload: dict[str, Any] = {"query": query, "index": self.index}
        payload |= {name: kwargs.get(name, getattr(self, name)) for name in REMOTE_KEYS}
        flt = kwargs.get("filter", self.filter)
        if flt:
            payload["filter"] = flt if set(flt) <= FILTER_FIELDS else {"where": flt}
        out = remote_search(self.url, payload, self.timeout)
        return [to_document(r, scores=True) for r in out["results"]]
