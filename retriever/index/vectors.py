"""The FAISS side of an index: every ``faiss`` call of the product lives here.

An index's FAISS file is a derived cache of the vectors SQLite holds (:mod:`.store` decides
when it is current and keeps its stamp). This module knows how to build one (which factory,
training on a streamed sample, reusing trained IVF lists), write and read it with a sha256 of
its bytes, search it with the right parameters (an ID selector for filters, nprobe / efSearch
for approximate indexes), patch it in place, and check it against SQLite's vectors.

Every index is an ``IndexIDMap2`` over the inner index, so FAISS ids are chunk ids, with inner
product as the metric (vectors are normalised: scores are cosines).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from ..errors import FaissBuildError

# "auto" picks the FAISS index by size each time it is built from SQLite (the end of every
# index run that changed chunks, `tpr repair`): exact Flat below AUTO_IVF_MIN chunks, where it
# answers in under ~16 ms; IVF from there, with nlist = 4 sqrt(n) rounded to a power of two.
# benchmarks/search_latency.py measured Flat at 33 ms p50 for 100k vectors and IVF1264,Flat
# (nprobe 32) at 1.3 ms with recall@10 0.98, trained in ~11-17 s. The power of two lets later
# builds reuse the trained lists until the index grows or shrinks about 4x.
DEFAULT_FACTORY = "auto"
AUTO_IVF_MIN = 50_000
IVF_TRAIN_PER_LIST = 64  # training vectors per inverted list (FAISS wants at least 39)
IVF_FLAT = re.compile(r"IVF(\d+),Flat")
# Approximate indexes search with these, not FAISS's defaults (nprobe = 1, efSearch = 16, which
# gave recall@10 of 0.3-0.9 in benchmarks/search_latency.py); nprobe 32 measured 0.98 at 100k
# and 1M vectors.
ANN_NPROBE = 32
ANN_EF_SEARCH = 128

Batches = Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]  # (ids, vectors) from SQLite


def factory_for(factory: str, n: int) -> str:
    """The FAISS ``index_factory`` string to build for ``n`` vectors ("auto" resolved)."""
    if factory != "auto":
        return factory
    if n < AUTO_IVF_MIN:
        return "Flat"
    return f"IVF{2 ** round(math.log2(4 * math.sqrt(n)))},Flat"


def build(batches: Batches, n: int, d: int, factory: str, trained=None):
    """An ID-mapped FAISS index over the vectors ``batches()`` yields (called once or twice).

    Args:
        batches: yields (ids, [m, d] float32 vectors); called again to add after training.
        n: how many vectors it yields in all.
        d: their dimension.
        factory: an ``index_factory`` string ("auto" already resolved).
        trained: an empty trained index to reuse (:func:`reusable_ivf`), or None.

    Raises:
        FaissBuildError: training failed.
    """
    import faiss

    base = trained or faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
    index = base if isinstance(base, faiss.IndexIDMap2) else faiss.IndexIDMap2(base)
    if not base.is_trained:
        # An even sample, taken while streaming, so a million vectors never sit in memory
        # twice: 64 per inverted list for IVF, else (HNSW, PQ, ...) up to 100k.
        try:
            nlist = faiss.extract_index_ivf(base).nlist
        except RuntimeError:  # not an IVF index
            nlist = 0
        step = max(1, n // max(100_000, IVF_TRAIN_PER_LIST * nlist))
        parts, seen = [], 0
        for _, v in batches():
            parts.append(v[(-seen) % step :: step])  # global positions 0, step, 2 step, ...
            seen += len(v)
        sample = np.concatenate(parts or [np.zeros((0, d), dtype=np.float32)])
        try:
            index.train(np.ascontiguousarray(sample, dtype=np.float32))
        except RuntimeError as e:
            raise FaissBuildError(
                f"cannot train FAISS index {factory!r} on {len(sample)} vectors ({e}); "
                "use a smaller nlist, or --faiss auto (exact Flat on small indexes)"
            ) from None
    for ids, vecs in batches():
        index.add_with_ids(np.ascontiguousarray(vecs), ids)
    return index


def reusable_ivf(path: Path, sha256: str | None, factory: str, d: int):
    """The IVF index in ``path`` emptied of its vectors, if it has the lists ``factory`` asks
    for and its bytes match ``sha256``; else None.

    Training is most of an IVF rebuild (16.5 s of the 18 s at 100k chunks), and the lists an
    index was trained on still partition it well after a sync changed a few files. So a rebuild
    re-adds every vector to the trained lists. A damaged file is never reused.
    """
    import faiss

    match = IVF_FLAT.fullmatch(factory)
    if match is None or sha256 is None or not path.exists():
        return None
    try:
        index, sha = read_hashed(path)
        ivf = faiss.extract_index_ivf(index)
    except (RuntimeError, OSError):  # unreadable, or not IVF (Flat while it was small)
        return None
    same = (
        sha == sha256
        and index.d == d
        and ivf.nlist == int(match[1])
        and ivf.metric_type == faiss.METRIC_INNER_PRODUCT
        and isinstance(faiss.downcast_index(ivf), faiss.IndexIVFFlat)
    )
    if not same:
        return None
    index.reset()  # the vectors go, the trained coarse quantiser stays
    return index


def write_hashed(index, path: Path) -> str:
    """Write a FAISS index to ``path``; the sha256 of the bytes written (one pass)."""
    import faiss

    h = hashlib.sha256()
    with open(path, "wb") as f:

        def write(data: bytes) -> None:
            h.update(data)
            f.write(data)

        faiss.write_index(index, faiss.PyCallbackIOWriter(write))
    return h.hexdigest()


def read_hashed(path: Path):
    """(FAISS index, sha256 of the whole file), hashing the bytes as FAISS reads them.

    Raises:
        RuntimeError: FAISS cannot read the file. OSError: it cannot be opened.
    """
    import faiss

    h = hashlib.sha256()
    with open(path, "rb") as f:

        def read(n: int) -> bytes:
            data = f.read(n)
            h.update(data)
            return data

        index = faiss.read_index(faiss.PyCallbackIOReader(read, 1 << 20))
        while data := f.read(1 << 20):  # bytes after what FAISS read count too
            h.update(data)
    return index, h.hexdigest()


def search_params(index, sel=None):
    """FAISS search parameters of the right type for the index inside the ID map.

    IVF indexes reject plain ``SearchParameters`` (a filtered search would fail), so each kind
    gets its own, carrying the ID selector and the nprobe / efSearch above.
    """
    import faiss

    inner = faiss.downcast_index(index.index) if hasattr(index, "id_map") else index
    if isinstance(inner, faiss.IndexIVF):
        params = faiss.SearchParametersIVF()
        params.nprobe = min(ANN_NPROBE, inner.nlist)
    elif isinstance(inner, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW()
        params.efSearch = ANN_EF_SEARCH
    elif sel is None:
        return None
    else:
        params = faiss.SearchParameters()
    if sel is not None:
        params.sel = sel
    return params


def search_call(index, vector: np.ndarray, k: int, allowed: np.ndarray | None = None):
    """The top-k search of one query vector as a call, so that it can run on another thread
    (FAISS releases the GIL). The call returns (chunk id, inner product) best first.

    Args:
        allowed: only these ids (sorted int64), or None for all.
    """
    import faiss

    if allowed is not None and len(allowed) == 0:
        return lambda: []
    q = np.ascontiguousarray(np.asarray(vector, dtype=np.float32).reshape(1, -1))
    sel = faiss.IDSelectorBatch(allowed) if allowed is not None else None
    params = search_params(index, sel)  # `sel` stays referenced while FAISS searches

    def run() -> list[tuple[int, float]]:
        scores, ids = index.search(q, min(k, index.ntotal or 1), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    return run


def search_many(index, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids) of the top-k of each row of ``vectors``, with the search parameters."""
    return index.search(
        np.ascontiguousarray(vectors, dtype=np.float32),
        min(k, index.ntotal or 1),
        params=search_params(index),
    )


def patch(index, removed: Iterable[int], added: Iterable[int], vectors) -> bool:
    """Remove and add ids in place; False when the index type cannot (e.g. HNSW removals)."""
    removed, added = list(removed), list(added)
    try:
        if removed:
            index.remove_ids(np.asarray(removed, dtype=np.int64))
        if added:
            index.add_with_ids(np.ascontiguousarray(vectors), np.asarray(added, dtype=np.int64))
    except RuntimeError:
        return False
    return True


def ids_of(index) -> np.ndarray | None:
    """The ids an ID-mapped index holds, sorted (None for an index without an id map)."""
    import faiss

    return np.sort(faiss.vector_to_array(index.id_map)) if hasattr(index, "id_map") else None


def reconstruct(index, ids: np.ndarray) -> np.ndarray | None:
    """The stored vectors of ``ids`` read back from FAISS (None where the type cannot)."""
    import faiss

    try:
        with contextlib.suppress(RuntimeError):  # only IVF has (and needs) a direct map
            faiss.extract_index_ivf(index).make_direct_map()
        return np.stack([index.reconstruct(int(i)) for i in ids])
    except RuntimeError:
        return None


def describe(index) -> str:
    """A short name of the index type inside the ID map, e.g. ``IndexIVFFlat``."""
    import faiss

    inner = faiss.downcast_index(index.index) if hasattr(index, "id_map") else index
    return type(inner).__name__
