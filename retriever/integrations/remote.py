"""``TPRemoteRetriever``: a LangChain retriever over a running ``tpr serve``.

The model stays loaded in the server; a chain in another process (or on another machine the user
exposed the server to) asks over HTTP and gets the same Documents as
:class:`~retriever.integrations.retriever.TPRetriever`: chunk text, and in the metadata the source,
``path:line`` citation, lines, heading, offsets, page and every score.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import (
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document

from ..client import remote_search
from ..search.filters import as_filter
from ..search.request import SearchRequest
from .documents import to_document
from .retriever import SETTINGS, PerCallRetriever, _settings


class TPRemoteRetriever(PerCallRetriever):
    """Retrieve chunks from an index served by ``tpr serve``.

    Attributes:
        url: the server, e.g. ``http://127.0.0.1:8765``.
        index: the index name (optional when the server serves one).
        k, mode, fetch_k, weights, fusion, sparse_weight, mmr, lambda_mult, min_score: as for
            ``TPRetriever`` (the fields of :class:`~retriever.search.request.SearchRequest`).
        filter: a dict of Filter fields (``{"path_glob": "docs/*"}``, ``heading``, ``suffixes``,
            ``since_days``, ``metadata``) or a LangChain-style expression
            (``{"source": {"$in": [...]}}``).
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
    weights: dict[str, float] | None = None
    sparse_weight: float = 0.0
    timeout: float = 60.0

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        kwargs = _settings(kwargs, "invoke")
        opts = {name: kwargs.get(name, getattr(self, name)) for name in SETTINGS}
        opts["filter"] = as_filter(opts["filter"])  # checked here, before the request goes
        request = SearchRequest(query, **opts)
        payload: dict[str, Any] = {"index": self.index, **request.as_dict()}
        out = remote_search(self.url, payload, self.timeout)
        return [to_document(r, scores=True) for r in out["results"]]
