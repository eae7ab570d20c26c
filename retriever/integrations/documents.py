"""Search results and chunk rows as LangChain ``Document``s: the one converter.

* A text added through the VectorStore keeps exactly the metadata it was added with
  (LangChain's round trip); its ``id`` is the caller's.
* A chunk of a folder file carries its place: ``source`` (the path relative to the folder),
  ``root`` (the folder), ``citation`` (``path:line``), ``start_line`` / ``end_line``,
  ``heading`` (the Markdown/reST heading path), ``chunk_id``, ``ordinal``, ``start`` / ``end``
  (character offsets) and ``page``; its ``id`` is ``chunk-<chunk_id>``.
* With ``scores=True`` (what a retriever returns) every document carries its place, ``score``
  and the per-side ``scores``, and then its own metadata on top.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.documents import Document

from ..search.searcher import FOLDER_ID


def to_document(row: Mapping[str, Any], scores: bool = False, root: str | None = None) -> Document:
    """A Document from a :class:`~retriever.search.searcher.Result` (as a dict) or a chunk row
    of :meth:`~retriever.search.searcher.Searcher.fetch`; ``root`` is the indexed folder."""
    first, last = row.get("start_line"), row.get("end_line")
    line = "" if first is None else f":{first}" + (f"-{last}" if last and last != first else "")
    place = {
        "source": row["path"],
        "root": root,
        "citation": row["path"] + line,
        "start_line": first,
        "end_line": last,
        "heading": row.get("heading"),
        "chunk_id": row.get("chunk_id", row.get("id")),
        "ordinal": row["ordinal"],
        "start": row["start"],
        "end": row["end"],
        "page": row["page"],
    }
    own = dict(row.get("metadata") or {})
    if scores:
        metadata = {**place, "score": row["score"], "scores": row["scores"], **own}
    elif FOLDER_ID.fullmatch(row["doc_id"]):
        metadata = place
    else:
        metadata = own
    return Document(page_content=row["text"], metadata=metadata, id=row["doc_id"])
