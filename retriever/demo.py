"""The demo corpus: the Python language reference topics that ship with every CPython.

``pydoc_data.topics`` holds the text behind ``help('topic')``; writing each topic to a file
gives a real folder of documents at run time, so no third-party text is committed.
"""

from __future__ import annotations

import re
from pathlib import Path


def write_python_docs(out: Path) -> int:
    """Write one ``<topic>.txt`` per pydoc topic into ``out``; returns the number written.

    Files whose content is already identical are left alone, so re-running the demo keeps their
    mtimes and the re-index embeds nothing.
    """
    from pydoc_data.topics import topics

    out.mkdir(parents=True, exist_ok=True)
    for name, text in sorted(topics.items()):
        path = out / (re.sub(r"[^A-Za-z0-9_-]+", "-", name) + ".txt")
        body = f"{name}\n\n{text.strip()}\n"
        if not path.exists() or path.read_text() != body:
            path.write_text(body)
    return len(topics)
