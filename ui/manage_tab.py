"""The Manage tab: re-sync the index's folder, remove a file, index a new folder.

Only folders under the roots the user allowed (``--root`` / ``$TPR_ROOTS``) are ever read; with
none, indexing from the app is off and the tab says how to turn it on. Logic lives in
``retriever`` (the indexer, ``index.manage``); this module lays it out.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from retriever.embed.config import EmbedderConfig
from retriever.embed.factory import LazyEmbedder, load_embedder
from retriever.errors import TPRError
from retriever.index import manage
from retriever.index.indexer import Indexer
from retriever.index.store import indexes_home
from retriever.search.searcher import Searcher

# What a new index is built with: the shipped preset, or a strategy (the CLI's flags).
PRESETS = {
    "default (late chunking, retrieval preset)": lambda: EmbedderConfig.for_retrieval(),
    "TP, each chunk alone (--tp-preset)": lambda: EmbedderConfig.for_strategy("tp"),
    "situated chunks (--situated)": lambda: EmbedderConfig.for_strategy("situated"),
    "echo (--echo)": lambda: EmbedderConfig.for_strategy("echo"),
    "all-MiniLM-L6-v2 (baseline)": lambda: EmbedderConfig(model="minilm"),
}


def manage_tab_ui(searcher: Searcher, meta: dict, index_dir: Path, roots: list[Path]) -> None:
    st.subheader("This index's folder", anchor=False)
    resync(searcher, meta, index_dir, roots)
    st.subheader("Remove a file from this index", anchor=False)
    remove_file(index_dir)
    st.subheader("Index a new folder", anchor=False)
    new_index(roots)


def run_with_progress(indexer: Indexer, folder: Path, index_dir: Path) -> None:
    """An index run with a progress bar, then its result card."""
    bar = st.progress(0.0, text="scanning...")

    def report(done: int, total: int, chunks: int) -> None:
        share = done / max(total, 1)
        bar.progress(share, text=f"{share:.0%} of the text embedded ({chunks} chunks)")

    try:
        r = indexer.sync(folder, index_dir, on_progress=report)
    except TPRError as e:
        st.error(str(e))
        return
    bar.progress(1.0, text="done")
    st.success(
        f"added {r.added}, updated {r.updated}, moved {r.moved}, removed {r.removed}, "
        f"unchanged {r.unchanged}, skipped {len(r.skipped)}; {r.chunks} chunks in "
        f"{r.seconds:.1f}s"
    )
    if r.skipped:
        st.dataframe([{"path": p, "reason": why} for p, why in r.skipped], hide_index=True)


def resync(searcher: Searcher, meta: dict, index_dir: Path, roots: list[Path]) -> None:
    """Re-sync the index's folder, if it lies under a root the user allowed."""
    if not meta.get("root"):
        st.info("This index has no folder: its texts were added from code (TPVectorStore).")
        return
    folder = Path(meta["root"]).resolve()
    if not roots:
        st.info(
            "Indexing from the app is off. Allow folders with "
            "`streamlit run ui/app.py -- --root FOLDER` (or TPR_ROOTS=a:b)."
        )
        return
    st.text(f"folder: {folder}\nallowed roots: {', '.join(map(str, roots))}")
    if not any(folder.is_relative_to(r) for r in roots):
        st.error(f"{folder} is not under an allowed root; the app will not read it.")
        return
    if st.button("Re-sync folder", key="sync_go"):
        from retriever.index.indexer import Indexer

        run_with_progress(Indexer(searcher.embedder), folder, index_dir)


def remove_file(index_dir: Path) -> None:
    """Drop one file's chunks (the file itself is never touched)."""
    paths = [r["path"] for r in manage.files(index_dir) if r.get("status") == "indexed"]
    if not paths:
        st.caption("No indexed file.")
        return
    path = st.selectbox("File", paths, key="rm_path")
    sure = st.checkbox("Remove its chunks from the index (the file stays on disk)", key="rm_ok")
    if st.button("Remove", key="rm_go", disabled=not sure):
        try:
            n = manage.remove(index_dir, path)
        except TPRError as e:
            st.error(str(e))
            return
        st.success(f"removed {path} ({n} chunks); a re-sync adds it back while the file exists")


def new_index(roots: list[Path]) -> None:
    """Build a named index of a folder under an allowed root."""
    if not roots:
        st.caption("Off: start the app with `--root FOLDER` (or TPR_ROOTS) to allow indexing.")
        return
    folder = st.text_input("Folder (under an allowed root)", key="new_folder")
    name = st.text_input("Index name", key="new_name")
    preset = st.selectbox("Embedding", list(PRESETS), key="new_preset")
    if not st.button("Index", key="new_go", disabled=not (folder.strip() and name.strip())):
        return
    path = Path(folder).expanduser().resolve()
    if not any(path.is_relative_to(r) for r in roots):
        st.error(f"{path} is not under an allowed root; the app will not read it.")
        return
    if not path.is_dir():
        st.error(f"{path} is not a folder.")
        return
    if "/" in name or name.startswith(".") or not name.strip():
        st.error("An index name is a bare name: letters, digits, dashes, no '/'.")
        return
    target = indexes_home() / name.strip()
    if target.exists():
        st.error(f"an index named {name!r} exists; pick another name or re-sync it")
        return
    run_with_progress(Indexer(LazyEmbedder(PRESETS[preset](), load_embedder)), path, target)
