"""Incremental, resumable sync of a folder into an index.

A run compares the folder with the ``files`` table:

* same size and mtime -> unchanged (no read); else the sha256 decides: same hash -> unchanged
  (only the stat is refreshed), different -> re-embedded, its old chunks dropped;
* a new path whose hash equals a vanished path's -> a move: the row is renamed, nothing is
  re-embedded;
* vanished paths -> removed with their chunks.

A run takes the writer lock before anything else (a second writer is refused before a model
loads), and the model is loaded only when something needs embedding: a re-run over an unchanged
folder compares settings and hashes and touches no weights. Chunk size and overlap are part of
an index's identity, like its embedder: a run with other values is refused (``--rebuild``
re-chunks everything), so no index is ever cut two ways. A new FAISS factory is applied to the
whole index at the end of the run (nothing is re-embedded for that). The index directory may
not lie inside the folder it indexes, and no index directory's files are ever indexed.

Files are loaded, chunked and embedded in groups of about ``group_chunks`` chunks (so the model
sees full batches across small files), and each group is written in **one transaction** together
with a bump of the index generation. A run killed at any point (SIGKILL included) therefore
leaves whole files or nothing, and the next run redoes only what was not committed. The FAISS
file is rewritten at the end; until then its stamp is stale and readers rebuild from SQLite.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import FolderNotFoundError, TPRError
from . import settings, sparse_terms
from .chunking import Chunker
from .engines import engine_for
from .engines import place as engine_place
from .loaders import FileStat, SkipFile, Vanished, file_sha256, load, walk
from .rebuild import keep_settings, rebuild_aside, remove_staging
from .run import IndexOptions, Pending, Progress, SyncReport
from .store import (  # noqa: F401 (check_location is re-exported)
    DB_NAME,
    INDEX_FILES,
    IndexLocationError,
    Store,
    check_location,
    db_error,
    is_index_dir,
)
from .structure import Lines, Span, citation
from .tables import file_row
from .vectors import DEFAULT_FACTORY

log = logging.getLogger("retriever")

DEFAULT_CHUNK_SIZE = 256
DEFAULT_OVERLAP = 32


class Indexer:
    """Syncs one folder into one index with one embedder.

    Args:
        embedder: a loaded :class:`~retriever.embed.embedder.TPEmbedder`.
        options: chunking and selection settings.
    """

    def __init__(self, embedder, options: IndexOptions | None = None):
        self.embedder = embedder
        self.options = options or IndexOptions()
        self._chunker: Chunker | None = None
        self._chunking = {
            "chunk_size": self.options.chunk_size or DEFAULT_CHUNK_SIZE,
            "overlap": self.options.overlap
            if self.options.overlap is not None
            else DEFAULT_OVERLAP,
        }

    @property
    def chunker(self) -> Chunker:
        """The chunker for the run's chunking settings (needs the model's tokenizer)."""
        if self._chunker is None:
            # Leave room for the prompt around the chunk (plus a little for boundary merges).
            overhead = len(self.embedder.tokenize("x").ids)
            limit = self.embedder.config.max_length - overhead - 8
            size = min(self._chunking["chunk_size"], limit)
            overlap = min(self._chunking["overlap"], size // 2)
            self._chunker = Chunker(self.embedder.tokenizer, size, overlap)
        return self._chunker

    def sync(
        self,
        root: Path,
        index_dir: Path,
        rebuild: bool = False,
        progress: bool = False,
        on_progress=None,
    ) -> SyncReport:
        """Bring the index at ``index_dir`` in line with the folder ``root``.

        Args:
            root: the folder.
            index_dir: the index directory (created if needed).
            rebuild: re-chunk and re-embed everything (e.g. with new embedder or chunking
                settings); settings not given are the index's own. The new index is built
                beside the old one and takes its place in one transaction, so searches see the
                old index or the new one, and a rebuild that fails (a full disk, Ctrl-C) leaves
                the old one as it was. A damaged index.db is moved aside and a new one started.
            progress: show a tqdm bar.
            on_progress: called as ``on_progress(bytes_done, bytes_to_embed, chunks_done)``
                after each committed group (for UIs).

        Raises:
            IndexLockedError: another writer is active.
            IndexMismatchError: the index holds another folder, another embedder's vectors or
                other chunking settings.
            IndexLocationError: the index directory lies inside ``root``.
            FolderNotFoundError: ``root`` is not a folder (any more): nothing is removed.
            IndexCorruptError: index.db is damaged (``rebuild`` starts afresh).
            IndexDiskFullError: the disk filled up; what was committed stays, the next run
                resumes.
        """
        t0 = time.perf_counter()
        root = Path(root).resolve()
        check_location(root, Path(index_dir))
        if not root.is_dir():
            raise FolderNotFoundError(
                f"{root} is not a folder (deleted, moved or unmounted?); the index is left as it "
                "is. Run again once the folder is back"
            )
        report = SyncReport(model_loaded=False)
        # The lock comes first: a second writer is refused before any model loads.
        with Store.writer(index_dir, recover=rebuild) as store:
            try:
                remove_staging(store.path)  # what an interrupted rebuild left
                if rebuild and store.meta_value("fingerprint") is not None:
                    rebuild_aside(self, store, root, report, progress, on_progress)
                else:
                    kept = store.salvaged if rebuild else None
                    # A damaged index.db moved aside: keep what its settings were.
                    keep_sparse = bool(kept) and keep_settings(store, kept, self.options)
                    self._run(store, root, report, progress, on_progress, rebuild, keep_sparse)
                    engine_for(store).sync()
            except (sqlite3.Error, OSError) as e:
                raise _io_error(store.path, e) from None
        report.seconds = time.perf_counter() - t0
        return report

    def _run(
        self,
        store: Store,
        root: Path,
        report,
        progress,
        on_progress,
        fresh: bool,
        keep_sparse: bool = False,
    ) -> None:
        """The sync itself, on ``store`` (the index, or a rebuild's staging index);
        ``keep_sparse``: the index being replaced had sparse words."""
        opts = self.options
        sparse = opts.sparse or keep_sparse or store.meta_value("sparse_scale") is not None
        given = {"chunk_size": opts.chunk_size, "overlap": opts.overlap}
        if not fresh:
            settings.check_root(store, root)
            settings.check_settings(store, settings.requested(self.embedder))
        chunking = {**self._chunking, **settings.check_chunking(store, given)}
        if chunking != self._chunking:  # another index's (or a rebuild's) chunking
            self._chunking, self._chunker = chunking, None
        self._selection = self._record_selection(store)
        bound = store.meta_value("fingerprint") is not None
        if not bound:
            self._bind(store, root, report)
            if fresh:
                self._reembed_added(store, report)
        self._apply_factory(store, report)
        left = engine_place(store, self.options.engine, root)
        todo = self._plan(store, root, report)
        self._backfill_citations(store, root)
        if todo or (sparse and sparse_terms.pending(store)):
            self._bind(store, root, report)  # loads the model, checks its fingerprint
        # Before any embedding, so an embedder that cannot give sparse words fails at once.
        encoder = self._sparse_encoder(store) if sparse and report.model_loaded else None
        self._embed_all(store, root, todo, report, progress, on_progress)
        if encoder is not None:
            t = time.perf_counter()
            report.sparse_chunks = sparse_terms.catch_up(store, self.embedder, encoder)
            report.embed_seconds += time.perf_counter() - t
        if left is not None:  # the index moved to another place: what it used goes
            left.retire()

    def _record_selection(self, store: Store) -> dict:
        """Include and exclude patterns belong to the index, like its chunking: those given
        replace the recorded ones, and a run without them (``tpr watch``, the UI's re-sync)
        uses the index's own."""
        stored = store.meta_value("selection") or {}
        selection = self._selection_over(stored)
        if selection != stored and (selection["include"] or selection["exclude"] or stored):
            store.set_meta(selection=selection)
        return selection

    def _selection_over(self, stored: dict) -> dict:
        """The patterns given, else the index's recorded ones (``stored``)."""
        opts = self.options
        return {
            "include": list(opts.include) or stored.get("include", []),
            "exclude": list(opts.exclude) or stored.get("exclude", []),
        }

    def selection(self, index_dir: Path) -> tuple[list[str], list[str]]:
        """(include, exclude) a sync of ``index_dir`` would use (the given ones, else the
        index's own)."""
        stored = {}
        with contextlib.suppress(TPRError, sqlite3.Error, OSError):
            if (Path(index_dir) / DB_NAME).exists():
                with Store.open(index_dir, bound=False) as store:
                    stored = store.meta_value("selection") or {}
        selection = self._selection_over(stored)
        return selection["include"], selection["exclude"]

    def _bind(self, store: Store, root: Path, report: SyncReport) -> None:
        """Record (new index) or check (existing) the embedder; this loads the model."""
        if report.model_loaded:
            return
        factory = self.options.faiss_factory or store.meta_value("faiss_factory") or DEFAULT_FACTORY
        info = self.embedder.describe()
        report.model_loaded = True
        settings.bind(store, root, info, self.embedder.dimension, factory, dict(self._chunking))
        if store.meta_value("chunking") is None:  # an index from before chunking was recorded
            store.set_meta(chunking=dict(self._chunking))

    def _apply_factory(self, store: Store, report: SyncReport) -> None:
        """A FAISS factory given for an existing index replaces its own, for all of it."""
        new, old = self.options.faiss_factory, store.meta_value("faiss_factory")
        if new is None or old is None or new == old:
            return
        store.set_meta(faiss_factory=new, faiss_file=None)  # the file is rebuilt at the end
        report.faiss_factory = (old, new)

    def _sparse_encoder(self, store: Store):
        """The index's sparse encoder; a new sparse index records its logit scale first."""
        scale = store.meta_value("sparse_scale")
        encoder = sparse_terms.encoder_for(self.embedder, scale)
        if scale is None:
            store.set_meta(sparse_scale=encoder.scale)
        return encoder

    # -- planning ---------------------------------------------------------------------------

    def _plan(self, store: Store, root: Path, report: SyncReport) -> list[tuple]:
        opts = self.options
        known = store.rows.folder_files()
        seen: set[str] = set()
        todo: list[tuple[FileStat, str, dict | None]] = []

        def passed_over(f: FileStat, reason: str) -> None:
            seen.add(f.rel)
            row = known.get(f.rel)
            if not (row and row["status"] == "skipped" and row["reason"] == reason):
                self._write_skip(store, f, None, row, reason)
            report.skipped.append((f.rel, reason))

        include, exclude = self._selection["include"], self._selection["exclude"]
        files = walk(
            root,
            include,
            exclude,
            skip=[store.path],
            on_skip=passed_over,
            skip_dir=is_index_dir,
            skip_names=lambda d: INDEX_FILES if is_index_dir(d) else frozenset(),
        )
        for f in files:
            seen.add(f.rel)
            row = known.get(f.rel)
            if row and row["size"] == f.size and row["mtime_ns"] == f.mtime_ns:
                report.unchanged += 1
                if row["status"] == "skipped":
                    report.skipped.append((f.rel, row["reason"]))
                continue
            if f.size > opts.max_bytes:
                self._write_skip(store, f, None, row, f"larger than {opts.max_bytes} bytes")
                report.skipped.append((f.rel, f"larger than {opts.max_bytes} bytes"))
                continue
            try:
                sha = file_sha256(root / f.fs_rel)
            except Vanished as e:  # nothing recorded: the next run's walk sees it gone
                report.skipped.append((f.rel, str(e)))
                continue
            except (SkipFile, OSError) as e:
                reason = str(e) if isinstance(e, SkipFile) else f"unreadable ({e.strerror or e})"
                self._write_skip(store, f, None, row, reason)
                report.skipped.append((f.rel, reason))
                continue
            if row and row["sha256"] == sha and row["status"] == "indexed":
                store.places_changed()
                store.rows.touch_file(row["id"], f.size, f.mtime_ns)
                report.unchanged += 1
                continue
            todo.append((f, sha, row))

        gone = {p: r for p, r in known.items() if p not in seen}
        by_sha = {r["sha256"]: r for r in gone.values() if r["status"] == "indexed"}
        keep = []
        with store.atomic():
            for f, sha, row in todo:
                old = by_sha.pop(sha, None) if row is None else None
                if old is None:
                    keep.append((f, sha, row))
                    continue
                # A move: same content under a new path. Rename, keep chunks and vectors.
                store.places_changed()
                store.rows.move_file(old["id"], f.rel, f.size, f.mtime_ns)
                del gone[old["path"]]
                report.moved += 1
            for row in gone.values():
                store.rows.delete_file(row["id"])  # chunks go with it (ON DELETE CASCADE)
                report.removed += 1
            if gone:
                store.bump_generation()
        return keep

    def _backfill_citations(self, store: Store, root: Path) -> None:
        """Lines and heading paths for chunks indexed before they were recorded: read from the
        unchanged files (checked by hash), nothing re-embedded. Changed files get theirs when
        they are re-embedded.

        Finding them scans every chunk row (vectors included), so once a scan finds none the
        index records ``citations: complete`` and later syncs skip it.
        """
        if store.meta_value("citations") == "complete":
            return
        missing = store.rows.files_missing_citations()
        if not missing:
            store.set_meta(citations="complete")
        for file_id, path, sha in missing:
            try:
                if file_sha256(root / path) != sha:
                    continue
                doc = load(root / path)
            except (SkipFile, OSError):
                continue
            lines = Lines(doc.text)
            spans = store.rows.chunk_spans(file_id)
            with store.atomic():
                store.rows.set_citations(
                    [(cid, citation(doc, lines, Span(start, end))) for cid, start, end in spans]
                )

    def _reembed_added(self, store: Store, report: SyncReport) -> None:
        """Re-embed the texts added through the API with the current embedder."""
        rows = store.rows.added_chunks()
        step = max(self.options.group_chunks, 1)
        for i in range(0, len(rows), step):
            part = rows[i : i + step]
            t = time.perf_counter()
            vectors = self.embedder.encode([r[1] for r in part]).astype(np.float32, copy=False)
            report.embed_seconds += time.perf_counter() - t
            with store.atomic():
                store.rows.set_vectors([r[0] for r in part], vectors)
                store.bump_generation()
            report.chunks += len(part)

    def _write_skip(
        self, store: Store, f: FileStat, sha: str | None, row: dict | None, reason: str
    ) -> None:
        values = file_row(f.rel, f.size, f.mtime_ns, sha, "skipped", reason)
        with store.atomic():
            if store.rows.write_skip(values, row["id"] if row else None):
                store.bump_generation()

    # -- embedding and writing --------------------------------------------------------------

    def _embed_all(self, store, root, todo, report, progress, on_progress=None) -> None:
        from tqdm.auto import tqdm

        # Progress counts the bytes of the files to embed, not files: one large file no longer
        # holds the bar at 0%, and bytes track embedding time closely enough for an honest ETA
        # from the first group on. The chunks embedded so far ride along.
        total = sum(f.size for f, _, _ in todo)
        bar = tqdm(total=total, unit="B", unit_scale=True, desc="embedding", disable=not progress)
        progress_ = Progress(total, report, bar, on_progress)
        if self.options.ray is not None:  # Ray's workers read and chunk their own files
            from .ray_index import embed_files

            embed_files(self, store, root, todo, report, progress_)
        else:
            for group in self._groups(store, root, todo, report, progress_):
                self._flush(store, group, report, progress_.within_group)
                progress_.files_done([p.stat for p in group])
        bar.close()

    def _groups(self, store, root, todo, report, progress_) -> Iterator[list[Pending]]:
        """The files to embed, loaded and chunked, in groups of about ``group_chunks`` chunks
        (unreadable and empty files are recorded as skipped on the way)."""
        group: list[Pending] = []
        n_chunks = 0
        for f, sha, row in todo:
            try:
                doc = load(root / f.fs_rel, self.options.max_bytes)
            except Vanished as e:  # nothing recorded: the next run's walk sees it gone
                report.skipped.append((f.rel, str(e)))
                progress_.files_done([f])
                continue
            except SkipFile as e:
                self._write_skip(store, f, sha, row, str(e))
                report.skipped.append((f.rel, str(e)))
                progress_.files_done([f])
                continue
            chunks = self.chunker.split(doc.text)
            if not chunks:
                self._write_skip(store, f, sha, row, "empty (no text)")
                report.skipped.append((f.rel, "empty (no text)"))
                progress_.files_done([f])
                continue
            lines = Lines(doc.text)
            rows = [
                {"ordinal": i, "text": c.text, "tokens": c.tokens, **citation(doc, lines, c)}
                for i, c in enumerate(chunks)
            ]
            situated = self._situated()
            group.append(
                Pending(f, sha, row, [c.text for c in chunks], rows, doc.text if situated else "")
            )
            n_chunks += len(rows)
            if n_chunks >= self.options.group_chunks:
                yield group
                group, n_chunks = [], 0
        if group:
            yield group

    def _flush(self, store: Store, group: list[Pending], report: SyncReport, step=None) -> None:
        """Embed a group and write it in one transaction. A group is one file or more; a large
        file's chunks are embedded in slices of ``group_chunks`` so progress keeps moving, but
        still committed together (a file is whole or absent)."""
        texts = [t for p in group for t in p.texts]
        size = max(self.options.group_chunks, 1)
        group_bytes = sum(p.stat.size for p in group)
        t = time.perf_counter()
        parts = []
        if self._situated():  # a file's chunks inside the file: one pass per window
            # One file per call: batching short files' windows together (padded batches) was
            # measured slower, 156 vs 127 CPU s on 120 nq-utd passages (benchmarks/RESULTS.md).
            parts = [
                v for p in group for v in self.embedder.encode_chunks([(p.document, p.spans())])
            ]
        else:
            for i in range(0, len(texts), size):
                parts.append(
                    self.embedder.encode(texts[i : i + size]).astype(np.float32, copy=False)
                )
                if step is not None and i + size < len(texts):
                    step(group_bytes, i + size, len(texts))
        vectors = np.concatenate(parts) if len(parts) > 1 else parts[0]
        report.embed_seconds += time.perf_counter() - t
        self._commit(store, group, vectors, report)

    def _situated(self) -> bool:
        """Whether chunks are embedded inside their document (``EmbedderConfig.window``)."""
        return bool(getattr(self.embedder.config, "window", 0))

    def _commit(self, store: Store, group: list[Pending], vectors, report: SyncReport) -> None:
        """Write a group's files with their chunks and vectors in one transaction."""
        k = 0
        with store.atomic():
            for p in group:
                values = file_row(
                    p.stat.rel, p.stat.size, p.stat.mtime_ns, p.sha, "indexed", chunks=len(p.rows)
                )
                for r in p.rows:
                    r["vector"] = vectors[k].tobytes()
                    k += 1
                store.rows.write_file(values, p.row["id"] if p.row else None, p.rows)
                if p.row:
                    report.updated += 1
                else:
                    report.added += 1
                report.chunks += len(p.rows)
            store.bump_generation()


def _io_error(path: Path, e: BaseException) -> Exception:
    """A full disk or other I/O condition met while indexing, named as what it is."""
    if isinstance(e, OSError) and e.errno is None and not isinstance(e, sqlite3.Error):
        return e
    return db_error(path, e)
