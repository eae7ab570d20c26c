"""Dense search in Milvus Lite against the local FAISS store: latency, recall@10, build time.

The same vectors and the same queries go to both, side by side in one run; exact FAISS Flat is
the ground truth. The local store is what ``tpr index`` builds (``auto``: exact Flat below
50,000 vectors, IVF with ~4 sqrt(n) lists from there, searched with the product's nprobe,
through :mod:`retriever.index.vectors`). Milvus Lite is searched through
:class:`retriever.index.milvus.Collection` (pymilvus's client, Milvus Lite in-process on a
local file) with FLAT (what ``--milvus`` creates), IVF_FLAT (the same lists and nprobe as FAISS
auto) and HNSW. Each query is one call, as the product searches; the query embedding is left out.

Vectors are synthetic but shaped like real ones (benchmarks/search_latency.py's sampler: real
document vectors as centres when a cache holds some, noise along their principal directions).

    python benchmarks/milvus_vs_faiss.py [--sizes 100000,1000000] [--queries 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import header, percentiles, save
from search_latency import DIM, Sampler, recall, seed_vectors

from retriever.embed.gguf import cache_dir
from retriever.index import milvus, vectors


def local_store(data: np.ndarray, queries: np.ndarray):
    factory = vectors.factory_for("auto", len(data))
    t = time.perf_counter()
    index = vectors.build(
        lambda: iter([(np.arange(len(data), dtype=np.int64), data)]), len(data), DIM, factory
    )
    build = time.perf_counter() - t
    times, found = [], []
    for q in queries:
        t = time.perf_counter()
        hits = vectors.search_call(index, q, 10)()
        times.append(time.perf_counter() - t)
        found.append([i for i, _ in hits])
    return factory, build, times, np.array(found)


def milvus_store(data, queries, index_type: str, params: dict, search: dict, path: Path):
    engine = milvus.Collection({"uri": str(path), "collection": f"bench_{index_type.lower()}"})
    c = engine.client
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    idx = c.prepare_index_params()
    idx.add_index(field_name="vector", index_type=index_type, metric_type="IP", params=params)
    t = time.perf_counter()
    c.create_collection(engine.collection, schema=schema, index_params=idx)
    for a in range(0, len(data), 5000):
        rows = [{"id": a + i, "vector": v} for i, v in enumerate(data[a : a + 5000].tolist())]
        c.insert(engine.collection, rows)
    c.flush(engine.collection)
    c.load_collection(engine.collection)
    engine.dense(queries[0], 10)  # the first search builds what is left to build
    build = time.perf_counter() - t
    times, found = [], []
    for q in queries:
        t = time.perf_counter()
        res = c.search(
            engine.collection,
            data=[q.tolist()],
            anns_field="vector",
            limit=10,
            output_fields=["id"],
            search_params={"metric_type": "IP", "params": search},
        )
        times.append(time.perf_counter() - t)
        found.append([int(h["id"]) for h in res[0]])
    c.drop_collection(engine.collection)
    return build, times, np.array(found)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--kinds", default="FLAT,IVF_FLAT,HNSW")
    args = ap.parse_args()
    header()
    lines: list[str] = []
    rng = np.random.default_rng(0)
    centres, source = seed_vectors(cache_dir() / "eval", DIM, rng)
    lines.append(f"vectors: dimension {DIM}, {source}")
    print(lines[-1])
    sampler = Sampler(centres, rng)
    pool = np.arange(len(centres))
    table = [
        "| vectors | store | index | build s | p50 ms | p95 ms | recall@10 |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    for n in [int(x) for x in args.sizes.split(",")]:
        data = sampler.draw(n, pool)
        queries = sampler.draw(args.queries, pool)
        truth = np.argsort(-(queries @ data.T), axis=1)[:, :10]
        factory, build, times, found = local_store(data, queries)
        p50, p95 = percentiles(times, (50, 95))
        row = f"| {n:,} | local FAISS | {factory} | {build:.1f} | {p50:.2f} | {p95:.2f} | "
        table.append(row + f"{recall(found, truth):.3f} |")
        print(table[-1], flush=True)
        nlist = int(factory.split(",")[0][3:]) if factory.startswith("IVF") else 64
        nprobe = min(vectors.ANN_NPROBE, nlist)
        settings = {
            "FLAT": ({}, {}),
            "IVF_FLAT": ({"nlist": nlist}, {"nprobe": nprobe}),
            "HNSW": ({"M": 16, "efConstruction": 200}, {"ef": vectors.ANN_EF_SEARCH}),
        }
        with tempfile.TemporaryDirectory(prefix="tpr-milvus-") as tmp:
            for kind in args.kinds.split(","):
                params, search = settings[kind]
                build, times, found = milvus_store(
                    data, queries, kind, params, search, Path(tmp) / "bench.db"
                )
                p50, p95 = percentiles(times, (50, 95))
                label = kind + (f" (nlist {nlist}, nprobe {nprobe})" if kind == "IVF_FLAT" else "")
                row = f"| {n:,} | Milvus Lite | {label} | {build:.1f} | {p50:.2f} | {p95:.2f} | "
                table.append(row + f"{recall(found, truth):.3f} |")
                print(table[-1], flush=True)
            milvus.close_all()
    save("milvus_vs_faiss", "\n".join([*lines, "", *table]))


if __name__ == "__main__":
    main()
