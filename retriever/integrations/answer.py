"""Answers with citations from any LangChain retriever: ``answer(retriever, question, llm)``.

The retriever's Documents become numbered sources (their ``citation`` metadata, ``path:lines``
for this package's retrievers, else their ``source``), the LLM at an OpenAI-compatible endpoint
is asked to answer only from them citing ``[n]`` (:mod:`retriever.answer`), and the result keeps
the Documents, so a chain can show where each ``[n]`` comes from. LangChain users who compose
their own chains can use :func:`retriever.answer.messages_for` for the prompt.
"""

from __future__ import annotations

from typing import Any

from langchain_core.documents import Document

from ..answer import Endpoint, Source, messages_for, unknown_citations


def answer(
    retriever, question: str, llm: Endpoint | str, model: str = "default", **search: Any
) -> dict[str, Any]:
    """Retrieve, then answer from the sources.

    Args:
        retriever: any LangChain retriever (``TPRetriever``, ``TPRemoteRetriever``, ...).
        question: the user's question.
        llm: an :class:`~retriever.answer.Endpoint`, or its URL (``http://127.0.0.1:11434/v1``).
        model: the model name, when ``llm`` is a URL.
        search: per-call retriever settings (``k=4``, ``filter={...}``).

    Returns:
        ``{"answer": str, "sources": [Document], "unknown_citations": [int]}``; source ``n`` is
        ``sources[n - 1]``.

    Raises:
        LLMError: the endpoint cannot be reached, refused, or did not answer in time.
    """
    endpoint = llm if isinstance(llm, Endpoint) else Endpoint(llm, model)
    docs: list[Document] = retriever.invoke(question, **search)
    sources = [
        Source(n, str(d.metadata.get("citation") or d.metadata.get("source") or f"source {n}"),
               d.metadata.get("heading"), d.page_content)
        for n, d in enumerate(docs, start=1)
    ]  # fmt: skip
    text = "".join(endpoint.stream(messages_for(question, sources))) if sources else ""
    return {"answer": text, "sources": docs, "unknown_citations": unknown_citations(text, sources)}
