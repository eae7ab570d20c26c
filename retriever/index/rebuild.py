"""``tpr index --rebuild`` of an intact index: built aside, swapped in at once.

The new index is built in a staging directory beside the old one (``rebuild.tmp/`` in the
index directory), with the index's own settings where the run gives none, the texts added
through the API copied over and re-embedded, and chunk ids continuing the old ones (an id never
names two chunks). It then replaces the live database in one transaction (SQLite's backup API):
readers see the old index until that commit and the new one after, and a rebuild that fails
(a full disk, Ctrl-C, SIGKILL) leaves the old index as it was; the next run clears the staging
directory. Its engine is renewed in the same place and the old one retired.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .engines import engine_for, engine_key
from .store import STAGING, Store


def rebuild_aside(indexer, live: Store, root: Path, report, progress, on_progress) -> None:
    """``--rebuild`` of an intact index: build a new index in a staging directory beside
    it (with the index's own settings where none are given, and the texts added through
    the API re-embedded), then copy it over the live database in one transaction with
    SQLite's backup API. Readers see the old index until that commit and the new one
    after; a failure before it (a full disk, Ctrl-C, SIGKILL) leaves the old index as it
    was, and the next run clears the staging directory."""
    staging = live.path / STAGING
    old = live.meta()
    old_engine = engine_for(live, old)
    with Store.writer(staging) as staged:
        keep_sparse = keep_settings(staged, old, indexer.options)
        # Generations only grow, so no stamp of the old index can match the new one.
        staged.set_meta(generation=int(old.get("generation") or 0) + 1)
        staged.set_meta(**old_engine.renewed())  # every vector changes
        with staged.atomic():
            staged.rows.continue_chunk_ids(live.rows.max_chunk_id())
            staged.rows.copy_added_from(live.rows)
        indexer._run(staged, root, report, progress, on_progress, True, keep_sparse)
        new_engine = engine_for(staged)
        if new_engine.fill_before_swap:  # readers search it by id: whole before the swap
            new_engine.sync()
        staged.set_meta(faiss_file=None)  # the live FAISS file is rewritten below
        live.replace_with(staged)
    engine_for(live).sync()
    if engine_key(live.meta()) != engine_key(old):
        old_engine.retire()
    remove_staging(live.path)


def keep_settings(store: Store, old: dict, opts) -> bool:
    """Carry an index's own settings into the index that replaces it (a rebuild), except
    those the run gives anew: chunking, the FAISS factory, sparse words, the file selection.

    Returns whether the old index had sparse words: the rebuild computes them again (their
    scale measured anew with the maybe new embedder). ``opts`` is only read: the caller's
    options must not carry one index's settings into the next index it syncs."""
    keep = {}
    if old.get("chunking"):
        keep["chunking"] = {
            k: v
            for k, v in old["chunking"].items()
            if {"chunk_size": opts.chunk_size, "overlap": opts.overlap}.get(k) is None
        }
    if old.get("faiss_factory") and opts.faiss_factory is None:
        keep["faiss_factory"] = old["faiss_factory"]
    if old.get("selection"):
        keep["selection"] = old["selection"]
    if keep.get("chunking") == {}:
        del keep["chunking"]
    if keep:
        store.set_meta(**keep)
    return old.get("sparse_scale") is not None


def remove_staging(index_dir: Path) -> None:
    """Remove what an interrupted ``--rebuild`` left in the index directory."""
    staging = Path(index_dir) / STAGING
    if staging.exists():
        shutil.rmtree(staging, ignore_errors=True)
