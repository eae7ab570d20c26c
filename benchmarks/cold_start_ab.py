"""Cold start A/B: the shipped tree, the shipped tree with one change patched in or out, and a
previous tree, alternated in fresh processes so the machine's drift hits all alike.

Each variant runs ``Searcher.open`` on an index and one dense query in a fresh process and
reports imports / open / first query / total seconds; medians per variant at the end.

    python benchmarks/cold_start_ab.py --old-tree /tmp/tree-old --index python-docs --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CODE = """
import time, json
t0 = time.perf_counter()
from retriever.search.searcher import Searcher
from retriever.search.request import SearchRequest
{patch}
t1 = time.perf_counter()
s = Searcher.open({index!r})
t2 = time.perf_counter()
s.run(SearchRequest('how do I split a string on whitespace', mode='dense'))
t3 = time.perf_counter()
print(json.dumps([t1 - t0, t2 - t1, t3 - t2, t3 - t0]))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old-tree", required=True, help="a worktree of the previous code")
    ap.add_argument("--index", default="python-docs")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--patch", default="", help="Python run after the imports (variant 2)")
    args = ap.parse_args()
    variants = {
        "shipped": ({}, ""),
        "shipped + patch": ({}, args.patch),
        "previous": ({"PYTHONPATH": args.old_tree}, ""),
    }
    if not args.patch:
        del variants["shipped + patch"]
    res: dict[str, list] = {k: [] for k in variants}
    for _ in range(args.rounds):
        for name, (env, patch) in variants.items():
            code = CODE.format(patch=patch, index=args.index)
            out = subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                env={**os.environ, **env},
                check=True,
            )
            res[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(name, [round(x, 2) for x in res[name][-1]], flush=True)
    print("| variant | imports | open + load | first query | total |  (median s)")
    print("|---|---:|---:|---:|---:|")
    for name, runs in res.items():
        med = [statistics.median(r[i] for r in runs) for i in range(4)]
        print(f"| {name} | " + " | ".join(f"{x:.2f}" for x in med) + " |")


if __name__ == "__main__":
    main()
