"""Cold start A/B: the shipped tree, the shipped tree with one change patched in or out, and a
previous tree, alternated in fresh processes so the machine's drift hits all alike.

Each variant runs ``benchmarks/cold_start.py``'s child (``Searcher.open`` on an index and one
dense query, in a fresh process); medians per variant at the end.

    python benchmarks/cold_start_ab.py --old-tree /tmp/tree-old --index python-docs --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics

from cold_start import CHILD, child  # benchmarks/cold_start.py: the same child script

PARTS = ("imports", "open + load", "first query", "total")


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
    res: dict[str, list[dict]] = {k: [] for k in variants}
    for _ in range(args.rounds):
        for name, (env, patch) in variants.items():
            code = CHILD.format(patch=patch, index=args.index)
            res[name].append(child(code, {**os.environ, **env}))
            print(name, {k: round(res[name][-1][k], 2) for k in PARTS}, flush=True)
    print("| variant | " + " | ".join(PARTS) + " |  (median s)")
    print("|---|" + "---:|" * len(PARTS))
    for name, runs in res.items():
        med = [statistics.median(r[k] for r in runs) for k in PARTS]
        print(f"| {name} | " + " | ".join(f"{x:.2f}" for x in med) + " |")


if __name__ == "__main__":
    main()
