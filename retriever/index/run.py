"""What an index run is told (:class:`IndexOptions`) and what it reports (:class:`SyncReport`),
with the progress it shows on the way (bytes of text, for a bar with an honest ETA)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .loaders import DEFAULT_MAX_BYTES, FileStat


@dataclass
class Pending:
    """A file read and chunked, waiting for its vectors and its commit."""

    stat: FileStat
    sha: str
    row: dict | None  # its files row when it was indexed before
    texts: list[str]
    rows: list[dict]
    document: str = ""  # the file's text (chunks embedded inside it: EmbedderConfig.window)

    def spans(self) -> list[tuple[int, int]]:
        """Its chunks' character spans in ``document``."""
        return [(r["start"], r["end"]) for r in self.rows]


@dataclass
class IndexOptions:
    """How a folder is turned into chunks.

    Attributes:
        chunk_size: tokens per chunk (capped so that chunk + prompt fits the model's max length).
            None: the index's own, else :data:`DEFAULT_CHUNK_SIZE`.
        overlap: tokens repeated between consecutive chunks (None: the index's own, else
            :data:`DEFAULT_OVERLAP`).
        include / exclude: glob patterns on relative paths or names.
        max_bytes: larger files are skipped.
        faiss_factory: FAISS ``index_factory`` string; None: the index's own, else "auto"
            (exact Flat on small indexes and IVF on large ones,
            :func:`~retriever.index.vectors.factory_for`). A new value on an existing index is
            applied to all of it (the FAISS file is rebuilt from SQLite).
        group_chunks: chunks embedded and committed together.
        sparse: also store the LLM's sparse words per chunk (:mod:`retriever.index.sparse_terms`);
            once on, later runs keep them up to date.
        engine: where the index is searched, as a URI an engine understands
            (:func:`retriever.index.engines.place`; ``tpr index --help`` lists the forms). Once
            set it stays; a new URI moves the index's engine there (nothing is re-embedded).
            None: the index's own engine.
        ray: read, chunk and embed on Ray (:mod:`retriever.index.ray_index`) instead of in-process.
    """

    chunk_size: int | None = None
    overlap: int | None = None
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    max_bytes: int = DEFAULT_MAX_BYTES
    faiss_factory: str | None = None
    group_chunks: int = 64
    sparse: bool = False
    engine: str | None = None
    ray: object | None = None  # a RayOptions


@dataclass
class SyncReport:
    """What a run did."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    moved: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    chunks: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    sparse_chunks: int = 0  # chunks whose sparse words were computed in this run
    # False when nothing needed the embedder: a lazy one then never loads its weights.
    model_loaded: bool = True
    faiss_factory: tuple[str, str] | None = None  # (old, new) when this run changed it

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {
            "added": self.added,
            "updated": self.updated,
            "removed": self.removed,
            "moved": self.moved,
            "unchanged": self.unchanged,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "chunks": self.chunks,
            "seconds": round(self.seconds, 2),
            "embed_seconds": round(self.embed_seconds, 2),
            "sparse_chunks": self.sparse_chunks,
            "chunks_per_second": round(self.chunks_per_second, 2),
            "model_loaded": self.model_loaded,
            "faiss_factory": list(self.faiss_factory) if self.faiss_factory else None,
        }


class Progress:
    """Bytes of the files to embed done so far, with the chunks embedded, for the bar and a UI.

    Whole files count when their group is committed; inside a large group the bar moves by the
    group's share of bytes as its chunks embed (``partial``, taken back when the group commits).
    """

    def __init__(self, total: int, report: SyncReport, bar, on_progress):
        self.total, self.report, self.bar, self.on_progress = total, report, bar, on_progress
        self.done = self.partial = 0

    def files_done(self, files: list) -> None:
        n = sum(f.size for f in files) - self.partial
        self.partial = 0
        self._move(n, 0)

    def within_group(self, group_bytes: int, chunks_done: int, chunks_all: int) -> None:
        n = group_bytes * chunks_done // chunks_all - self.partial
        self.partial += n
        self._move(n, chunks_done)

    def _move(self, n: int, embedded: int) -> None:
        self.done += n
        chunks = self.report.chunks + embedded
        self.bar.set_postfix(chunks=chunks, refresh=False)
        self.bar.update(n)
        if self.on_progress is not None:
            self.on_progress(self.done, self.total, chunks)
