"""Answers with citations from any LangChain retriever: ``answer(retriever, question, llm)``.

The retriever's Documents become numbered sources (their ``citation`` metadata, ``path:lines``
for this package's retrievers, else their ``source``), the LLM (an OpenAI-compatible endpoint
or a local model) is asked to answer only from them citing ``[n]`` (:mod:`retriever.answer`),
and the result keeps the Documents, so a chain can show where each ``[n]`` comes from.
LangChain users who compose their own chains can use :func:`retriever.answer.messages_for`.
"""

from __future__ import annotations

from typing import Any

from langchain_core.documents import Document

from ..answer import Endpoint, Source, messages_for, unknown_citations


def answer(retriever, question: str, llm, model: str = "default", **search: Any) -> dict[str, Any]:
    """Retrieve, then answer from the sources.

    Args:
        retriever: any LangChain retriever (``TPRetriever``, ``TPRemoteRetriever``, ...).
        question: the user's question.
        llm: an :class:`~retriever.answer.Endpoint` or its URL (``http://127.0.0.1:11434/v1``),
            or any object with its ``stream(messages)`` (a local model:
            :class:`~retriever.generate.LocalLLM`).
        model: the model name, when ``llm`` is a URL.
        search: per-call retriever settings (``k=4``, ``filter={...}``).

    Returns:
        ``{"answer": str, "sources": [Document], "unknown_citations": [int]}``; source ``n`` is
        ``sources[n - 1]``.

    Raises:
        LLMError: the endpoint cannot be reached, refused, or did not answer in time.
    """
    endpoint = Endpoint(llm, model) if isinstance(llm, str) else llm
    docs: list[Document] = retriever.invoke(question, **search)
    sources = [
        Source(n, str(d.metadata.get("citation") or d.metadata.get("source") or f"source {n}"),
               d.metadata.get("heading"), d.page_content)
        for n, d in enumerate(docs, start=1)
    ]  # fmt: skip
    text = "".join(endpoint.stream(messages_for(question, sources))) if sources else ""
    return {"answer": text, "sources": docs, "unknown_citations": unknown_citations(text, sources)}
