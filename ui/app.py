"""tp-retriever UI: search an index and inspect nearest neighbours.

    streamlit run ui/app.py -- --index python-docs [--index ~/other/index]

Only the indexes given with ``--index``, in ``$TPR_INDEX``, or named under
``~/.local/share/tp-retriever/indexes`` are offered: the app reads no other folder. Document
text is always escaped (never rendered as HTML or markdown); logic lives in ``retriever``.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from pathlib import Path

import streamlit as st
from manage_tab import manage_tab_ui  # ui/manage_tab.py (Streamlit puts ui/ on the path)

from retriever.answer import linked_citations, messages_for, sources_of, unknown_citations
from retriever.embed.factory import load_embedder
from retriever.errors import TPRError
from retriever.generate import llm_for
from retriever.index import manage
from retriever.index.store import DB_NAME, db_error, indexes_home, resolve_index
from retriever.index.structure import code_fences
from retriever.search.filters import Filter
from retriever.search.fusion import FUSIONS
from retriever.search.inspect import (
    chunk_by_position,
    compare_tp,
    context,
    escape_markdown,
    highlight,
    keep_lines,
    near_duplicates,
    neighbours,
    pca_map,
    tp_unavailable,
)
from retriever.search.request import MODES, SearchRequest
from retriever.search.result import merge_identical
from retriever.search.searcher import Searcher

PREVIEW_LINES = 6  # lines of a chunk on its card; the rest in the expander


def _args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", action="append", default=[])
    parser.add_argument("--root", action="append", default=[])
    return parser.parse_known_args(sys.argv[1:])[0]


def allowed_roots() -> list[Path]:
    """Folders the user allows the app to index (``--root`` or ``$TPR_ROOTS``, ':'-separated)."""
    roots = list(_args().root) + [r for r in os.environ.get("TPR_ROOTS", "").split(":") if r]
    return [Path(r).expanduser().resolve() for r in roots]


def configured_indexes() -> list[Path]:
    found = [resolve_index(i) for i in _args().index]
    if os.environ.get("TPR_INDEX"):
        found.append(resolve_index(None))
    home = indexes_home()
    if home.is_dir():
        found += sorted(p for p in home.iterdir() if (p / DB_NAME).exists())
    return list(dict.fromkeys(p.expanduser() for p in found))


@st.cache_resource(show_spinner="Loading the embedding model (once)...")
def get_embedder(config_json: str, _config):
    """One loaded model per distinct settings, shared by the indexes that use them."""
    return load_embedder(_config)


def _shared_loader(config):
    return get_embedder(config.key, config)


@st.cache_resource
def get_searcher(index_dir: str, config_json: str) -> Searcher:
    return Searcher.open(Path(index_dir), load=_shared_loader)


def index_card(index_dir: Path) -> dict:
    """The sidebar card: what the index is (no file is read in full for it)."""
    m = manage.info(index_dir, verify=False)
    e, counts = m.get("embedder", {}), m["files"]
    st.sidebar.caption("Index")
    tp = f"TP [{e.get('tp_start')}, {e.get('tp_exit')})" if e.get("tp") else "TP off"
    w = e.get("window")
    window = f"\nchunks read inside their file: windows of {w} tokens" if w else ""
    st.sidebar.text(
        f"folder: {m.get('root')}\nmodel: {e.get('model')}\n"
        f"prompt: {e.get('prompt')}  {tp}\n"
        f"output layer: {e.get('output_layer')}  pooling: {e.get('pooling')}{window}\n"
        f"fingerprint: {str(m.get('fingerprint'))[:16]}\n"
        f"files: {counts.get('indexed', 0)} indexed, {counts.get('skipped', 0)} skipped, "
        f"{counts.get('added', 0)} texts added from code\n"
        f"chunks: {m['chunks']}\nbuilt: {m.get('created')}\nupdated: {m.get('updated')}"
    )
    skipped = [{"path": r["path"], "reason": r["reason"]} for r in manage.files(index_dir, True)]
    if skipped:
        with st.sidebar.expander(f"Skipped files ({len(skipped)})"):
            st.dataframe(skipped, hide_index=True)
    return m


def show_results(searcher: Searcher, query: str, results) -> None:
    """Result cards: the citation line, a copyable citation, the chunk's first lines with the
    query's words in bold, the whole chunk and its neighbours on demand. Identical texts
    (a file copied under two names) are shown once, with every citation."""
    for rank, (r, same) in enumerate(merge_identical(results), start=1):
        scores = "  ".join(f"{k} {v:.4f}" for k, v in r.scores.items())
        page = f" p.{r.page}" if r.page else ""
        # Paths are document data too: escaped, never trusted as markup.
        heading = f" · § {escape_markdown(r.heading)}" if r.heading else ""
        st.markdown(f"**{rank}.** {escape_markdown(r.citation)}{page}{heading} · {scores}")
        if same:
            also = ", ".join(escape_markdown(x.citation) for x in same)
            st.caption(f"the same text also in: {also}")
        st.code(r.citation, language=None)  # plain text with a copy button
        lines = r.text.splitlines()
        show_text("\n".join(lines[:PREVIEW_LINES]), query)
        label = "Whole chunk and its neighbours" + (
            f" ({len(lines) - PREVIEW_LINES} more lines)" if len(lines) > PREVIEW_LINES else ""
        )
        with st.expander(label):
            for c in context(searcher, r.chunk_id):
                if c["ordinal"] == r.ordinal:
                    st.caption(f"chunk {c['ordinal']} (this one)")
                    show_text(c["text"], query)
                else:
                    st.caption(f"chunk {c['ordinal']}")
                    st.text(c["text"])


def show_text(text: str, query: str) -> None:
    """A chunk: prose as escaped markdown with its line breaks and the query's words in bold;
    fenced code as monospace text (st.code never renders markup)."""
    pos = 0
    for start, end in code_fences(text):
        if text[pos:start].strip():
            st.markdown(keep_lines(highlight(text[pos:start], query)))
        fence = text[start:end].split("\n")
        st.code("\n".join(fence[1:-1]), language=None)
        pos = end
    if text[pos:].strip():
        st.markdown(keep_lines(highlight(text[pos:], query)))


def metadata_of(text: str) -> dict:
    """``key = value`` lines as a metadata filter (numbers and true/false as such)."""
    out: dict = {}
    for line in text.splitlines():
        key, eq, value = line.partition("=")
        if not eq or not key.strip():
            continue
        value = value.strip()
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def index_label(path: str) -> str:
    """An index's name when it is a named index, else its path with ~ for the home folder."""
    p = Path(path)
    if p.parent == indexes_home():
        return p.name
    home = str(Path.home())
    return "~" + path[len(home) :] if path.startswith(home + "/") else path


def ask(searcher: Searcher) -> None:
    """The Ask tab: an answer from the index's sources, streamed, each [n] a link to its card.
    The LLM is chosen in the sidebar; the answer is escaped like any document text."""
    st.sidebar.caption("LLM for the Ask tab")
    url = st.sidebar.text_input(
        "OpenAI-compatible endpoint (blank: the index's own model)",
        value=os.environ.get("TPR_LLM_URL", ""),
        key="llm_url",
        help="e.g. http://127.0.0.1:11434/v1 (Ollama) or http://127.0.0.1:8080/v1 (llama.cpp)",
    )
    model = st.sidebar.text_input("Model name at the endpoint", "default", key="llm_model")
    question = st.text_input("Question", key="ask_q")
    k = st.slider("Sources", 1, 10, 5, key="ask_k")
    if not (question.strip() and st.button("Ask", key="ask_go")):
        return
    try:
        results = searcher.run(SearchRequest(question, k=k))
        if not results:
            st.warning("No source in the index matches this question: nothing to answer from.")
            return
        sources = sources_of(results)
        messages = messages_for(question, sources)
        llm, warning = llm_for(url.strip() or None, searcher, model.strip() or "default")
        if warning:
            st.caption(warning)
        box, text = st.empty(), ""
        for piece in llm.stream(messages):
            text += piece
            box.markdown(linked_citations(escape_markdown(text), sources))
    except TPRError as e:
        st.error(str(e))
        return
    unknown = unknown_citations(text, sources)
    if unknown:
        st.warning("The answer cites " + ", ".join(f"[{n}]" for n in unknown) + ", not a source.")
    with st.expander("The prompt sent"):
        for m in messages:
            st.caption(m["role"])
            st.text(m["content"])
    for s in sources:
        heading = f" · § {escape_markdown(s.heading)}" if s.heading else ""
        st.subheader(f"[{s.n}] {escape_markdown(s.citation)}{heading}", anchor=f"source-{s.n}")
        st.code(s.citation, language=None)
        st.text(s.text)


def main() -> None:
    st.set_page_config(page_title="tp-retriever", layout="wide")
    st.title("tp-retriever")
    choices = configured_indexes()
    if not choices:
        st.info(
            "No index yet. Build one with `tpr demo` or `tpr index FOLDER --index NAME`, "
            "then start the app with `streamlit run ui/app.py -- --index NAME`."
        )
        return
    chosen = st.sidebar.selectbox("Index", [str(p) for p in choices], format_func=index_label)
    st.session_state["tpr.index"] = chosen
    try:
        meta = index_card(Path(chosen))
        searcher = get_searcher(chosen, json.dumps(meta["embedder"], sort_keys=True))
    except TPRError as e:
        st.error(str(e))
        return

    search_tab, ask_tab, nn_tab, dup_tab, tp_tab, map_tab, manage_tab = st.tabs(
        ["Search", "Ask", "Neighbours", "Near-duplicates", "TP vs vanilla", "Map", "Manage"]
    )
    with ask_tab:
        ask(searcher)
    with search_tab:
        query = st.text_input("Query", key="query")
        c1, c2, c3, c4 = st.columns(4)
        modes = [m for m in MODES if m != "sparse"]
        if "sparse_scale" in meta:  # an index built with --sparse
            modes.append("sparse")
        mode = c1.radio("Mode", modes, horizontal=True, key="mode")
        method, weights = searcher.default_hybrid()
        fusion = c1.selectbox(
            "Fusion (hybrid)",
            [f"default: {method}, dense x{weights['dense']}", *FUSIONS],
            key="fusion",
            disabled=mode != "hybrid",
        )
        k = c2.slider("k", 1, 20, 5, key="k")
        glob = c3.text_input("Path glob", key="glob")
        types = c4.text_input("File types (e.g. .md .pdf)", key="types")
        with st.expander("More options: MMR, heading, modified since, metadata, min score"):
            o1, o2, o3 = st.columns(3)
            mmr = o1.toggle("MMR (diverse results)", key="mmr")
            heading = o1.text_input("Heading glob (e.g. *install*)", key="heading")
            since = o2.number_input("Modified in the last N days (0: any)", 0, key="since")
            min_score = o2.number_input("Min score (0: none)", 0.0, key="min_score")
            pairs = o3.text_area("Metadata, key = value per line", key="metadata")
        if query.strip():
            try:
                flt = Filter(
                    path_glob=glob or None,
                    heading=heading or None,
                    suffixes=tuple(types.split()),
                    modified_after=time.time() - since * 86400 if since else None,
                    metadata=metadata_of(pairs) or None,
                )
                method = None if fusion.startswith("default") else fusion
                request = SearchRequest(
                    query,
                    k=k,
                    mode=mode,
                    filter=flt,
                    fusion=method,
                    mmr=mmr,
                    min_score=min_score or None,
                )
                results = searcher.run(request)
            except TPRError as e:
                st.error(str(e))
                results = []
            st.session_state["results"] = [(r.chunk_id, r.path, r.ordinal) for r in results]
            if not results:
                st.warning("No results.")
            show_results(searcher, query, results)
        elif "query" in st.session_state and st.session_state.query:
            st.error("The query is empty; type something to search for.")

    with nn_tab:
        picked = st.session_state.get("results") or []
        labels = [f"{i + 1}. {p} #{o}" for i, (_, p, o) in enumerate(picked)]
        source = st.radio(
            "Chunk", ["From the results", "By file and position"], horizontal=True, key="nn_source"
        )
        chunk_id = None
        if source == "From the results":
            if labels:
                pick = st.selectbox("Result", labels, key="nn_pick")
                chunk_id = picked[labels.index(pick)][0]
            else:
                st.info("Search first, or pick a chunk by file and position.")
        else:
            path = st.text_input("File (relative path)", key="nn_path")
            ordinal = st.number_input("Chunk number", 0, step=1, key="nn_ordinal")
            if path:
                chunk_id = chunk_by_position(searcher, path, int(ordinal))
                if chunk_id is None:
                    st.error(f"No chunk {int(ordinal)} in {path}.")
        n = st.slider("Neighbours", 1, 20, 5, key="nn_k")
        if chunk_id is not None:
            rows = neighbours(searcher, chunk_id, n)
            st.dataframe(
                [
                    {
                        "similarity": round(x.similarity, 4),
                        "path": x.path,
                        "chunk": x.ordinal,
                        "text": x.text[:300],
                    }
                    for x in rows
                ],
                hide_index=True,
            )

    with tp_tab:
        q = st.session_state.get("query", "")
        reason = tp_unavailable(searcher.embedder)
        if reason:
            st.info(reason)
            q = ""  # nothing to compare: no button, no empty table
        elif not q.strip():
            st.info("Search first.")
        else:
            st.caption(
                f"For the query “{escape_markdown(q)}”: its 10 hybrid candidates, ranked by TP "
                "cosine (the stored vectors) and by the vanilla prompt's cosine (re-embedded now, "
                "same model, no TP). “change” = vanilla rank − TP rank: +2 means TP ranks the "
                "chunk two places higher; “=” means both agree."
            )
        if q.strip() and st.button("Compare", key="tp_go"):
            with st.spinner("Re-embedding the candidates without TP..."):
                try:
                    rows = compare_tp(searcher, q, candidates=10)
                except (TPRError, ValueError) as e:
                    st.error(str(e))
                    rows = []
            st.dataframe(
                [
                    {
                        "TP rank": r.tp_rank,
                        "vanilla rank": r.vanilla_rank,
                        "change": f"{r.change:+d}" if r.change else "=",
                        "path": f"{r.path} #{r.ordinal}",
                        "TP cos": round(r.tp_score, 4),
                        "vanilla cos": round(r.vanilla_score, 4),
                    }
                    for r in rows
                ],
                hide_index=True,
            )

    with map_tab:
        picked = st.session_state.get("results") or []
        q = st.session_state.get("query", "")
        if not picked or not q.strip():
            st.info("Search first: the map shows the query, its results and their neighbours.")
        else:
            import altair as alt

            whole = st.session_state.get("map_whole", False)  # the toggle sits under the map
            points = pca_map(searcher, q, [cid for cid, _, _ in picked], whole_index=whole)
            what = {"query": "query", "result": "results", "neighbour": "neighbours"}
            for p in points:
                p["what"] = what.get(p["kind"], "other chunks")
            order = ["query", "results", "neighbours", "other chunks"]
            chart = (
                alt.Chart(alt.Data(values=points))
                .mark_point(filled=True, opacity=0.85)
                .encode(
                    x=alt.X("x:Q", title=None),
                    y=alt.Y("y:Q", title=None),
                    color=alt.Color("file:N", title="file", legend=alt.Legend(symbolLimit=12)),
                    shape=alt.Shape(
                        "what:N",
                        title="point",
                        scale=alt.Scale(
                            domain=order, range=["cross", "diamond", "triangle", "circle"]
                        ),
                    ),
                    size=alt.Size(
                        "what:N",
                        scale=alt.Scale(domain=order, range=[260, 160, 90, 30]),
                        legend=None,
                    ),
                    tooltip=[
                        alt.Tooltip("label:N", title="citation"),
                        alt.Tooltip("heading:N", title="heading"),
                        alt.Tooltip("text:N", title="text"),
                    ],
                )
            )
            st.altair_chart(chart, width="stretch")
            st.toggle("Show the whole index (up to 5,000 chunks)", key="map_whole")
            st.caption(
                f"PCA of the stored vectors (2 components), {len(points) - 1} chunks and the "
                "query; colour is the file, the shape what a point is; hover for its citation, "
                "heading and text."
            )

    with manage_tab:
        manage_tab_ui(searcher, meta, Path(chosen), allowed_roots())

    with dup_tab:
        threshold = st.slider("Similarity at least", 0.80, 1.0, 0.97, 0.01, key="dup_t")
        if st.button("Find near-duplicates", key="dup_go"):
            pairs = near_duplicates(searcher, threshold)
            if not pairs:
                st.info("No pairs above the threshold.")
            st.dataframe(
                [
                    {
                        "similarity": round(a.similarity, 4),
                        "a": f"{a.path} #{a.ordinal}",
                        "b": f"{b.path} #{b.ordinal}",
                        "a text": a.text[:120],
                        "b text": b.text[:120],
                    }
                    for a, b in pairs
                ],
                hide_index=True,
            )


def run() -> None:
    """The app, with a damaged index or any library error shown as a message, never as a
    traceback (``.streamlit/config.toml`` also keeps tracebacks out of the browser)."""
    try:
        main()
    except TPRError as e:
        st.error(str(e))
    except sqlite3.DatabaseError as e:  # a damaged page read late, after the index opened
        st.error(str(db_error(Path(st.session_state.get("tpr.index", "the index")), e)))


run()
