"""Nearest-neighbour inspection over an index: what the UI shows beside search results.

Neighbours, near-duplicates and the map work from the stored vectors (SQLite) and the FAISS
index, searched with the same parameters as search itself (nprobe / efSearch on approximate
indexes); only the query is embedded, with the query prompt search uses. :func:`compare_tp`
re-embeds the candidates without TP (that is its point).
:func:`highlight` turns document text into *safe* markdown: every markdown and HTML character of
the document is escaped, so a document can never inject links, images or markup into the page;
only the query's words are then wrapped in ``**``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..index import vectors
from .result import citation
from .searcher import Searcher

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~=:$&])")


_INDENT = re.compile(r"^[ \t]+", re.MULTILINE)
# Backslash escapes do not stop these: GitHub-style autolinks (http://..., www...., a@b.c)
# become live <a> links, and Streamlit turns :material/name: into an icon and :red[...] into
# coloured text. A WORD JOINER (U+2060, invisible, zero width) inside each trigger breaks it.
_JOIN = "\u2060"
_TRIGGERS = re.compile(r"(?i)(?<=:)(?=\S)|(?=@)|(?<=www)(?=\.)")


def escape_markdown(text: str, line_start: bool = True) -> str:
    """Make document text inert markdown: every character markdown or HTML could interpret is
    backslash-escaped, and autolinks and Streamlit's ``:directives:`` are broken with an
    invisible word joiner.

    Leading indentation becomes no-break spaces: four leading spaces would otherwise turn a
    line into a code block, where the escapes would show literally. ``line_start=False`` says
    that ``text`` continues a line (a piece between highlights), so its own leading spaces are
    not indentation.
    """
    text = _TRIGGERS.sub(_JOIN, text)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return _INDENT.sub(
        lambda m: (
            m.group(0)
            if m.start() == 0 and not line_start
            else "\u00a0" * len(m.group(0).expandtabs(4))
        ),
        text,
    )


def _starts_line(text: str, i: int) -> bool:
    return i == 0 or text[i - 1] == "\n"


_LINE = re.compile(r"(?<!\n)\n(?!\n)")


def keep_lines(markdown: str) -> str:
    """Markdown whose single line breaks stay breaks (two trailing spaces), so code, doctest
    and poem lines are not run together; blank lines still separate paragraphs."""
    return _LINE.sub("  \n", markdown)


def highlight(text: str, query: str) -> str:
    """Escaped ``text`` with the query's words (case-insensitive, whole words) in bold."""
    words = sorted(
        {w for w in re.findall(r"\w+", query.lower()) if len(w) > 1}, key=len, reverse=True
    )
    if not words:
        return escape_markdown(text)
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b", re.IGNORECASE)
    out, last = [], 0
    for m in pattern.finditer(text):
        out.append(escape_markdown(text[last : m.start()], _starts_line(text, last)))
        out.append("**" + escape_markdown(m.group(0)) + "**")
        last = m.end()
    out.append(escape_markdown(text[last:], _starts_line(text, last)))
    return "".join(out)


@dataclass
class Neighbour:
    chunk_id: int
    path: str
    ordinal: int
    similarity: float
    text: str


def chunk_vector(searcher: Searcher, chunk_id: int) -> np.ndarray:
    try:
        return searcher.store.rows.vectors([chunk_id])[0]
    except KeyError:
        raise KeyError(f"no chunk {chunk_id} in this index") from None


def _rows(searcher: Searcher, ids: list[int]) -> dict[int, dict]:
    return searcher.store.rows.chunk_rows(ids)


def neighbours(searcher: Searcher, chunk_id: int, k: int = 5) -> list[Neighbour]:
    """The k chunks most similar to ``chunk_id`` (itself excluded), by stored vectors."""
    q = chunk_vector(searcher, chunk_id)[None]
    index = searcher.vector_index
    scores, ids = vectors.search_many(index, q, k + 1)
    hits = [
        (int(i), float(s))
        for i, s in zip(ids[0], scores[0], strict=True)
        if i >= 0 and i != chunk_id
    ][:k]
    rows = _rows(searcher, [i for i, _ in hits])
    return [Neighbour(i, rows[i]["path"], rows[i]["ordinal"], s, rows[i]["text"]) for i, s in hits]


def chunk_by_position(searcher: Searcher, path: str, ordinal: int) -> int | None:
    return searcher.store.rows.chunk_at(path, ordinal)


def context(searcher: Searcher, chunk_id: int, radius: int = 1) -> list[dict]:
    """The chunk and its ``radius`` neighbours on each side in the same file, in order."""
    return searcher.store.rows.chunk_context(chunk_id, radius)


def near_duplicates(
    searcher: Searcher, threshold: float = 0.95, limit: int = 50, per_chunk: int = 5
) -> list[tuple[Neighbour, Neighbour]]:
    """Pairs of different chunks whose cosine similarity is at least ``threshold``."""
    pairs: dict[tuple[int, int], float] = {}
    index = searcher.vector_index
    for ids, vecs in searcher.store.rows.iter_vectors(batch=2048):
        scores, found = vectors.search_many(index, vecs, per_chunk + 1)
        for a, row_ids, row_s in zip(ids, found, scores, strict=True):
            for b, s in zip(row_ids, row_s, strict=True):
                if b >= 0 and b != a and s >= threshold:
                    pairs[(min(int(a), int(b)), max(int(a), int(b)))] = float(s)
    top = sorted(pairs.items(), key=lambda x: -x[1])[:limit]
    rows = _rows(searcher, sorted({i for (a, b), _ in top for i in (a, b)}))

    def n(i, s):
        return Neighbour(i, rows[i]["path"], rows[i]["ordinal"], s, rows[i]["text"])

    return [(n(a, s), n(b, s)) for (a, b), s in top]


def vanilla_twin(embedder):
    """The same model with TP off (shares the loaded weights; nothing is reloaded)."""
    from dataclasses import replace

    from ..embed.embedder import TPEmbedder

    return TPEmbedder(
        embedder.model,
        embedder.tokenizer,
        replace(embedder.config, tp=False),
        identity=embedder.identity,
    )


@dataclass
class RankChange:
    chunk_id: int
    path: str
    ordinal: int
    tp_rank: int
    vanilla_rank: int
    tp_score: float
    vanilla_score: float

    @property
    def change(self) -> int:
        """Positive: TP ranks this chunk higher than vanilla does."""
        return self.vanilla_rank - self.tp_rank


def tp_unavailable(embedder) -> str | None:
    """Why TP vs vanilla cannot be compared on an index with this embedder, or None."""
    config = getattr(embedder, "config", None)
    model = str(getattr(config, "model", "") or "")
    if not hasattr(embedder, "backbone"):
        if model.lower().startswith("minilm"):
            return (
                "This index is embedded by all-MiniLM-L6-v2, a sentence encoder: it reads in "
                "both directions, so every token already sees the whole text. Token Prepending "
                "exists for decoder-only LLMs, whose causal attention hides the end of a text "
                "from its start; there is no TP to switch off here. Build an index with the "
                "default model and TP (`tpr index FOLDER --index NAME --tp-preset`) to compare."
            )
        return (
            "This index's vectors come from an embedder without an LLM's layers (LangChain "
            "embeddings or another encoder), so there is no TP to switch off. Build an index "
            "with the default model and TP (`tpr index FOLDER --index NAME --tp-preset`) to "
            "compare."
        )
    if not config.tp:
        how = "echo embeddings" if "echo" in (config.prompt or "") else "the vanilla prompt"
        if getattr(config, "window", 0):
            how = "situated chunks" if "echo" in (config.prompt or "") else "late chunking"
        return (
            f"This index was built without TP ({how}): its stored vectors are already what "
            "the comparison would compute on the other side. Build an index with TP "
            "(`tpr index FOLDER --index NAME --tp-preset`) to see what TP changes."
        )
    return None


def compare_tp(searcher: Searcher, query: str, candidates: int = 20, twin=None) -> list[RankChange]:
    """Rank the hybrid candidates of ``query`` by TP (stored) and vanilla (re-embedded) cosine.

    Raises:
        ValueError: the index has no TP to compare (:func:`tp_unavailable` says why).
    """
    reason = tp_unavailable(searcher.embedder)
    if reason:
        raise ValueError(reason)
    hits = searcher.search(query, k=candidates, mode="hybrid")
    if not hits:
        return []
    ids = [h.chunk_id for h in hits]
    # The query as search embeds it (the index's query prompt), on both sides.
    tp_scores = searcher._vectors(ids) @ searcher.embed_query(query)
    twin = twin or vanilla_twin(searcher.embedder)
    van = twin.encode([h.text for h in hits]) @ twin.encode_query(query)
    tp_rank = {ids[i]: r for r, i in enumerate(np.argsort(-tp_scores), start=1)}
    van_rank = {ids[i]: r for r, i in enumerate(np.argsort(-van), start=1)}
    rows = [
        RankChange(
            h.chunk_id,
            h.path,
            h.ordinal,
            tp_rank[h.chunk_id],
            van_rank[h.chunk_id],
            float(tp_scores[i]),
            float(van[i]),
        )
        for i, h in enumerate(hits)
    ]
    return sorted(rows, key=lambda r: r.tp_rank)


def pca_map(
    searcher: Searcher,
    query: str,
    chunk_ids: list[int],
    per_chunk: int = 3,
    whole_index: bool = False,
    limit: int = 5000,
) -> list[dict]:
    """2-D PCA coordinates of the query, the given chunks and their neighbours, or of the whole
    index (an even sample of at most ``limit`` chunks, the results always included).

    Returns rows with x, y, kind (query / result / neighbour / chunk), label and a short text.
    """
    ids = list(dict.fromkeys(chunk_ids))
    kinds = {i: "result" for i in ids}
    if whole_index:
        every = searcher.store.rows.chunk_ids()
        step = max(1, len(every) // limit)
        for cid in every[::step].tolist():
            kinds.setdefault(cid, "chunk")
        ids = list(kinds)
    else:
        for cid in chunk_ids:
            for n in neighbours(searcher, cid, per_chunk):
                if n.chunk_id not in kinds:
                    kinds[n.chunk_id] = "neighbour"
                    ids.append(n.chunk_id)
    if not ids:
        return []
    vecs = np.vstack([searcher.embed_query(query)[None], searcher._vectors(ids)])
    centred = vecs - vecs.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    rows = _rows(searcher, ids)
    out = [
        {
            "x": float(xy[0, 0]),
            "y": float(xy[0, 1]),
            "kind": "query",
            "label": "query",
            "text": query[:200],
            "file": "(the query)",
            "heading": "",
        }
    ]
    for j, cid in enumerate(ids, start=1):
        r = rows[cid]
        out.append(
            {
                "x": float(xy[j, 0]),
                "y": float(xy[j, 1]),
                "kind": kinds[cid],
                "label": citation(r["path"], r.get("start_line"), r.get("end_line")),
                "text": r["text"][:200],
                "file": r["path"],
                "heading": r.get("heading") or "",
            }
        )
    return out
