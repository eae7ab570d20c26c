"""Which output layer for echo and situated chunks, chosen on SciFact *train* (issue 24).

Echo and situated chunks read two copies of the text, so they cost about twice the tokens of
today's preset; an earlier exit layer costs proportionally less (no later layer is computed).
This sweep finds how early they can exit: one pass to the deepest layer pools every layer
(:func:`retriever.embed.situated.pool_layers`), so the whole sweep costs one pass per system.

Data: a SciFact *train* cut (``--queries`` train queries, seed 0, their judged documents plus
random others up to ``--docs``), one document = title + abstract, chunked by the product's
chunker (``--chunk-size`` tokens, overlap 1/8). Echo = each chunk alone in the echo template
(a chunk is its own window, which equals ``--echo``); situated = the document's windows of 1024
tokens. Queries under the echo query prompt at the same layer. Dense nDCG@10 by document (its
best chunk); today's preset (TP, its own layer) as the reference, all in one run.

    python benchmarks/situated_layers.py [--docs 500] [--queries 200] [--chunk-size 256]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from harness import header, save
from situated import DATA

from retriever import EmbedderConfig
from retriever.embed.factory import load_embedder
from retriever.embed.prompts import parse_template
from retriever.embed.situated import pool_layers
from retriever.evaluation.beir import BeirData, load, ndcg_at
from retriever.index.chunking import Chunker

LAYERS = tuple(range(6, 19))


def train_cut(docs: int, queries: int, seed: int = 0) -> BeirData:
    data = load(DATA / "scifact")
    rng = np.random.default_rng(seed)
    qids = sorted(q for q in data.qrels["train"] if q in data.queries)
    qids = [qids[i] for i in sorted(rng.choice(len(qids), size=queries, replace=False))]
    qrels = {q: data.qrels["train"][q] for q in qids}
    judged = {d for rel in qrels.values() for d in rel if d in data.corpus}
    rest = sorted(set(data.corpus) - judged)
    extra = rng.choice(len(rest), size=max(0, docs - len(judged)), replace=False)
    keep = judged | {rest[i] for i in extra}
    corpus = {k: v for k, v in data.corpus.items() if k in keep}
    return BeirData(corpus, {q: data.queries[q] for q in qids}, {"train": qrels})


def doc_ndcg(q_vecs, c_vecs, chunk_doc: np.ndarray, doc_ids, qids, qrels) -> tuple[float, dict]:
    """nDCG@10 by document, a document scored by its best chunk."""
    sims = q_vecs @ c_vecs.T  # [queries, chunks]
    n_docs = len(doc_ids)
    best = np.full((len(qids), n_docs), -np.inf, np.float32)
    np.maximum.at(best.T, chunk_doc, sims.T)
    per = {}
    for i, q in enumerate(qids):
        top = np.argsort(-best[i])[:10]
        per[q] = ndcg_at({q: [(doc_ids[j], float(best[i, j])) for j in top]}, {q: qrels[q]})
    return float(np.mean(list(per.values()))), per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=500)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--chunk-size", type=int, default=256)
    ap.add_argument("--out", type=Path, default=Path("results/situated_layers.json"))
    ap.add_argument(
        "--tp", action="store_true", help="also TP [2,8) inside the window (echo's <PST> slot)"
    )
    ap.add_argument("--only-tp", action="store_true", help="the TP systems alone")
    args = ap.parse_args()
    header()
    data = train_cut(args.docs, args.queries)
    qids = list(data.queries)
    qtexts = [data.queries[q] for q in qids]
    qrels = data.qrels["train"]
    doc_ids = list(data.corpus)
    base = load_embedder(EmbedderConfig.for_strategy("situated"))
    chunker = Chunker(base.tokenizer, args.chunk_size, args.chunk_size // 8)
    documents, chunk_doc = [], []
    for d, doc_id in enumerate(doc_ids):
        text = data.corpus[doc_id]
        spans = [(c.start, c.end) for c in chunker.split(text)]
        documents.append((text, spans))
        chunk_doc += [d] * len(spans)
    chunk_doc = np.array(chunk_doc)
    print(f"{len(doc_ids)} docs, {len(chunk_doc)} chunks, {len(qids)} train queries", flush=True)
    raw: dict = {"docs": len(doc_ids), "chunks": len(chunk_doc), "queries": len(qids)}
    raw["chunk_size"] = args.chunk_size
    alone = [(t[a:b], [(0, b - a)]) for t, spans in documents for a, b in spans]
    with_tp = base.with_config(replace(base.config, tp=True, tp_start=2, tp_exit=8))
    systems = {  # label: (embedder, documents, layers)
        "echo (chunk alone)": (base, alone, LAYERS),
        "situated (window 1024)": (base, documents, LAYERS),
    }
    tp_systems = {
        # the echo template's <PST> slot, before the window, takes the window's last token's
        # state before each layer in [2, 8): TP inside the window (issue 24, item 2)
        "situated + TP [2,8)": (with_tp, documents, tuple(k for k in LAYERS if k >= 8)),
    }
    if args.only_tp:
        systems = tp_systems
    elif args.tp:
        systems.update(tp_systems)
    for label, (emb, docs, layers) in systems.items():
        tpl = parse_template(emb.config.templates()[0], tp=emb.config.tp)
        cpu = time.process_time()
        vecs = pool_layers(emb, tpl, docs, ["mean"], layers)
        cpu = time.process_time() - cpu
        row = {"cpu_s_to_layer_18": cpu, "ndcg10": {}}
        for layer in layers:
            c = vecs[(layer, "mean")]
            c = c / np.linalg.norm(c, axis=1, keepdims=True)
            at = emb.with_config(replace(emb.config, output_layer=layer))
            row["ndcg10"][str(layer)] = doc_ndcg(
                at.encode_query(qtexts), c, chunk_doc, doc_ids, qids, qrels
            )[0]
        raw[label] = row
        print(label, {k: round(v, 2) for k, v in row["ndcg10"].items()}, flush=True)
    preset = load_embedder(EmbedderConfig.for_strategy("tp"))  # the default then (--tp-preset)
    cpu = time.process_time()
    c = preset.encode([t[a:b] for t, spans in documents for a, b in spans])
    cpu = time.process_time() - cpu
    q = preset.encode_query(qtexts)
    raw["TP preset (today's default)"] = {
        "cpu_s": cpu,
        "ndcg10": doc_ndcg(q, c, chunk_doc, doc_ids, qids, qrels)[0],
        "layer": preset.config.output_layer,
    }
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(raw, indent=1))
    save(args.out.stem, table(raw))
    print(table(raw))


def table(raw: dict) -> str:
    p = raw["TP preset (today's default)"]
    systems = [k for k in raw if isinstance(raw[k], dict) and "cpu_s_to_layer_18" in raw[k]]
    lines = [
        f"SciFact train cut: {raw['docs']} docs, {raw['chunks']} chunks of {raw['chunk_size']} "
        f"tokens, {raw['queries']} train queries; dense nDCG@10 by document (its best chunk). "
        f"Today's preset (TP, layer {p['layer']}): **{p['ndcg10']:.2f}**, "
        f"{p['cpu_s']:.0f} CPU s for the corpus.",
        "",
        "| layer | " + " | ".join(systems) + " |",
        "|---:|" + "---:|" * len(systems),
    ]
    for layer in LAYERS:
        cells = [
            f"{raw[s]['ndcg10'][str(layer)]:.2f}" if str(layer) in raw[s]["ndcg10"] else ""
            for s in systems
        ]
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    cpu = ", ".join(f"{s} {raw[s]['cpu_s_to_layer_18']:.0f}" for s in systems)
    lines += ["", f"CPU s of one pass to layer 18 (every layer pooled): {cpu}."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
