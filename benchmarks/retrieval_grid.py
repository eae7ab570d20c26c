"""Search TP settings for retrieval on SciFact *train* queries: prompts, query prompts, TP ranges.

STS tuning chose the shipped TP range and prompt for sentence similarity; retrieval may want
others (issue 7). Each configuration embeds the document subset once (document vectors are
cached under the document-side fingerprint, so configurations that differ only in the query
prompt share that pass) and reports train nDCG@10 for last-token, mean and last+mean pooling
and for the sparse vectors. Test queries are not looked at: pick on train, then report the
chosen configuration on test with ``tpr eval beir``.

    python benchmarks/retrieval_grid.py --limit-docs 1500 --max-length 256 \\
        --configs "prompteol/-/2-5,topic-passage/topic-query/2-5,prompteol/-/1-3"

A configuration is ``DOC_PROMPT/QUERY_PROMPT/START-EXIT`` (``-`` = the document prompt, or
``vanilla`` instead of a range).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from machine import describe  # benchmarks/machine.py

from retriever import EmbedderConfig
from retriever.embed.gguf import cache_dir
from retriever.evaluation import beir
from retriever.evaluation.beir_eval import evaluate
from retriever.evaluation.sts import default_data_dir


def parse(config: str, base: EmbedderConfig) -> tuple[EmbedderConfig, str]:
    doc, query, rng = config.split("/")
    c = replace(base, prompt=doc, query_prompt=None if query == "-" else query)
    if rng == "vanilla":
        return c, "vanilla"
    start, exit_ = (int(x) for x in rng.split("-"))
    return replace(c, tp_start=start, tp_exit=exit_), "tp"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--limit-docs", type=int, default=1500)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--configs", required=True)
    ap.add_argument("--out", type=Path, default=None, help="Write all rows as JSON here.")
    args = ap.parse_args()
    print(f"machine: {describe()}")
    ds = beir.load(args.data or default_data_dir() / "scifact", args.limit_docs)
    base = EmbedderConfig(model=args.model, max_length=args.max_length, batch_size=args.batch_size)
    results = []
    print("| doc prompt | query prompt | TP | system | train nDCG@10 |\n|---|---|---|---|---:|")
    for spec in args.configs.split(","):
        config, variant = parse(spec, base)
        t = time.perf_counter()
        report = evaluate(
            ds,
            [(args.model, variant)],
            config,
            split="train",
            tune_split="train",
            cache=cache_dir() / "eval",
            log=lambda msg: print(msg, file=sys.stderr),
        )
        for row in report.rows:
            if row["system"].startswith(args.model):
                kind = row["system"].split()[-1]
                results.append({"config": spec, "system": kind, **row})
                print(
                    f"| {config.prompt} | {config.query_prompt or '-'} | "
                    f"{spec.split('/')[2]} | {kind} | {row['ndcg@10']:.2f} |",
                    flush=True,
                )
        print(f"({spec}: {time.perf_counter() - t:.0f}s)", file=sys.stderr)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
