"""Exceptions raised by the library.

The library raises these specific types; ``retriever.cli`` turns them into one-line messages.
Every message names the problem and the fix.
"""

from __future__ import annotations


class TPRError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigError(TPRError, ValueError):
    """An embedder setting is invalid (bad layer range, unknown prompt, bad pooling...)."""


class TemplateError(ConfigError):
    """A prompt template is malformed (missing TEXT, misplaced or repeated <PST>)."""


class ModelNotFoundError(TPRError):
    """The model spec is neither a named model, a local HF directory nor a .gguf file."""


class TokenizerError(TPRError):
    """A tokenizer splits text wrongly (a GGUF tokenizer converted by a faulty transformers)."""


class UnsupportedModelError(TPRError):
    """The model loaded, but its decoder layers cannot be located generically."""


class EmptyInputError(TPRError, ValueError):
    """Nothing (or only whitespace) was given to embed."""


class DataNotFoundError(TPRError):
    """An evaluation data set is not where it was looked for."""


class StoreError(TPRError):
    """An index directory cannot be used as asked (base of the index errors below)."""


class IndexLockedError(StoreError):
    """Another process is writing to this index."""


class IndexMismatchError(StoreError):
    """The index was built with a different embedder (fingerprint), other chunking settings,
    or for another folder."""


class IndexNotFoundError(StoreError):
    """No index at that path."""


class IndexCorruptError(StoreError):
    """``index.db`` is damaged or is not an index database."""


class IndexLocationError(StoreError):
    """The index directory would lie inside the folder it indexes, or in a folder of other
    files."""


class FaissBuildError(StoreError):
    """A FAISS index could not be trained (e.g. more lists than vectors)."""


class FileNotInIndexError(StoreError):
    """A path that the index does not hold."""


class IndexDiskFullError(StoreError):
    """The disk (or the file system's quota) filled up while writing to an index. Nothing
    committed is lost; the next run resumes."""


class IndexIOError(StoreError):
    """The operating system or SQLite refused a read or write (an I/O condition, not damage)."""


class IndexReadOnlyError(StoreError):
    """The index lies on a read-only file system (or is not writable): searchable, not
    changeable."""


class NotAnIndexError(StoreError):
    """``index.db`` is a SQLite database of something else: no command writes into it."""


class FilterTooLargeError(ConfigError):
    """A filter over this product's limits (keys, suffixes, terms, pattern length)."""


class FolderNotFoundError(TPRError):
    """The folder to index is not there (deleted, moved, unmounted): nothing is removed."""
