"""Answers with citations: retrieve, number the sources, ask an LLM to answer only from them.

The index's default search (every option of a :class:`~retriever.search.request.SearchRequest`)
finds the chunks; each becomes a numbered source with its citation (``path:start-end``), its
heading path and its text; the LLM is told to answer only from them and to cite them as
``[n]``. Any OpenAI-compatible endpoint works (Ollama, llama.cpp's server, vLLM, LM Studio all
speak ``POST {url}/chat/completions``): the answer is streamed (server-sent events) when the
server streams, and read whole when it does not. The API key comes only from the environment
(``TPR_LLM_API_KEY``). A ``[n]`` in the answer that names no source is reported, never hidden.

Only the standard library talks HTTP here (as :mod:`retriever.client` does).
"""

from __future__ import annotations

import json
import os
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import TPRError

API_KEY_ENV = "TPR_LLM_API_KEY"
SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources given. Cite every claim with the "
    "number of its source in square brackets, like [1] or [2][3]. If the sources do not "
    "contain the answer, say that they do not; never use outside knowledge."
)


class LLMError(TPRError):
    """The LLM endpoint cannot be reached, refused the request, or did not answer in time."""


@dataclass(frozen=True)
class Source:
    """One numbered source of an answer."""

    n: int
    citation: str  # path:start-end
    heading: str | None
    text: str

    def as_dict(self) -> dict:
        return {"n": self.n, "citation": self.citation, "heading": self.heading, "text": self.text}


def sources_of(results) -> list[Source]:
    """Numbered sources from search results (``Result`` objects or their dicts), best first."""
    out = []
    for n, r in enumerate(results, start=1):
        r = r if isinstance(r, dict) else r.as_dict()
        out.append(Source(n, r["citation"], r.get("heading"), r["text"]))
    return out


def messages_for(question: str, sources: list[Source]) -> list[dict]:
    """The chat messages sent: the instruction, then the sources and the question."""
    blocks = []
    for s in sources:
        head = f"[{s.n}] {s.citation}" + (f" § {s.heading}" if s.heading else "")
        blocks.append(f"{head}\n{s.text.strip()}")
    user = "Sources:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question.strip()}"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def unknown_citations(answer: str, sources: list[Source]) -> list[int]:
    """The ``[n]`` numbers in an answer that name no source, in order of first use."""
    known = {s.n for s in sources}
    found = [int(m) for m in re.findall(r"\[(\d{1,4})\]", answer)]
    return list(dict.fromkeys(n for n in found if n not in known))


@dataclass
class Endpoint:
    """An OpenAI-compatible chat endpoint.

    Attributes:
        url: the API base, ending in ``/v1`` (e.g. ``http://127.0.0.1:11434/v1`` for Ollama).
        model: the model name the server knows (``--llm-model``).
        timeout: seconds to wait for the first byte and between bytes.
    """

    url: str
    model: str = "default"
    timeout: float = 120.0

    def __post_init__(self) -> None:
        if not re.match(r"^https?://", self.url):
            raise LLMError(
                f"--llm {self.url!r} is not an endpoint URL; give one like "
                "http://127.0.0.1:11434/v1 (Ollama) or http://127.0.0.1:8080/v1 (llama.cpp)"
            )
        self.url = self.url.rstrip("/")

    def stream(self, messages: list[dict]) -> Iterator[str]:
        """The answer's text, piece by piece as the server sends it.

        Raises:
            LLMError: unreachable, refused (HTTP error), or silent past ``timeout``.
        """
        body = json.dumps({"model": self.model, "messages": messages, "stream": True}).encode()
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if os.environ.get(API_KEY_ENV):
            headers["Authorization"] = f"Bearer {os.environ[API_KEY_ENV]}"
        req = urllib.request.Request(f"{self.url}/chat/completions", body, headers)
        where = f"the LLM at {self.url}"
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                if "text/event-stream" in r.headers.get("Content-Type", ""):
                    yield from _events(r)
                else:  # a server that does not stream answers in one JSON body
                    yield _content(json.loads(r.read()), where)
        except urllib.error.HTTPError as e:
            detail = e.read()[:300].decode(errors="replace").strip()
            raise LLMError(f"{where} refused the request (HTTP {e.code}: {detail})") from None
        except TimeoutError:
            raise LLMError(f"{where} did not answer within {self.timeout:g} s") from None
        except urllib.error.URLError as e:
            if isinstance(e.reason, (TimeoutError, socket.timeout)):
                raise LLMError(f"{where} did not answer within {self.timeout:g} s") from None
            raise LLMError(
                f"cannot reach {where} ({e.reason}); is the server running? (`ollama serve`, "
                "`llama-server --port 8080`)"
            ) from None
        except json.JSONDecodeError:
            raise LLMError(f"{where} answered with something that is not JSON") from None


def _events(response) -> Iterator[str]:
    """The content deltas of a server-sent-event stream, until ``[DONE]``."""
    for raw in response:
        line = raw.decode(errors="replace").strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            event = json.loads(data)
        except json.JSONDecodeError:
            continue
        for choice in event.get("choices") or []:
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                yield piece


def _content(body: dict, where: str) -> str:
    try:
        return body["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        raise LLMError(f"{where} answered without choices[0].message.content") from None


def linked_citations(escaped: str, sources: list[Source]) -> str:
    """An answer already escaped as inert markdown (``inspect.escape_markdown``), its ``[n]``
    made links to the source cards (anchors ``source-n``); a number naming no source stays
    plain text."""
    known = {s.n for s in sources}

    def link(m: re.Match) -> str:
        n = int(m.group(1))
        return f"[\\[{n}\\]](#source-{n})" if n in known else m.group(0)

    return re.sub(r"\\\[(\d+)\\\]", link, escaped)
