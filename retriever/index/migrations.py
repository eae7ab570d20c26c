"""Numbered schema migrations of an index database, applied in order by ``Store.writer``.

Each migration is a registered function; an applied one is recorded in ``_sqlite_migrations``
and never runs again. Never edit an applied migration: add the next number.
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

migrations = Migrations("tp-retriever")


@migrations(name="m001_initial")
def m001_initial(db: Database) -> None:
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["files"].create(
        {
            "id": int,
            "path": str,  # relative to the index root, POSIX separators
            "size": int,
            "mtime_ns": int,
            "sha256": str,
            "status": str,  # indexed | skipped
            "reason": str,  # why a skipped file was skipped
            "chunks": int,
            "indexed_at": str,
        },
        pk="id",
        not_null={"path", "status"},
    )
    db["files"].create_index(["path"], unique=True)
    db["files"].create_index(["sha256"])
    # AUTOINCREMENT: chunk ids are never reused, so a FAISS id always names one chunk.
    db.execute(
        """
        create table chunks (
            id integer primary key autoincrement,
            file_id integer not null references files(id) on delete cascade,
            ordinal integer not null,
            text text not null,
            start integer not null,
            "end" integer not null,
            page integer,
            tokens integer not null,
            vector blob not null
        )
        """
    )
    db["chunks"].create_index(["file_id", "ordinal"], unique=True)


@migrations(name="m002_chunks_fts")
def m002_chunks_fts(db: Database) -> None:
    # FTS5 over chunk text (Porter stemming), kept in sync with `chunks` by triggers, so
    # inserts, updates and cascade deletes from the indexer reach BM25 search too.
    db["chunks"].enable_fts(["text"], create_triggers=True, tokenize="porter", fts_version="FTS5")


@migrations(name="m003_chunk_metadata")
def m003_chunk_metadata(db: Database) -> None:
    # Caller-supplied metadata as a JSON object per chunk (texts added through the LangChain
    # VectorStore carry it; folder chunks have none). Filters read it with json_extract.
    db["chunks"].add_column("metadata", str)


@migrations(name="m004_sparse_terms")
def m004_sparse_terms(db: Database) -> None:
    # LLM sparse words per chunk (retriever/sparse_index.py), derived from the chunk's text and
    # stored vector, so they can always be recomputed. Cascade deletes keep them with their chunk.
    # A chunk with no weighted word gets one row with the empty word, which no query matches,
    # so that "chunks without rows" means "not computed yet" and an interrupted pass resumes.
    db.execute(
        """
        create table sparse_terms (
            chunk_id integer not null references chunks(id) on delete cascade,
            word text not null,
            weight real not null
        )
        """
    )
    db["sparse_terms"].create_index(["word", "chunk_id", "weight"])
    db["sparse_terms"].create_index(["chunk_id"])


@migrations(name="m005_chunk_citations")
def m005_chunk_citations(db: Database) -> None:
    # Where a chunk sits, for citations: its first and last line (1-based, in the loaded text)
    # and the heading path above it (Markdown, reST). Rows from before are filled in by the
    # next sync from the unchanged files (retriever/index/indexer.py), without re-embedding.
    db["chunks"].add_column("start_line", int)
    db["chunks"].add_column("end_line", int)
    db["chunks"].add_column("heading", str)
