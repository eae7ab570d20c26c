"""What an index was built with, and what it may be synced with: the one place that answers
"which embedder does this index need?" and refuses another.

* :func:`index_embedder_config`, :func:`load_index_embedder`: the ``EmbedderConfig`` an index was
  built with (from its meta), and that embedder loaded;
* :func:`index_settings`: the settings to build or re-sync an index with (given, then the
  index's own, then the model's retrieval preset);
* :func:`bind`, :func:`check_root`, :func:`check_settings`, :func:`check_chunking`: record
  them on a new index, refuse a mismatch on an existing one (with the differences listed).

It lives under ``index/`` because the answer is read from an index; ``embed/`` only loads what
it is told to (the layer rule in tests/test_architecture.py keeps embed from importing index).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict
from pathlib import Path

from ..embed import factory
from ..errors import ConfigError, IndexCorruptError, IndexMismatchError
from .store import DB_NAME, Store, salvage_meta
from .tables import now

RUNTIME_KEYS = ("batch_size", "device", "dtype")
REBUILD_HINT = (
    "Re-run with --rebuild to re-embed everything with the new settings, "
    "or use --index DIR for a separate index"
)
OPEN_HINT = (
    "Open it with the embeddings it was built with (TPEmbeddings.from_index(index)), "
    "or give another index_dir for these embeddings"
)


def config_diff(old: dict, new: dict) -> list[str]:
    """Human-readable differences between two embedder descriptions."""
    out = []
    for key in sorted(set(old) | set(new)):
        if key in RUNTIME_KEYS:
            continue
        if old.get(key) != new.get(key):
            out.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return out


def bind(
    store: Store,
    root: Path | None,
    embedder_info: dict,
    dimension: int,
    factory: str,
    chunking: dict | None = None,
    remedy: str = REBUILD_HINT,
) -> None:
    """Record root, embedder and chunking on a new index; refuse a mismatch on an existing
    one.

    Args:
        root: the indexed folder, or None for texts added through the API only (an
            index without a folder takes the first folder it is synced with).
        chunking: ``{"chunk_size": ..., "overlap": ...}`` for folder indexes (see
            :func:`check_chunking`).
        remedy: what the mismatch message tells the caller to do (``tpr index`` can
            rebuild; a library caller opening an index should use its embeddings).

    Raises:
        IndexMismatchError: the index holds another folder or another embedder.
    """
    m = store.meta()
    root_s = str(Path(root).resolve()) if root is not None else None
    if "fingerprint" not in m:
        store.set_meta(
            root=root_s,
            fingerprint=embedder_info["fingerprint"],
            embedder=embedder_info["config"],
            dimension=dimension,
            metric="inner_product",
            faiss_factory=factory,
            created=now(),
            updated=now(),
            generation=int(m.get("generation", 0)),
        )
        if chunking is not None:
            store.set_meta(chunking=chunking)
        return
    check_root(store, root)
    if m["fingerprint"] in embedder_info.get("previous_fingerprints", ()):
        # The same embedder, fingerprinted the old way: adopt the new fingerprint.
        store.set_meta(fingerprint=embedder_info["fingerprint"])
    elif m["fingerprint"] != embedder_info["fingerprint"]:
        diff = config_diff(m.get("embedder", {}), embedder_info["config"]) or [
            "same settings, different weights or <PST> vector"
        ]
        raise IndexMismatchError(
            f"index {store.path} was built with another embedder (fingerprint "
            f"{m['fingerprint'][:12]}, now {embedder_info['fingerprint'][:12]}): "
            + "; ".join(diff)
            + ". "
            + remedy
        )
    if root_s is not None and m.get("root") is None:
        store.set_meta(root=root_s)


def check_root(store: Store, root: Path | None) -> None:
    """Refuse to sync another folder into an index that holds one.

    Raises:
        IndexMismatchError: the index holds another folder.
    """
    held = store.meta_value("root")
    if root is None or held is None:
        return
    root_s = str(Path(root).resolve())
    if held != root_s:
        raise IndexMismatchError(
            f"index {store.path} holds the folder {held}, not {root_s}; "
            "use --index DIR for a separate index"
        )


def check_settings(store: Store, settings: dict) -> None:
    """Refuse embedder settings that differ from the index's, without loading a model.

    Only settings given (not None) and recorded by the index are compared; the full
    fingerprint check happens in :meth:`bind` once something needs embedding.

    Raises:
        IndexMismatchError: a setting differs.
    """
    stored = store.meta_value("embedder")
    if not stored:
        return
    diff = [
        f"{k}: {stored[k]!r} -> {v!r}"
        for k, v in sorted(settings.items())
        if k not in RUNTIME_KEYS and v is not None and k in stored and stored[k] != v
    ]
    if diff:
        raise IndexMismatchError(
            f"index {store.path} was built with other embedder settings: "
            + "; ".join(diff)
            + ". Re-run with --rebuild to re-embed everything with the new settings, "
            "or use --index DIR for a separate index"
        )


def check_chunking(store: Store, chunking: dict) -> dict:
    """The index's chunking settings, with ``chunking``'s given (non-None) values checked.

    Chunk size and overlap belong to an index's identity like its embedder: a run with
    other values would leave some files cut one way and the rest another. An index from
    before chunking was recorded adopts the values of its next run.

    Raises:
        IndexMismatchError: a given value differs from the index's.
    """
    stored = store.meta_value("chunking") or {}
    diff = [
        f"{k}: {stored[k]!r} -> {v!r}"
        for k, v in sorted(chunking.items())
        if v is not None and k in stored and stored[k] != v
    ]
    if diff:
        raise IndexMismatchError(
            f"index {store.path} is chunked with other settings: "
            + "; ".join(diff)
            + ". Re-run with --rebuild to re-chunk and re-embed every file, or leave the "
            "options out to keep the index's own"
        )
    return {**{k: v for k, v in chunking.items() if v is not None}, **stored}


def index_embedder_config(meta: dict):
    """The ``EmbedderConfig`` an index was built with (from its meta table).

    Raises:
        ConfigError: the index was built through the VectorStore with other LangChain
            embeddings, which cannot be loaded from a name.
    """
    from ..embed.config import EmbedderConfig

    config = dict(meta.get("embedder") or {})
    if str(config.get("model", "")).startswith("langchain:"):
        raise ConfigError(
            f"this index was built with LangChain embeddings {config['model'][10:]!r}; search it "
            "from Python with TPVectorStore(index, those_embeddings), or use --mode bm25"
        )
    return EmbedderConfig(**config)


def load_index_embedder(index_dir, load=None):
    """Load the embedder an index was built with (``load``: the loader to use, default
    :func:`~retriever.embed.factory.load_embedder`; the CLI passes one that reports timing)."""
    with Store.open(index_dir) as store:
        config = index_embedder_config(store.meta())
    return (load or factory.load_embedder)(config)


def index_settings(index_dir, given: dict, defaults: dict | None = None, rebuild: bool = False):
    """The ``EmbedderConfig`` to build or re-sync the index at ``index_dir`` with: the settings
    given, then the index's own, then the model's retrieval preset
    (:func:`~retriever.embed.config.index_config`).

    Another model than the index's takes none of the index's settings (MiniLM's prompt "none"
    means nothing to an LLM): its settings then differ from the index's, and the indexer refuses
    them with the list of differences.

    Args:
        index_dir: the index directory (it need not exist).
        given: settings the user chose explicitly.
        defaults: runtime settings and anything else not set otherwise.
        rebuild: the index starts over; it still keeps its own settings where none are given
            (read even from a damaged index.db when its settings survive), so a rebuild never
            silently switches an index to another model.
    """
    from ..embed.config import index_config

    meta = _recorded_meta(index_dir, salvage=rebuild)
    stored = None
    # LangChain embeddings cannot be loaded by name (ConfigError): binding refuses them.
    with contextlib.suppress(ConfigError, TypeError):
        if meta.get("embedder"):
            stored = asdict(index_embedder_config(meta))
    if stored and given.get("model", stored["model"]) != stored["model"]:
        stored = None
    return index_config(given, defaults, stored)


def _recorded_meta(index_dir, salvage: bool = False) -> dict:
    """The meta table of the index at ``index_dir`` ({} when there is none yet, or when its
    first run stopped before it recorded anything).

    Args:
        salvage: a damaged index.db gives whatever meta rows can still be read ({} if none)
            instead of raising (``--rebuild`` keeps the settings of the index it replaces).
    """
    if not (Path(index_dir) / DB_NAME).exists():
        return {}
    try:
        with Store.open(index_dir, bound=False) as store:
            return store.meta()
    except IndexCorruptError:
        if not salvage:
            raise
        return salvage_meta(Path(index_dir))


def requested(embedder) -> dict:
    """The embedder's settings as a dict, without loading a lazy embedder's model."""
    from dataclasses import asdict, is_dataclass

    config = getattr(embedder, "requested_config", None) or embedder.config
    return asdict(config) if is_dataclass(config) else {}
