"""Search latency and recall of FAISS index types at 10k / 100k / 1M vectors, and hybrid overhead.

Query embedding is excluded: every timing starts from a query vector. Per index type and size:
build time, bytes per vector (the serialised index size / n), p50 and p99 of single-query
search (one query at a time, as the app searches), and recall@10 against exact search.

Vectors are synthetic but shaped like real ones: real document vectors of the default model
(the SciFact vectors ``tpr eval beir`` caches, when present) are used as cluster centres, and
each synthetic vector is a centre plus Gaussian noise along the real vectors' principal
directions, normalised. Without the cache, centres are random (a harder, less realistic case);
the output says which. Queries are drawn the same way from held-out centres.

Hybrid overhead: a real index directory (SQLite + FTS5 + FAISS Flat) of 100k synthetic chunks
(Zipf-distributed words), searched through ``Searcher.search`` in dense, bm25 and hybrid mode
with a precomputed query vector.

    python benchmarks/search_latency.py [--sizes 10000,100000,1000000] [--hybrid-size 100000]
"""

from __future__ import annotations

import argparse
import glob
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import percentiles
from machine import describe  # benchmarks/machine.py

DIM = 640  # the default model's dimension


def seed_vectors(cache: Path, dim: int, rng) -> tuple[np.ndarray, str]:
    files = sorted(glob.glob(str(cache / "*-tp-last.npy"))) + sorted(
        glob.glob(str(cache / "*-last.npy"))
    )
    for f in files:
        v = np.load(f, allow_pickle=False)
        if v.ndim == 2 and v.shape[1] == dim:
            return v.astype(np.float32), f"real SciFact vectors ({Path(f).name}, n={len(v)})"
    centres = rng.standard_normal((2000, dim)).astype(np.float32)
    return centres / np.linalg.norm(centres, axis=1, keepdims=True), "random centres"


class Sampler:
    """Centre + noise along the centres' principal directions, normalised."""

    def __init__(self, centres: np.ndarray, rng, noise: float = 0.5):
        self.centres, self.rng = centres, rng
        c = centres - centres.mean(0)
        _, s, vt = np.linalg.svd(c, full_matrices=False)
        self.basis = (vt * (s[:, None] / np.sqrt(len(c)))).astype(np.float32)  # [r, d]
        self.noise = noise

    def draw(self, n: int, pool: np.ndarray) -> np.ndarray:
        out = np.empty((n, self.centres.shape[1]), np.float32)
        for a in range(0, n, 100_000):
            b = min(n, a + 100_000)
            idx = self.rng.choice(pool, b - a)
            z = self.rng.standard_normal((b - a, len(self.basis))).astype(np.float32)
            x = self.centres[idx] + self.noise * (z @ self.basis)
            out[a:b] = x / np.linalg.norm(x, axis=1, keepdims=True)
        return out


def time_queries(index, queries: np.ndarray, k: int = 10) -> tuple[list[float], np.ndarray]:
    times, ids = [], []
    for q in queries:
        t = time.perf_counter()
        _, i = index.search(q[None], k)
        times.append(time.perf_counter() - t)
        ids.append(i[0])
    return times, np.stack(ids)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits))


def index_bytes(index) -> int:
    import faiss

    return int(faiss.serialize_index(index).size)


def measure(index, label, n, build, size, queries, truth) -> dict:
    """One table row: latency percentiles and recall@10 of ``index`` at its current setting."""
    times, found = time_queries(index, queries)
    p50, p99 = percentiles(times)
    return dict(
        n=n,
        index=label,
        build_s=build,
        bytes=size,
        p50=p50,
        p99=p99,
        recall=recall(found, truth),
        q=len(queries),
    )


def bench_faiss(n: int, data: np.ndarray, queries: np.ndarray, args) -> list[dict]:
    import faiss

    rows = []
    exact = faiss.IndexFlatIP(DIM)
    exact.add(data)
    _, truth = exact.search(queries, 10)
    n_flat_q = min(len(queries), args.queries if n <= 100_000 else 50)
    times, _ = time_queries(exact, queries[:n_flat_q])
    rows.append(
        dict(
            n=n,
            index="Flat (exact)",
            build_s=0.0,
            bytes=index_bytes(exact) / n,
            p50=percentiles(times)[0],
            p99=percentiles(times)[1],
            recall=1.0,
            q=n_flat_q,
        )
    )
    del exact

    # 4 sqrt(n), and the product's choice (`--faiss auto`: that, to a power of two).
    for nlist in dict.fromkeys([int(4 * np.sqrt(n)), 2 ** round(np.log2(4 * np.sqrt(n)))]):
        ivf = faiss.index_factory(DIM, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
        t = time.perf_counter()
        ivf.train(data[np.random.default_rng(1).choice(n, min(n, 64 * nlist), replace=False)])
        ivf.add(data)
        build = time.perf_counter() - t
        size = index_bytes(ivf) / n
        for nprobe in args.nprobes:
            if nprobe > nlist:
                continue
            ivf.nprobe = nprobe
            rows.append(
                measure(ivf, f"IVF{nlist},Flat nprobe={nprobe}", n, build, size, queries, truth)
            )
        del ivf

    if n <= args.hnsw_max:
        hnsw = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 40
        t = time.perf_counter()
        hnsw.add(data)
        build = time.perf_counter() - t
        size = index_bytes(hnsw) / n
        for ef in args.efs:
            hnsw.hnsw.efSearch = ef
            rows.append(measure(hnsw, f"HNSW32 efSearch={ef}", n, build, size, queries, truth))
        del hnsw
    else:
        rows.append(dict(n=n, index="HNSW32", skipped=f"build not run above {args.hnsw_max:,}"))
    for r in rows:
        print_row(r)
    return rows


def print_row(r: dict) -> None:
    if "skipped" in r:
        print(f"| {r['n']:,} | {r['index']} | - | - | - | - | - | {r['skipped']} |", flush=True)
        return
    print(
        f"| {r['n']:,} | {r['index']} | {r['build_s']:.1f} | {r['bytes']:.0f} | {r['p50']:.2f} "
        f"| {r['p99']:.2f} | {r['recall']:.3f} | {r['q']} |",
        flush=True,
    )


def synthetic_texts(n: int, rng, vocab: int = 30_000, length: int = 120) -> list[str]:
    """Zipf-distributed pseudo-words: a long-tailed vocabulary like real text."""
    ranks = np.arange(1, vocab + 1)
    p = 1 / ranks**1.07
    p /= p.sum()
    words = np.array([f"w{i}" for i in range(vocab)])
    return [" ".join(words[rng.choice(vocab, length, p=p)]) for _ in range(n)]


def bench_hybrid(
    n: int, sampler: Sampler, pool_docs, pool_q, rng, queries: int, factories: list[str]
) -> None:
    import sqlite_utils

    from retriever.index.faiss_engine import FaissEngine
    from retriever.index.settings import bind
    from retriever.index.store import Store
    from retriever.index.vectors import factory_for
    from retriever.search.searcher import Searcher

    with tempfile.TemporaryDirectory() as tmp:
        idx = Path(tmp) / "idx"
        t = time.perf_counter()
        vecs = sampler.draw(n, pool_docs)
        texts = synthetic_texts(n, rng)
        with Store.writer(idx) as store:
            info = {"fingerprint": "synthetic", "config": {"model": "synthetic"}}
            bind(store, None, info, DIM, "Flat")
            db: sqlite_utils.Database = store.db
            with db.atomic():
                per_file = 10
                for f in range(0, n, per_file):
                    fid = (
                        db["files"]
                        .insert(
                            {
                                "path": f"doc{f // per_file}.txt",
                                "size": 0,
                                "mtime_ns": 0,
                                "sha256": "",
                                "status": "indexed",
                                "chunks": per_file,
                                "indexed_at": "",
                                "reason": None,
                            }
                        )
                        .last_pk
                    )
                    db["chunks"].insert_all(
                        {
                            "file_id": fid,
                            "ordinal": j - f,
                            "text": texts[j],
                            "start": 0,
                            "end": len(texts[j]),
                            "page": None,
                            "tokens": 120,
                            "vector": vecs[j].tobytes(),
                        }
                        for j in range(f, min(n, f + per_file))
                    )
                store.bump_generation()
            FaissEngine(store).write()
        print(
            f"\nhybrid: built a {n:,}-chunk index in {time.perf_counter() - t:.0f}s "
            f"(index.db {(idx / 'index.db').stat().st_size / 2**20:.0f} MiB)"
        )
        # Each query: 4 words of one chunk's text, with a vector drawn near the same centre.
        qvecs = sampler.draw(queries, pool_q)
        qtexts = [" ".join(rng.choice(texts[rng.integers(n)].split(), 4)) for _ in range(queries)]
        print("| FAISS | mode | p50 ms | p99 ms |\n|---|---|---:|---:|")
        for factory in factories:
            t = time.perf_counter()
            with Store.writer(idx) as store:
                store.set_meta(faiss_factory=factory)
                store.bump_generation()
                FaissEngine(store).write()
            built = factory_for(factory, n)
            print(f"{factory}: built {built} in {time.perf_counter() - t:.1f}s", flush=True)
            if built.startswith("IVF"):  # what a later index run pays: lists reused
                t = time.perf_counter()
                with Store.writer(idx) as store:
                    store.bump_generation()
                    FaissEngine(store).write()
                print(f"{factory}: rebuilt in {time.perf_counter() - t:.1f}s", flush=True)
            searcher = Searcher(idx)
            searcher.search(qtexts[0], k=10, mode="hybrid", query_vector=qvecs[0])  # load FAISS
            res = {}
            for mode in ("dense", "bm25", "hybrid"):
                times = []
                for q, v in zip(qtexts, qvecs, strict=True):
                    t = time.perf_counter()
                    searcher.search(q, k=10, mode=mode, query_vector=v)
                    times.append(time.perf_counter() - t)
                res[mode] = percentiles(times)
                print(
                    f"| {factory} | {mode} | {res[mode][0]:.2f} | {res[mode][1]:.2f} |", flush=True
                )
            searcher.close()
            extra = res["hybrid"][0] - res["dense"][0]
            print(
                f"{factory}: hybrid overhead over dense at p50 {extra:+.2f} ms; target hybrid "
                f"p50 < 20 ms: {'met' if res['hybrid'][0] < 20 else 'NOT met'}",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--nprobes", default="8,16,32,64")
    ap.add_argument("--efs", default="16,32,64,128")
    ap.add_argument(
        "--hnsw-max",
        type=int,
        default=1_000_000,
        help="Largest n at which HNSW is built (its build is the slow part).",
    )
    ap.add_argument("--hybrid-size", type=int, default=100_000, help="0 to skip.")
    ap.add_argument(
        "--hybrid-factories",
        default="Flat;HNSW32;IVF1264,Flat",
        help="FAISS factories for the hybrid runs, separated by ';'.",
    )
    ap.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="Folder of cached eval vectors (default: the model cache dir /eval).",
    )
    args = ap.parse_args()
    print(f"machine: {describe()}")
    args.nprobes = [int(x) for x in args.nprobes.split(",")]
    args.efs = [int(x) for x in args.efs.split(",")]
    import faiss

    from retriever.embed.gguf import cache_dir

    rng = np.random.default_rng(0)
    centres, where = seed_vectors(args.cache or cache_dir() / "eval", DIM, rng)
    pool = rng.permutation(len(centres))
    pool_q, pool_docs = pool[: len(pool) // 5], pool[len(pool) // 5 :]
    sampler = Sampler(centres, rng)
    print(
        f"vectors: {DIM}-d, centres = {where}; faiss {faiss.__version__}, "
        f"{faiss.omp_get_max_threads()} threads, {os.cpu_count()} CPUs"
    )
    queries = sampler.draw(args.queries, pool_q)
    print("\n| n | index | build s | bytes/vector | p50 ms | p99 ms | recall@10 | queries |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for n in (int(x) for x in args.sizes.split(",") if x):
        data = sampler.draw(n, pool_docs)
        bench_faiss(n, data, queries, args)
        del data
    if args.hybrid_size:
        bench_hybrid(
            args.hybrid_size,
            sampler,
            pool_docs,
            pool_q,
            rng,
            args.queries,
            args.hybrid_factories.split(";"),
        )


if __name__ == "__main__":
    main()
