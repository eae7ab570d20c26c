"""`tpr serve` under load, on a real index with its real model.

Latency of POST /search per mode (p50 / p95, one client, query embedding included), then
requests per second with 4 concurrent clients (hybrid), and one one-shot `tpr search` for
comparison. The server is started as a user starts it (`python -m retriever serve`) and reached
over HTTP on 127.0.0.1; the model loads once, before the first request.

    python benchmarks/serve_latency.py --index python-docs [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import header, percentiles, save, timed
from query_latency import QUERIES as ONE_SHOT_QUERIES

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.ui_server import free_port

# query_latency.py's questions, and two more
QUERIES = [
    *ONE_SHOT_QUERIES,
    "how do I split a string on whitespace",
    "what happens when a class is defined",
]


def post(url: str, payload: dict) -> dict:
    req = urllib.request.Request(
        url + "/search", json.dumps(payload).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", default="python-docs")
    ap.add_argument("--rounds", type=int, default=3, help="Passes over the queries per mode.")
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    header()
    port = free_port()
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "retriever", "serve", "--index", args.index, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=1) as r:
                    if json.loads(r.read())["status"] == "ok":
                        break
            except OSError:
                if proc.poll() is not None or time.perf_counter() - t > 300:
                    raise SystemExit("tpr serve did not start") from None
                time.sleep(0.5)
        lines = [
            f"server ready (model loaded) in {time.perf_counter() - t:.1f} s\n",
            "| mode | requests | p50 ms | p95 ms |",
            "|---|---:|---:|---:|",
        ]
        post(url, {"query": "warm up", "index": args.index})
        for mode in ("hybrid", "dense", "bm25"):
            times = [
                timed(lambda q=q, m=mode: post(url, {"query": q, "mode": m, "index": args.index}))[
                    0
                ]
                for _ in range(args.rounds)
                for q in QUERIES
            ]
            p50, p95 = percentiles(times, (50, 95))
            lines.append(f"| {mode} | {len(times)} | {p50:.0f} | {p95:.0f} |")
            print(lines[-1], flush=True)
        jobs = [{"query": q, "index": args.index} for _ in range(args.rounds * 2) for q in QUERIES]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(lambda p: post(url, p), jobs))
        rate = len(jobs) / (time.perf_counter() - t0)
        lines.append(f"\n{args.clients} concurrent clients, hybrid: {rate:.1f} requests/s "
                     f"({len(jobs)} requests)")  # fmt: skip
        print(lines[-1])
        one_shot = timed(
            lambda: subprocess.run(
                [sys.executable, "-m", "retriever", "search", QUERIES[0], "--index", args.index],
                check=True,
                capture_output=True,
            )
        )[0]
        lines.append(f"one-shot `tpr search` (hybrid, model loaded per call): {one_shot:.1f} s")
        print(lines[-1])
        print(f"written to {save('serve_latency', chr(10).join(lines))}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
