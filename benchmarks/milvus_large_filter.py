"""A filter that matches most of a large Milvus index: as the engine's expression, and as the
list of matching ids it replaced (issue 25, item 2).

A Milvus Lite collection made by the product's own :class:`retriever.index.milvus.Collection`
(same schema and filter fields, written and flushed as a sync does) holds N synthetic chunks
over N/100 files, 5 of 6 of them Markdown; chunk metadata says ``lang`` en/de. Two filters:
``--type .md --since`` (place fields: 5/6 of the chunks) and the same plus
``{"lang": {"$ne": "de"}}`` (a metadata key: 2/3). Each way is timed on the same dense queries,
side by side in one run, and the top-10 compared:

* **expression**: :func:`retriever.index.milvus_filter.expression` of the Filter (what a
  filtered search on a Milvus index sends now);
* **id list**: ``id in [...]`` of every matching chunk id (what it sent before).

    python benchmarks/milvus_large_filter.py [--chunks 150000] [--queries 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from harness import header, percentiles, save

from retriever.index import milvus, milvus_filter
from retriever.search.filters import Filter

DIM = 64


def rows(n: int, rng: np.random.Generator):
    for start in range(0, n, 5000):
        batch = []
        for i in range(start, min(n, start + 5000)):
            f = i // 100
            path = f"docs/part{f % 7}/file{f}.{'txt' if f % 6 == 0 else 'md'}"
            v = rng.standard_normal(DIM).astype(np.float32)
            batch.append(
                {
                    "id": i + 1,
                    "vector": (v / np.linalg.norm(v)).tolist(),
                    "text": f"chunk {i} of file {f}",
                    "path": path,
                    "start": 0,
                    "end": 10,
                    "metadata": {"lang": "de" if i % 5 == 0 else "en"},
                    "lpath": path,
                    "mtime": 1_700_000_000_000_000_000 + f,
                    "heading": f"Section {i % 9}",
                    "lheading": f"section {i % 9}",
                    "page": None,
                }
            )
        yield batch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=150_000)
    ap.add_argument("--queries", type=int, default=20)
    args = ap.parse_args()
    header()
    rng = np.random.default_rng(0)
    n = args.chunks
    md = [i + 1 for i in range(n) if (i // 100) % 6 != 0]
    cases = [
        (Filter(suffixes=(".md",), modified_after=1.7e9), md),
        (
            Filter(suffixes=(".md",), modified_after=1.7e9, where={"lang": {"$ne": "de"}}),
            [i for i in md if (i - 1) % 5 != 0],
        ),
    ]
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        c = milvus.Collection({"uri": f"{tmp}/milvus.db", "collection": "bench"})
        t = time.perf_counter()
        c.create(DIM)
        for batch in rows(n, rng):
            c.upsert(batch)
        c.flush()
        load_s = time.perf_counter() - t
        queries = rng.standard_normal((args.queries, DIM)).astype(np.float32)
        lines += [
            f"{n:,} chunks ({DIM} dimensions) in Milvus Lite, written and flushed in "
            f"{load_s:.0f} s. Dense top-10 per query, FLAT, each filter sent two ways:",
            "",
            "| filter | chunks it matches | sent as | filter text | p50 | p99 | same top-10 |",
            "|---|---:|---|---:|---:|---:|---:|",
        ]
        for flt, expected in cases:
            expression = milvus_filter.expression(flt)
            matched = c.matching(milvus.Where(expression))
            assert matched == set(expected), (len(matched), len(expected))
            ids = np.array(expected, np.int64)
            ways = {"expression": milvus.Where(expression), "id list": ids}
            sizes = {"expression": len(expression), "id list": len(c._filter(ids))}
            times: dict[str, list[float]] = {w: [] for w in ways}
            tops: dict[str, list] = {w: [] for w in ways}
            for q in queries:
                for way, allowed in ways.items():
                    t = time.perf_counter()
                    tops[way].append([cid for cid, _ in c.dense(q, 10, allowed)])
                    times[way].append(time.perf_counter() - t)
            same = sum(a == b for a, b in zip(tops["expression"], tops["id list"], strict=True))
            label = f"`{expression}`"
            for way in ways:
                p50, p99 = percentiles(times[way])
                lines.append(
                    f"| {label} | {len(matched):,} | {way} | {sizes[way]:,} B | {p50:.0f} ms | "
                    f"{p99:.0f} ms | {same}/{len(queries)} |"
                )
                label = ""
        milvus.close_all()
    text = "\n".join(lines)
    print(text)
    save("milvus_large_filter", text)


if __name__ == "__main__":
    main()
