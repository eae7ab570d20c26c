"""bf16 and int8 against fp32 on this CPU, side by side in one run, with the default model.

What ``--dtype auto`` decides (:mod:`retriever.embed.cpu`) and what it costs in quality:

* speed: SciFact abstracts embedded with the retrieval preset, each dtype in turn
  (chunks/s, best of the rounds);
* vectors: cosine of each abstract's vector to its fp32 one (min, mean);
* retrieval: dense nDCG@10 of the first ``--queries`` SciFact test queries over their judged
  documents plus random others, ``--docs`` in all, per dtype;
* sentence similarity: STS-B dev Spearman on the first ``--pairs`` pairs with the STS settings.

    python benchmarks/cpu_dtype.py [--dtypes float32,bfloat16,int8] [--queries 60] [--docs 150]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import torch
from harness import header, timed

from retriever import EmbedderConfig, TPEmbedder
from retriever.embed.cpu import auto_cpu_dtype, cpu_flags, has_native_bf16
from retriever.evaluation import beir, sts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=60)
    ap.add_argument("--docs", type=int, default=150)
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--dtypes", default="float32,bfloat16,int8", help="float32 first")
    args = ap.parse_args()
    dtypes = args.dtypes.split(",")
    header()
    native = [f for f in ("avx512_bf16", "amx_bf16") if f in cpu_flags()]
    auto = str(auto_cpu_dtype()).removeprefix("torch.")
    print(f"native bf16: {has_native_bf16()} ({', '.join(native) or 'none'}); torch threads "
          f"{torch.get_num_threads()}; auto picks {auto}")  # fmt: skip
    data = sts.default_data_dir()
    ds = beir.load(data / "scifact")
    queries = dict(list(ds.split_queries("test").items())[: args.queries])
    qrels = {q: ds.qrels["test"][q] for q in queries}
    judged = list(dict.fromkeys(d for rel in qrels.values() for d in rel if d in ds.corpus))
    rest = [d for d in ds.corpus if d not in set(judged)]
    picks = np.random.default_rng(0).choice(len(rest), max(0, args.docs - len(judged)), False)
    doc_ids = judged + [rest[i] for i in picks]
    docs = [ds.corpus[d] for d in doc_ids]
    preset = EmbedderConfig.for_retrieval(device="cpu")
    emb = {d: TPEmbedder.load(replace(preset, dtype=d)) for d in dtypes}
    vecs, seconds = {}, {d: [] for d in emb}
    for _ in range(args.rounds):  # alternate, so both see the same machine
        for d, e in emb.items():
            seconds[d] += timed(lambda e=e, d=d: vecs.__setitem__(d, e.encode(docs)))
    speed = {d: len(docs) / min(s) for d, s in seconds.items()}
    ref = vecs[dtypes[0]]
    ndcg = {}
    for d, e in emb.items():
        qv = e.encode_query(list(queries.values()))
        run = beir.dense_run(doc_ids, vecs[d], queries, qv)
        ndcg[d] = beir.ndcg_at(run, qrels)
    task = sts.load_task("STSB", data, "dev")
    task = sts.STSTask(task.name, task.left[: args.pairs], task.right[: args.pairs],
                       task.gold[: args.pairs])  # fmt: skip
    sentences = list(dict.fromkeys(task.left + task.right))
    rho = {}
    for d in emb:
        e = TPEmbedder.load(EmbedderConfig(device="cpu", dtype=d))
        rho[d] = sts.spearman(task, dict(zip(sentences, e.encode(sentences), strict=True)))
    print(f"\n{len(docs)} SciFact abstracts, {len(queries)} test queries, {len(task.gold)} STS-B "
          "dev pairs\n")  # fmt: skip
    base = dtypes[0]
    print(f"| | {' | '.join(dtypes)} |\n|---|{'---:|' * len(dtypes)}")
    print(f"| embedding (abstracts/s) | {' | '.join(f'{speed[d]:.2f}' for d in dtypes)} |")
    print(f"| speed vs {base} | {' | '.join(f'{speed[d] / speed[base]:.2f}x' for d in dtypes)} |")
    print(f"| SciFact dense nDCG@10 | {' | '.join(f'{ndcg[d]:.2f}' for d in dtypes)} |")
    print(f"| STS-B dev Spearman | {' | '.join(f'{rho[d]:.2f}' for d in dtypes)} |")
    for d in dtypes[1:]:
        cos = np.sum(ref * vecs[d], axis=1)
        print(f"cosine of {d} to {base} vectors: min {cos.min():.5f}, mean {cos.mean():.5f}")


if __name__ == "__main__":
    main()
