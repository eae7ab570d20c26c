"""The rows of an index: every SQL statement against ``files``, ``chunks``, their FTS5 table and
``sparse_terms`` lives in :class:`Tables`, which a :class:`~retriever.index.store.Store` holds
as ``store.rows``.

Nobody else writes SQL against an index (a test walks the package to keep it so): the indexer,
search, the VectorStore, the evaluations and the UI call these methods. Writes that belong
together take :meth:`Tables.atomic`; the schema itself is :mod:`retriever.index.migrations`'.

A ``files`` row is one of: a folder file that was indexed (``status = 'indexed'``, its chunks
and vectors beside it), one that was skipped (``'skipped'``, with the reason), or a text added
through the VectorStore (``'added'``, path ``vectorstore://<id>``, exactly one chunk).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager

import numpy as np

ADDED = "added"
API_PREFIX = "vectorstore://"
_BATCH = 500  # ids per "in (...)" list: SQLite's variable limit is far above, memory is not


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def file_row(
    path: str,
    size: int,
    mtime_ns: int,
    sha256: str | None,
    status: str,
    reason: str | None = None,
    chunks: int = 0,
) -> dict:
    """The ``files`` columns of one file, stamped now (the one place this row is spelled)."""
    return {
        "path": path,
        "size": size,
        "mtime_ns": mtime_ns,
        "sha256": sha256,
        "status": status,
        "reason": reason,
        "chunks": chunks,
        "indexed_at": now(),
    }


def _chunks_of(ids: Sequence[int]) -> Iterator[list[int]]:
    ids = [int(i) for i in ids]
    for start in range(0, len(ids), _BATCH):
        yield ids[start : start + _BATCH]


class Tables:
    """Row-level access to an index's SQLite database, held by its
    :class:`~retriever.index.store.Store` as ``store.rows``.

    Args:
        db: the store's sqlite-utils ``Database``.
    """

    def __init__(self, db):
        self.db = db

    def atomic(self) -> AbstractContextManager:
        """One transaction: everything inside commits together or not at all."""
        return self.db.atomic()

    def _dimension(self) -> int:
        row = self.db.execute("select value from meta where key = 'dimension'").fetchone()
        return int(row[0]) if row and row[0] not in (None, "null") else 0

    # -- files -----------------------------------------------------------------------------

    def folder_files(self) -> dict[str, dict]:
        """Every ``files`` row of the indexed folder (not added texts), by path."""
        return {r["path"]: r for r in self.db["files"].rows_where("status != ?", [ADDED])}

    def file_by_path(self, path: str) -> dict | None:
        return next(self.db["files"].rows_where("path = ?", [path]), None)

    def touch_file(self, file_id: int, size: int, mtime_ns: int) -> None:
        """The same content with a new stat (nothing else changes)."""
        self.db["files"].update(file_id, {"size": size, "mtime_ns": mtime_ns})

    def move_file(self, file_id: int, path: str, size: int, mtime_ns: int) -> None:
        """A file renamed in the folder: its chunks and vectors stay."""
        self.db["files"].update(file_id, {"path": path, "size": size, "mtime_ns": mtime_ns})

    def delete_file(self, file_id: int) -> None:
        """A file and (ON DELETE CASCADE) its chunks, FTS rows and sparse terms."""
        self.db["files"].delete(file_id)

    def write_file(self, values: dict, file_id: int | None, chunks: list[dict]) -> int:
        """Insert or replace one file's row and all of its chunks; returns its id.

        Args:
            values: the ``files`` columns.
            file_id: the existing row to replace, or None for a new file.
            chunks: ``chunks`` rows without ``file_id`` (it is filled in here).
        """
        if file_id is not None:
            self.db.execute("delete from chunks where file_id = ?", [file_id])
            self.db["files"].update(file_id, values)
        else:
            file_id = self.db["files"].insert(values).last_pk
        for row in chunks:
            row["file_id"] = file_id
        if chunks:
            self.db["chunks"].insert_all(chunks)
        return file_id

    def write_skip(self, values: dict, file_id: int | None) -> bool:
        """Record a skipped file (dropping chunks it had); True if it had any."""
        if file_id is None:
            self.db["files"].insert(values)
            return False
        had = self.db.execute(
            "select count(*) from chunks where file_id = ?", [file_id]
        ).fetchone()[0]
        self.write_file(values, file_id, [])
        return bool(had)

    def drop_folder_files(self) -> None:
        """Every folder file and its chunks (added texts stay), and every sparse term."""
        self.db.execute("delete from files where status != ?", [ADDED])
        self.db.execute("delete from sparse_terms")

    def file_counts(self) -> dict[str, int]:
        """Rows per status: indexed, skipped, added."""
        sql = "select status, count(*) from files group by status"
        return dict(self.db.execute(sql).fetchall())

    def list_files(self, skipped_only: bool = False) -> list[dict]:
        """path, status, reason, chunks, size of each file, by path (added texts included)."""
        where = "where status = 'skipped'" if skipped_only else ""
        return [
            dict(r)
            for r in self.db.query(
                f"select path, status, reason, chunks, size from files {where} order by path"
            )
        ]

    # -- texts added through the VectorStore ----------------------------------------------

    def add_text(self, doc_id: str, file_values: dict, chunk: dict) -> int:
        """One added text: its ``files`` row (path ``vectorstore://<id>``) and its one chunk;
        returns the chunk id."""
        values = {**file_values, "path": API_PREFIX + doc_id, "status": ADDED, "chunks": 1}
        chunk = {**chunk, "file_id": self.db["files"].insert(values).last_pk}
        return self.db["chunks"].insert(chunk).last_pk

    def delete_added(self, doc_ids: Sequence[str]) -> list[int]:
        """Delete the added texts with these ids; returns the chunk ids that went."""
        removed: list[int] = []
        for start in range(0, len(doc_ids), _BATCH):
            paths = [API_PREFIX + i for i in doc_ids[start : start + _BATCH]]
            marks = ",".join("?" * len(paths))
            where = f"f.status = ? and f.path in ({marks})"
            removed += [
                r[0]
                for r in self.db.execute(
                    f"select c.id from chunks c join files f on f.id = c.file_id where {where}",
                    [ADDED, *paths],
                )
            ]
            self.db.execute(
                f"delete from files where status = ? and path in ({marks})", [ADDED, *paths]
            )
        return removed

    def added_ids(self) -> list[str]:
        """The ids of every text added through the VectorStore."""
        rows = self.db.execute("select path from files where status = ?", [ADDED])
        return [r[0].removeprefix(API_PREFIX) for r in rows]

    def added_chunk_id(self, doc_id: str) -> int | None:
        row = self.db.execute(
            "select c.id from chunks c join files f on f.id = c.file_id "
            "where f.status = ? and f.path = ?",
            [ADDED, API_PREFIX + doc_id],
        ).fetchone()
        return None if row is None else int(row[0])

    def added_chunks(self) -> list[tuple[int, str]]:
        """(chunk id, text) of every added text, by id (what ``--rebuild`` re-embeds)."""
        return self.db.execute(
            "select c.id, c.text from chunks c join files f on f.id = c.file_id "
            "where f.status = ? order by c.id",
            [ADDED],
        ).fetchall()

    def copy_added_from(self, other: Tables) -> int:
        """Copy every text added through the API in ``other`` (an index being rebuilt into this
        one) with its chunk row; their vectors are re-embedded by the rebuild. Returns how many.
        """
        columns = [c for c in other.db["chunks"].columns_dict if c not in ("id", "file_id")]
        n = 0
        for f in other.db["files"].rows_where("status = ?", [ADDED]):
            file_id = self.db["files"].insert({k: v for k, v in f.items() if k != "id"}).last_pk
            for c in other.db["chunks"].rows_where(
                "file_id = ?", [f["id"]], select=", ".join(f'"{c}"' for c in columns)
            ):
                self.db["chunks"].insert({**c, "file_id": file_id})
                n += 1
        return n

    def set_vectors(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Replace the stored vectors of these chunks."""
        self.db.conn.executemany(
            "update chunks set vector = ? where id = ?",
            [(v.astype(np.float32).tobytes(), int(i)) for i, v in zip(ids, vectors, strict=True)],
        )

    # -- chunks ---------------------------------------------------------------------------

    def chunk_count(self) -> int:
        return self.db.execute("select count(*) from chunks").fetchone()[0]

    def chunk_ids(self) -> np.ndarray:
        """Every chunk id, ascending."""
        rows = self.db.execute("select id from chunks order by id").fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def chunk_places(self) -> dict[int, tuple[str, int]]:
        """(path, mtime_ns) of every chunk's file, by chunk id (what a mirror filters on)."""
        sql = "select c.id, f.path, f.mtime_ns from chunks c join files f on f.id = c.file_id"
        return {r[0]: (r[1], r[2]) for r in self.db.execute(sql)}

    def max_chunk_id(self) -> int:
        """The largest chunk id ever given (AUTOINCREMENT's counter: deleted ones included)."""
        row = self.db.execute("select seq from sqlite_sequence where name = 'chunks'").fetchone()
        return int(row[0]) if row else 0

    def continue_chunk_ids(self, after: int) -> None:
        """New chunks get ids above ``after`` (a rebuild continues the ids of the index it
        replaces, so a chunk id, and a LangChain ``chunk-<id>``, never names two chunks)."""
        self.db.execute("delete from sqlite_sequence where name = 'chunks'")
        self.db.execute("insert into sqlite_sequence(name, seq) values ('chunks', ?)", [after])

    def chunk_rows(self, ids: Sequence[int]) -> dict[int, dict]:
        """Chunk rows by id, with the file's path and status and decoded metadata; ids not in
        the index are left out."""
        out: dict[int, dict] = {}
        for part in _chunks_of(ids):
            marks = ",".join("?" * len(part))
            for r in self.db.query(
                'select c.id, c.text, c.ordinal, c.start, c."end", c.page, c.start_line, '
                "c.end_line, c.heading, c.metadata, f.path, f.status, f.mtime_ns "
                "from chunks c join files f on f.id = c.file_id "
                f"where c.id in ({marks})",
                part,
            ):
                r["metadata"] = _metadata(r["metadata"])
                out[r["id"]] = r
        return out

    def chunk_at(self, path: str, ordinal: int) -> int | None:
        """The id of chunk ``ordinal`` of the file at ``path``."""
        row = self.db.execute(
            "select c.id from chunks c join files f on f.id = c.file_id "
            "where f.path = ? and c.ordinal = ?",
            [path, ordinal],
        ).fetchone()
        return None if row is None else int(row[0])

    def chunk_context(self, chunk_id: int, radius: int = 1) -> list[dict]:
        """The chunk and its ``radius`` neighbours on each side in the same file, in order."""
        row = self.db.execute(
            "select file_id, ordinal from chunks where id = ?", [chunk_id]
        ).fetchone()
        if row is None:
            return []
        return [
            dict(r)
            for r in self.db.query(
                "select id, ordinal, text from chunks where file_id = ? and ordinal between ? "
                "and ? order by ordinal",
                [row[0], row[1] - radius, row[1] + radius],
            )
        ]

    def files_missing_citations(self) -> list[tuple[int, str, str]]:
        """(file id, path, sha256) of indexed files with chunks that have no line numbers yet
        (indexed before they were recorded)."""
        return self.db.execute(
            "select distinct f.id, f.path, f.sha256 from files f join chunks c on c.file_id = "
            "f.id where f.status = 'indexed' and c.start_line is null"
        ).fetchall()

    def chunk_spans(self, file_id: int) -> list[tuple[int, int, int]]:
        """(chunk id, start, end) of one file's chunks, in order."""
        return self.db.execute(
            'select id, start, "end" from chunks where file_id = ? order by ordinal', [file_id]
        ).fetchall()

    def set_citations(self, rows: list[tuple[int, dict]]) -> None:
        """Store (chunk id, {start_line, end_line, heading}) for existing chunks."""
        self.db.conn.executemany(
            "update chunks set start_line = ?, end_line = ?, heading = ? where id = ?",
            [(c["start_line"], c["end_line"], c["heading"], cid) for cid, c in rows],
        )

    def chunk_paths(self) -> dict[int, str]:
        """Every chunk id with its file's path."""
        return dict(
            self.db.execute(
                "select c.id, f.path from chunks c join files f on f.id = c.file_id"
            ).fetchall()
        )

    def chunks_where(
        self, where: Sequence[str], params: Sequence
    ) -> list[tuple[int, str, str | None]]:
        """(chunk id, path, heading) of the chunks meeting every condition (SQL over ``c`` =
        chunks and ``f`` = files, as :mod:`retriever.search.filters` writes them)."""
        sql = "select c.id, f.path, c.heading from chunks c join files f on f.id = c.file_id"
        if where:
            sql += " where " + " and ".join(where)
        return self.db.execute(sql, list(params)).fetchall()

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored vectors of ``ids``, in that order ([n, d] float32).

        Raises:
            KeyError: an id is not in the index.
        """
        ids = [int(i) for i in ids]
        if not ids:
            return np.zeros((0, int(self._dimension() or 0)), dtype=np.float32)
        rows: dict[int, bytes] = {}
        for part in _chunks_of(ids):
            marks = ",".join("?" * len(part))
            sql = f"select id, vector from chunks where id in ({marks})"
            rows.update(self.db.execute(sql, part).fetchall())
        return np.stack([np.frombuffer(rows[i], dtype=np.float32) for i in ids])

    def iter_vectors(self, batch: int = 8192) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, [n, d] float32 vectors) from SQLite in id order, a batch at a time."""
        last = -1
        while True:
            rows = self.db.execute(
                "select id, vector from chunks where id > ? order by id limit ?", [last, batch]
            ).fetchall()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
            yield ids, vecs.reshape(len(rows), -1)
            last = int(ids[-1])

    # -- ranked queries -------------------------------------------------------------------

    def _top_allowed(
        self, sql: str, params: list, k: int, allowed: np.ndarray | None
    ) -> list[tuple[int, float]]:
        """The first ``k`` (chunk id, score) rows of a best-first query, among ``allowed`` ids.

        Without ``allowed`` SQL applies the limit; with it, rows are read until ``k`` allowed
        ones are found (filters are applied before ranking, so k results come whenever k
        chunks match).
        """
        if allowed is None:
            rows = self.db.execute(sql + " limit ?", [*params, k])
        else:
            keep = set(allowed.tolist())
            rows = (r for r in self.db.execute(sql, params) if r[0] in keep)
        return [(int(cid), float(score)) for cid, score in itertools.islice(rows, k)]

    def fts_top(self, fts_query: str, k: int, allowed: np.ndarray | None = None):
        """Top-k (chunk id, -bm25) for an FTS5 MATCH expression (already made safe)."""
        sql = (
            "select rowid, -bm25(chunks_fts) as s from chunks_fts where chunks_fts match ? "
            "order by s desc"
        )
        return self._top_allowed(sql, [fts_query], k, allowed)

    def fts_df(self, word: str) -> int:
        """How many chunks contain ``word`` (FTS5, stemmed like the index)."""
        return self.db.execute(
            "select count(*) from chunks_fts where chunks_fts match ?", [f'"{word}"']
        ).fetchone()[0]

    # -- sparse terms ---------------------------------------------------------------------

    def sparse_pending(self) -> bool:
        """Whether any chunk still lacks its sparse words."""
        row = self.db.execute(
            "select 1 from chunks where not exists "
            "(select 1 from sparse_terms s where s.chunk_id = chunks.id) limit 1"
        ).fetchone()
        return row is not None

    def chunks_without_sparse(self, after: int, limit: int) -> list[tuple[int, str, bytes]]:
        """(id, text, vector) of up to ``limit`` chunks past id ``after`` with no sparse words."""
        return self.db.execute(
            "select id, text, vector from chunks where id > ? and not exists "
            "(select 1 from sparse_terms s where s.chunk_id = chunks.id) order by id limit ?",
            [after, limit],
        ).fetchall()

    def add_sparse_terms(self, rows: list[tuple[int, str, float]]) -> None:
        """(chunk id, word, weight) rows."""
        self.db.conn.executemany(
            "insert into sparse_terms (chunk_id, word, weight) values (?, ?, ?)", rows
        )

    def sparse_df(self, word: str, cap: int) -> int:
        """Chunks with ``word`` among their sparse words, counted up to ``cap``."""
        return self.db.execute(
            "select count(*) from (select 1 from sparse_terms where word = ? limit ?)",
            [word, cap],
        ).fetchone()[0]

    def sparse_top(self, weights: dict[str, float], k: int, allowed: np.ndarray | None = None):
        """Top-k (chunk id, sum of weight x chunk weight over shared words)."""
        values = ",".join("(?, ?)" for _ in weights)
        params: list = [v for item in weights.items() for v in item]
        sql = (
            f"with q(word, w) as (values {values}) "
            "select s.chunk_id, sum(s.weight * q.w) as score from sparse_terms s "
            "join q on s.word = q.word group by s.chunk_id order by score desc"
        )
        return self._top_allowed(sql, params, k, allowed)

    def sparse_chunk_count(self) -> int:
        """Chunks that have sparse words (a scan of the postings: only where there are any)."""
        return self.db.execute("select count(distinct chunk_id) from sparse_terms").fetchone()[0]


def _metadata(text: str | None) -> dict:
    return json.loads(text) if text else {}
