"""A client for a running ``tpr serve``: the standard library only, so a process that only asks
(``tpr search --server``, :class:`~retriever.integrations.remote.TPRemoteRetriever`) needs no
web framework and loads no model."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from .errors import TPRError


def remote_search(url: str, payload: dict, timeout: float = 60.0) -> dict:
    """POST a search to a running ``tpr serve`` (``url`` like ``http://127.0.0.1:8765``).

    Raises:
        TPRError: the server is not reachable, or refused the request (its message).
    """
    body = json.dumps(payload).encode()
    request = urllib.request.Request(
        url.rstrip("/") + "/search", body, {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        detail = json.loads(e.read() or b"{}").get("detail", e.reason)
        raise TPRError(f"the server at {url} refused the search ({e.code}): {detail}") from None
    except OSError as e:
        raise TPRError(
            f"no tp-retriever server at {url} ({e}); start one with `tpr serve`"
        ) from None
