"""Indexing on Ray: workers read, chunk and embed their own files; the driver commits.

Design. The driver plans a run as always (the walk, the hashes, which files to embed) and hands
Ray Data only that manifest: one small row per file (its position and path). Each actor
(:class:`FileActor`) loads the embedder once and, per batch of files, reads each file, chunks
it with the run's chunker settings, computes the chunks' citations and embeds them all in one
length-sorted call; it returns per file the chunk rows (JSON) and vectors (float32 bytes), or
why it was skipped. The driver reads the results back in manifest order (``preserve_order``)
and commits them a group of about ``group_chunks`` chunks at a time, in one transaction each,
as in-process indexing does. So the driver holds the manifest and what is not yet committed,
never the corpus' texts (``benchmarks/ray_driver_memory.py`` measures its peak at two corpus
sizes), and a killed job loses at most the groups not yet committed.

Workers read the files by the driver's absolute paths: on a cluster, every node needs the
folder at the same path (a shared file system), as well as tp-retriever and the model.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..embed.ray_job import RayOptions, ordered_map
from .chunking import Chunker
from .loaders import SkipFile, Vanished, load
from .run import Pending
from .structure import Lines, citation

FILES_PER_BATCH = 8  # files per map_batches call: enough chunks for full embedding batches


class FileActor:
    """The callable class of ``map_batches``: loads the embedder once, then reads, chunks and
    embeds the files of each batch."""

    def __init__(self, config: dict, chunking: tuple[int, int], max_bytes: int, threads=None):
        from ..embed.config import EmbedderConfig
        from ..embed.factory import load_embedder

        if threads:
            import torch

            torch.set_num_threads(threads)
        self.embedder = load_embedder(EmbedderConfig(**config))
        self.chunker = Chunker(self.embedder.tokenizer, *chunking)
        self.max_bytes = max_bytes

    def __call__(self, batch):
        import pandas as pd

        out = {"n": [], "status": [], "reason": [], "rows": [], "vectors": []}
        documents: list[tuple[str, list]] = []
        for n, path in zip(batch["n"], batch["path"], strict=True):
            status, reason, rows, text = self._read(Path(path))
            out["n"].append(int(n))
            out["status"].append(status)
            out["reason"].append(reason)
            out["rows"].append(rows)
            if rows:
                documents.append((text, [(r["start"], r["end"]) for r in rows]))
        vectors = None
        if documents and getattr(self.embedder.config, "window", 0):  # inside their file
            vectors = np.concatenate(self.embedder.encode_chunks(documents))
        elif documents:  # each chunk alone
            texts = [r["text"] for rows in out["rows"] for r in rows]
            vectors = self.embedder.encode(texts).astype(np.float32)
        k = 0
        for i, rows in enumerate(out["rows"]):
            out["vectors"].append(vectors[k : k + len(rows)].tobytes() if rows else b"")
            out["rows"][i] = json.dumps(rows)
            k += len(rows)
        return pd.DataFrame(out)

    def _read(self, path: Path) -> tuple[str, str, list[dict], str]:
        """(status, reason, chunk rows, text) of one file, as the in-process run reads it."""
        try:
            doc = load(path, self.max_bytes)
        except Vanished as e:
            return "vanished", str(e), [], ""
        except SkipFile as e:
            return "skipped", str(e), [], ""
        chunks = self.chunker.split(doc.text)
        if not chunks:
            return "skipped", "empty (no text)", [], ""
        lines = Lines(doc.text)
        rows = [
            {"ordinal": i, "text": c.text, "tokens": c.tokens, **citation(doc, lines, c)}
            for i, c in enumerate(chunks)
        ]
        return "indexed", "", rows, doc.text


def results(config, chunking, max_bytes: int, paths: list[str], options: RayOptions):
    """(position, status, reason, rows, vectors) per file of ``paths``, in order, from a Ray
    Data job whose actors read, chunk and embed the files."""
    items = [{"n": i, "path": p} for i, p in enumerate(paths)]
    kwargs = {"config": asdict(config), "chunking": chunking, "max_bytes": max_bytes}
    for batch in ordered_map(items, FileActor, kwargs, options, FILES_PER_BATCH, "pandas"):
        for row in batch.itertuples(index=False):
            yield int(row.n), row.status, row.reason, json.loads(row.rows), row.vectors


def embed_files(indexer, store, root: Path, todo: list, report, progress_) -> None:
    """Embed ``todo`` (the run's (FileStat, sha, row) to embed) on Ray and commit it in groups,
    as :meth:`~retriever.index.indexer.Indexer._flush` does in-process."""
    if not todo:
        return
    chunker = indexer.chunker
    dim = indexer.embedder.dimension
    paths = [str(root / f.fs_rel) for f, _, _ in todo]
    group: list = []
    held: list[np.ndarray] = []
    n_chunks, due = 0, 0
    t = time.perf_counter()
    stream = results(
        indexer.embedder.config,
        (chunker.chunk_size, chunker.overlap),
        indexer.options.max_bytes,
        paths,
        indexer.options.ray,
    )
    for n, status, reason, rows, vectors in stream:
        if n != due:
            raise RuntimeError(f"Ray returned file {n} where {due} was due")
        due += 1
        f, sha, row = todo[n]
        if status != "indexed":
            if status != "vanished":  # a vanished file is left to the next run's walk
                indexer._write_skip(store, f, sha, row, reason)
            report.skipped.append((f.rel, reason))
            progress_.files_done([f])
            continue
        group.append(Pending(f, sha, row, [r["text"] for r in rows], rows))
        held.append(np.frombuffer(vectors, np.float32).reshape(len(rows), dim))
        n_chunks += len(rows)
        if n_chunks >= indexer.options.group_chunks:
            report.embed_seconds += time.perf_counter() - t
            indexer._commit(store, group, np.concatenate(held), report)
            progress_.files_done([p.stat for p in group])
            group, held, n_chunks, t = [], [], 0, time.perf_counter()
    if group:
        report.embed_seconds += time.perf_counter() - t
        indexer._commit(store, group, np.concatenate(held), report)
        progress_.files_done([p.stat for p in group])
