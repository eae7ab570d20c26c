"""The engine factory: which :class:`~retriever.index.engine.Engine` searches an index, chosen
once from its meta, and where a new one is placed. The only module that knows every engine.
"""

from __future__ import annotations

from pathlib import Path

from .engine import Engine


def engine_for(store, meta: dict | None = None) -> Engine:
    """The engine of the index open in ``store``, from its meta (read now unless given)."""
    target = (meta if meta is not None else {"milvus": store.meta_value("milvus")}).get("milvus")
    if target:
        from .milvus import MilvusEngine

        return MilvusEngine(store, target)
    from .faiss_engine import FaissEngine

    return FaissEngine(store)


def engine_key(meta: dict) -> object:
    """What identifies an index's engine in its meta: a reader re-chooses its engine when this
    changes (a rebuild that moved the index to a new collection, ``--milvus`` on an index)."""
    return meta.get("milvus")


def place(store, uri: str | None, root: Path) -> Engine | None:
    """Record that the index is searched by the engine at ``uri`` (``tpr index --milvus URI``;
    None: keep the index's own). Returns the engine the index no longer uses, to retire once
    the run has finished, or None.

    Raises:
        ConfigError: a URI no engine understands. IndexLocationError: a file engine inside the
            folder being indexed.
    """
    if uri is None:
        return None
    from .milvus import MilvusEngine

    return MilvusEngine.place(store, uri, root)
