"""Indexing: folder -> text -> chunks -> vectors, kept in SQLite and FAISS."""
