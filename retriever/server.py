"""``tpr serve``: a local HTTP API over one or more indexes, each index's model loaded once.

A one-shot ``tpr search`` spends most of its ~10 s loading the model; a server pays that once.

* ``GET /health``: ready or not, and the indexes served;
* ``GET /indexes``: each index's name, model, files, chunks and last update;
* ``POST /search``: every search mode, filters, MMR, ``k``, ``min_score``; JSON results with
  the source, ``path:line`` citation, offsets, heading, page and every score;
* ``GET /docs``: the OpenAPI documentation (FastAPI's).

It binds 127.0.0.1 unless told otherwise, and at most ``max_concurrency`` searches run at once
(more wait, up to ``queue_timeout`` seconds, then get 503): each index's Searcher serialises its
own calls, and two cores gain nothing from more. Requests are validated at the door (unknown
fields, ``k`` out of range, NaN are 422s); library errors are 400s with the message, a missing
index a 404. Indexes that share embedder settings share one loaded model.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from .errors import ConfigError, IndexMismatchError, IndexNotFoundError, TPRError
from .index import manage
from .index.store import DB_NAME
from .search.filters import (
    MAX_METADATA_KEYS,
    MAX_PATTERN,
    MAX_SUFFIXES,
    Filter,
    as_filter,
)
from .search.fusion import FUSIONS
from .search.request import MAX_K, MODES, SEARCH_FIELDS, SearchRequest
from .search.searcher import Searcher


class FilterIn(BaseModel):
    """Which chunks may be returned (all given conditions hold)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    path_glob: str | None = Field(
        None, max_length=MAX_PATTERN, description="glob on the path, e.g. docs/*.md"
    )
    heading: str | None = Field(None, max_length=MAX_PATTERN, description="glob on headings")
    suffixes: list[str] = Field(
        default_factory=list, max_length=MAX_SUFFIXES, description="file types, e.g. ['.md']"
    )
    since_days: float | None = Field(None, gt=0, le=100_000, description="modified recently")
    modified_after: float | None = Field(None, description="file mtime >= (epoch seconds)")
    modified_before: float | None = Field(None, description="file mtime <= (epoch seconds)")
    metadata: dict[str, Any] | None = Field(
        None, max_length=MAX_METADATA_KEYS, description="stored metadata to match"
    )
    where: dict[str, Any] | None = Field(
        None,
        description="LangChain-style expression: {'source': 'a.md'}, "
        "{'lang': {'$in': ['en', 'de']}}, $eq $ne $in $nin $gt $gte $lt $lte $and $or",
    )

    def to_filter(self) -> Filter | None:
        return as_filter(self.model_dump(exclude_none=True, exclude_defaults=True) or None)


class SearchIn(BaseModel):
    """A search request."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    query: str = Field(min_length=1, max_length=20_000)
    index: str | None = Field(None, description="index name; optional when one is served")
    k: int = Field(5, ge=1, le=MAX_K)
    mode: Literal[MODES] = "hybrid"
    fusion: Literal[FUSIONS] | None = None
    fetch_k: int = Field(50, ge=1, le=MAX_K)
    weights: dict[str, float] | None = Field(
        None, max_length=3, description="fusion weights per side (dense, bm25, sparse)"
    )
    mmr: bool = False
    lambda_mult: float = Field(0.5, ge=0, le=1)
    min_score: float | None = None
    sparse_weight: float = Field(
        0.0, ge=0, le=100, description="hybrid: the LLM's sparse words as a third side"
    )
    filter: FilterIn | None = None

    def to_request(self) -> SearchRequest:
        """The one request the Searcher takes (every field, the filter made a Filter)."""
        fields = self.model_dump(include=set(SEARCH_FIELDS) - {"filter"})
        return SearchRequest(filter=self.filter.to_filter() if self.filter else None, **fields)


class AskIn(SearchIn):
    """A question: every search field (``query`` is the question), and ``stream``."""

    stream: bool = Field(False, description="server-sent events instead of one JSON body")


class _Searchers:
    """One Searcher per index, opened on first use; one embedder per distinct settings."""

    def __init__(self, indexes: dict[str, Path], load):
        self.indexes = indexes
        self._load = load
        self._searchers: dict[str, Searcher] = {}
        self._embedders: dict[str, Any] = {}
        self._lock = threading.Lock()

    def name_of(self, requested: str | None) -> str:
        if requested is None:
            if len(self.indexes) == 1:
                return next(iter(self.indexes))
            raise HTTPException(400, f"name the index: one of {sorted(self.indexes)}")
        if requested not in self.indexes:
            raise HTTPException(404, f"no index {requested!r}; served: {sorted(self.indexes)}")
        return requested

    def forget(self, name: str) -> None:
        """Drop an index's Searcher (its index was rebuilt with another embedder): the next
        request opens it anew with the embedder it now needs."""
        with self._lock:
            searcher = self._searchers.pop(name, None)
        if searcher is not None:
            searcher.close()

    def get(self, name: str) -> Searcher:
        with self._lock:
            if name not in self._searchers:
                self._searchers[name] = Searcher.open(self.indexes[name], load=self._shared)
            return self._searchers[name]

    def _shared(self, config):
        """One loaded embedder per distinct settings (called under the lock)."""
        if config.key not in self._embedders:
            self._embedders[config.key] = self._load(config)
        return self._embedders[config.key]

    def close(self) -> None:
        for s in self._searchers.values():
            s.close()


def create_app(
    indexes: dict[str, Path],
    max_concurrency: int = 4,
    queue_timeout: float = 30.0,
    load=None,
    preload: bool = False,
    llm=None,
) -> FastAPI:
    """The API over ``indexes`` (name -> directory).

    Args:
        llm: the :class:`~retriever.answer.Endpoint` that ``POST /ask`` answers with (fixed
            when the server starts, never taken from a request); None: /ask is a 503.
        max_concurrency: searches running at once; the rest wait.
        queue_timeout: seconds a request waits for a slot before a 503.
        load: loads an embedder from a config (default
            :func:`~retriever.embed.factory.load_embedder`).
        preload: open every index and load its model before serving.
    """
    if load is None:
        from .embed.factory import load_embedder as load
    pool = _Searchers(dict(indexes), load)
    slots = threading.BoundedSemaphore(max_concurrency)
    app = FastAPI(
        title="tp-retriever",
        summary="Local search over tp-retriever indexes (Token Prepending LLM embeddings).",
    )

    if preload:  # before the app exists: /health answers only once every model is loaded
        for name in indexes:
            pool.get(name)

    @app.exception_handler(TPRError)
    def library_error(request, exc: TPRError):
        status = 404 if isinstance(exc, IndexNotFoundError) else 400
        if isinstance(exc, ConfigError):
            status = 422
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    def invalid_request(request, exc: RequestValidationError):
        # FastAPI's own handler echoes each bad input back; a NaN, Infinity or 1e400 cannot be
        # written as JSON, and the 422 itself failed as a 500. Echo inputs as text instead.
        errors = [
            {**{k: v for k, v in e.items() if k not in ("input", "ctx", "url")},
             "input": _printable(e.get("input"))}
            for e in exc.errors()
        ]  # fmt: skip
        return JSONResponse({"detail": errors}, status_code=422)

    @app.get("/health")
    def health() -> JSONResponse:
        """Whether the server answers, which indexes it serves, and any that it cannot: an
        index whose ``index.db`` is gone makes the status ``degraded`` (HTTP 503)."""
        problems = {
            name: f"{DB_NAME} is missing" for name, path in indexes.items()
            if not (Path(path) / DB_NAME).is_file()
        }  # fmt: skip
        body = {"status": "degraded" if problems else "ok", "indexes": sorted(indexes)}
        if problems:
            body["problems"] = problems
        return JSONResponse(body, status_code=503 if problems else 200)

    @app.get("/indexes")
    def list_indexes() -> list[dict]:
        """Each served index: name, model, files, chunks, last update."""
        out = []
        for name, path in sorted(pool.indexes.items()):
            info = manage.info(path, verify=False)
            out.append(
                {
                    "name": name,
                    "path": str(path),
                    "model": (info.get("embedder") or {}).get("model"),
                    "files": info["files"].get("indexed", 0),
                    "chunks": info["chunks"],
                    "updated": info.get("updated"),
                    "modes": ["hybrid", "dense", "bm25"]
                    + (["sparse"] if "sparse_scale" in info else []),
                }
            )
        return out

    def run(req: SearchIn):
        """(index name, results, ms) of a search, within the concurrency limit."""
        name = pool.name_of(req.index)
        if not slots.acquire(timeout=queue_timeout):
            raise HTTPException(503, "too many searches at once; retry shortly")
        try:
            request = req.to_request()
            t = time.perf_counter()
            try:
                results = pool.get(name).run(request)
            except IndexMismatchError:  # rebuilt with another embedder: load that one, once
                pool.forget(name)
                results = pool.get(name).run(request)
            return name, results, (time.perf_counter() - t) * 1000
        finally:
            slots.release()

    @app.post("/search")
    def search(req: SearchIn) -> dict:
        """Top-k chunks for a query, with citations and every score."""
        name, results, ms = run(req)
        return {
            "query": req.query,
            "index": name,
            "mode": req.mode,
            "ms": round(ms, 1),
            "results": [r.as_dict() for r in results],
        }

    @app.post("/ask")
    def ask(req: AskIn):
        """An answer from the index's sources, citing them as [n]: plain JSON, or server-sent
        events with ``stream: true`` (``sources`` first, then ``delta`` pieces, then
        ``done`` with any unknown citations)."""
        from fastapi.responses import StreamingResponse

        from .answer import messages_for, sources_of, unknown_citations

        if llm is None:
            raise HTTPException(503, "this server has no LLM: start it with tpr serve --llm URL")
        _, results, ms = run(req)
        if not results:
            raise HTTPException(404, "no source in the index matches this question")
        sources = sources_of(results)
        pieces = llm.stream(messages_for(req.query, sources))
        listed = [x.as_dict() for x in sources]
        if not req.stream:
            text = "".join(pieces)
            return {"answer": text, "sources": listed, "retrieve_ms": round(ms, 1),
                    "unknown_citations": unknown_citations(text, sources)}  # fmt: skip

        def events():
            yield f"data: {json.dumps({'sources': listed})}\n\n"
            parts = []
            try:
                for piece in pieces:
                    parts.append(piece)
                    yield f"data: {json.dumps({'delta': piece})}\n\n"
            except TPRError as e:  # the LLM failed mid-answer: say so in the stream
                yield f"data: {json.dumps({'error': str(e)})}\n\n"
                return
            unknown = unknown_citations("".join(parts), sources)
            yield f"data: {json.dumps({'done': True, 'unknown_citations': unknown})}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    app.state.searchers = pool
    return app


def _printable(value: Any) -> Any:
    """A request value as JSON can hold it (NaN and infinities as text)."""
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError):
        return repr(value)


def served_indexes(names_or_paths=()) -> dict[str, Path]:
    """Name -> directory of the indexes to serve: those given (a bare name or a path, named by
    its folder), else every named index that opens.

    Raises:
        IndexNotFoundError: nothing to serve.
    """
    from .index.store import resolve_index

    chosen = {Path(i).name: resolve_index(i) for i in names_or_paths}
    if not names_or_paths:
        chosen = {r["name"]: Path(r["path"]) for r in manage.list_indexes() if not r.get("error")}
    if not chosen:
        raise IndexNotFoundError("no index to serve: build one with `tpr index` or `tpr demo`")
    return chosen
