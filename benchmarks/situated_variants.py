"""The situated forms issue 24 left unexplored, chosen on SciFact *train*: cheaper layouts of
the window and ``<PST>`` slots per chunk.

Situated chunks (the echo window: the window read twice, each chunk mean-pooled over its span in
the second copy) beat today's preset but cost about 1.5x its CPU, because every token is read
twice. This measures, on the train cut of ``situated_layers.py`` (same documents, chunks and
queries, dense nDCG@10 by document), what the issue asked for beside it:

* **one copy** (plain late chunking: a chunk sees only what precedes it), about half the
  tokens, alone and with TP slots before the text, overwritten before each layer in [2, 8):
  a global slot (the window's last token, as TP does for a sentence) and, with
  **slots per chunk**, one more slot per chunk taking that chunk's last token (Hierarchical TP
  with chunks as the blocks), so that every token sees a summary of every chunk, later ones too;
* **a shorter first copy**: the echo window whose first copy is only the window's first
  ``K`` tokens (its title and lead), so a document costs ``K + L`` tokens instead of ``2L``;
* **the mix**: the echo window with TP [2, 8) through the global slot and slots per chunk;
* **the asymmetric pair**: situated chunks searched with the passage prompt on queries too
  (symmetric) against the query prompt (shipped).

One pass per system pools every layer; queries under the echo query prompt at the same layer
(their cost is left out: a few seconds). Today's preset and situated chunks are rerun in the
same run as the references, with CPU seconds for the corpus.

    python benchmarks/situated_variants.py [--docs 500] [--queries 200] [--heads 64,128]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from harness import header, save
from situated_layers import doc_ndcg, train_cut

from retriever import EmbedderConfig
from retriever.embed.batching import Encoded
from retriever.embed.factory import load_embedder
from retriever.embed.prompts import parse_template
from retriever.embed.situated import Window, _prompt, pool_layers, span_tokens
from retriever.index.chunking import Chunker

LAYERS = tuple(range(8, 19))
ONE_COPY = ("This passage : ", ' "', '" means in one word:"')  # head, pre, post (TP's prompt)
ECHO = ("Rewrite the passage : ", ' "', '" , rewritten passage : "', '"')  # head, pre, mid, post


def layout(embedder, tp: bool, chunk_slots: bool, echo: bool, head_tokens: int | None = None):
    """A window's prompt builder for :func:`pool_layers`: ``head <slots> pre [FIRST mid] TEXT
    post``, where FIRST is the window again (echo) or its first ``head_tokens`` tokens, and the
    slots are a global ``<PST>`` (TP) and one per chunk (``chunk_slots``), taking the last token's
    and each chunk's last token's state in the TP layers."""
    tok = embedder.tokenizer

    def build(w: Window) -> tuple[Encoded, list]:
        head, pre = (ECHO if echo else ONE_COPY)[:2]
        post = ECHO[3] if echo else ONE_COPY[2]
        first = ""
        if echo:
            first = w.text
            if head_tokens is not None:
                offsets = tok(w.text, add_special_tokens=False, return_offsets_mapping=True)[
                    "offset_mapping"
                ]
                first = w.text[: offsets[min(head_tokens, len(offsets)) - 1][1]]
            first += ECHO[2]
        ids = tok(head, add_special_tokens=True)["input_ids"]
        pst = None
        if tp:
            pst = len(ids)
            ids += [embedder._pad_id] * (1 + (len(w.spans) if chunk_slots else 0))
        right = pre + first + w.text + post
        enc = tok(right, add_special_tokens=False, return_offsets_mapping=True)
        tokens = span_tokens(enc["offset_mapping"], len(pre) + len(first), w.spans, len(ids))
        slots = ()
        if tp and chunk_slots:
            slots = tuple((pst + 1 + k, t1 - 1) for k, (_, t1) in enumerate(tokens))
        ids += enc["input_ids"]
        return Encoded(ids, pst, tokens[0][0], tokens[-1][1], slots), tokens

    return build


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=500)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--chunk-size", type=int, default=256)
    ap.add_argument("--heads", default="64,128", help="first-copy lengths (tokens) to try")
    ap.add_argument("--systems", help="comma-separated labels to run (default: all)")
    ap.add_argument("--out", type=Path, default=Path("results/situated_variants.json"))
    args = ap.parse_args()
    header()
    data = train_cut(args.docs, args.queries)
    qids = list(data.queries)
    qtexts = [data.queries[q] for q in qids]
    qrels = data.qrels["train"]
    doc_ids = list(data.corpus)
    base = load_embedder(EmbedderConfig.for_strategy("situated"))
    tp = base.with_config(replace(base.config, tp=True, tp_start=2, tp_exit=8))
    chunker = Chunker(base.tokenizer, args.chunk_size, args.chunk_size // 8)
    documents, chunk_doc = [], []
    for d, doc_id in enumerate(doc_ids):
        text = data.corpus[doc_id]
        spans = [(c.start, c.end) for c in chunker.split(text)]
        documents.append((text, spans))
        chunk_doc += [d] * len(spans)
    chunk_doc = np.array(chunk_doc)
    print(f"{len(doc_ids)} docs, {len(chunk_doc)} chunks, {len(qids)} train queries", flush=True)
    cut = {"docs": len(doc_ids), "chunks": len(chunk_doc), "queries": len(qids)}
    cut["chunk_size"] = args.chunk_size
    # Rows already measured on the same cut are kept (run new systems with --systems).
    raw: dict = json.loads(args.out.read_text()) if args.out.exists() else {}
    if any(raw.get(k) != v for k, v in cut.items()):
        raw = {}
    raw.update(cut)
    echo_tpl = parse_template(base.config.templates()[0], tp=False)
    late = base.with_config(EmbedderConfig.for_strategy("late"))
    late_tpl = parse_template(late.config.templates()[0], tp=False)
    systems = {  # label: (embedder, prompt builder)
        "situated (shipped)": (base, lambda w: _prompt(base, echo_tpl, w)),
        "late (shipped: --late)": (late, lambda w: _prompt(late, late_tpl, w)),
        "one copy": (base, layout(base, False, False, False)),
        "one copy + TP": (tp, layout(tp, True, False, False)),
        "one copy + TP + chunk slots": (tp, layout(tp, True, True, False)),
        "situated + TP + chunk slots": (tp, layout(tp, True, True, True)),
    }
    for k in [int(h) for h in args.heads.split(",") if h]:
        systems[f"situated, first copy {k} tokens"] = (base, layout(base, False, False, True, k))
    if args.systems:
        keep = {s.strip() for s in args.systems.split(",")}
        systems = {k: v for k, v in systems.items() if k in keep}
    queries: dict = {}

    def query_vectors(prompt: str, layer: int) -> np.ndarray:
        if (prompt, layer) not in queries:
            cfg = replace(base.config, output_layer=layer, query_prompt=prompt)
            queries[(prompt, layer)] = base.with_config(cfg).encode_query(qtexts)
        return queries[(prompt, layer)]

    for label, (emb, build) in systems.items():
        tokens = [0]

        def counted(w: Window, emb=emb, build=build, tokens=tokens):
            encoded, spans = build(w)
            tokens[0] += len(encoded.ids)
            return encoded, spans

        cpu = time.process_time()
        vecs = pool_layers(emb, echo_tpl, documents, ["mean"], LAYERS, prompt=counted)
        cpu = time.process_time() - cpu
        row: dict = {"cpu_s_to_layer_18": cpu, "tokens": tokens[0], "ndcg10": {}}
        for layer in LAYERS:
            c = vecs[(layer, "mean")]
            c = c / np.linalg.norm(c, axis=1, keepdims=True)
            row["ndcg10"][str(layer)] = doc_ndcg(
                query_vectors("echo-query", layer), c, chunk_doc, doc_ids, qids, qrels
            )[0]
            if label == "situated (shipped)":  # the asymmetric pair: passage prompt on queries
                row.setdefault("symmetric_ndcg10", {})[str(layer)] = doc_ndcg(
                    query_vectors("echo-passage", layer), c, chunk_doc, doc_ids, qids, qrels
                )[0]
        raw[label] = row
        print(label, f"{cpu:.0f} CPU s", {k: round(v, 2) for k, v in row["ndcg10"].items()})
        print({k: round(v, 2) for k, v in row.get("symmetric_ndcg10", {}).items()}, flush=True)
    if "TP preset (today's default)" not in raw:
        raw["TP preset (today's default)"] = _preset(
            documents, qtexts, chunk_doc, doc_ids, qids, qrels
        )
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(raw, indent=1))
    save(args.out.stem, table(raw))
    print(table(raw))


def _preset(documents, qtexts, chunk_doc, doc_ids, qids, qrels) -> dict:
    """Today's preset on the cut: each chunk alone under its TP prompt."""
    preset = load_embedder(EmbedderConfig.for_strategy("tp"))  # the default then (--tp-preset)
    cpu = time.process_time()
    c = preset.encode([t[a:b] for t, spans in documents for a, b in spans])
    cpu = time.process_time() - cpu
    q = preset.encode_query(qtexts)
    tpl = parse_template(preset.config.templates()[0], tp=preset.config.tp)
    tokens = 0
    for t, spans in documents:
        for a, b in spans:
            left, right, _, _ = tpl.render(t[a:b])
            tokens += len(preset.tokenizer(left)["input_ids"]) + 1
            tokens += len(preset.tokenizer(right, add_special_tokens=False)["input_ids"])
    return {
        "cpu_s": cpu,
        "tokens": tokens,
        "ndcg10": doc_ndcg(q, c, chunk_doc, doc_ids, qids, qrels)[0],
        "layer": preset.config.output_layer,
    }


def table(raw: dict) -> str:
    p = raw["TP preset (today's default)"]
    systems = [k for k in raw if isinstance(raw[k], dict) and "cpu_s_to_layer_18" in raw[k]]
    lines = [
        f"SciFact train cut: {raw['docs']} docs, {raw['chunks']} chunks of {raw['chunk_size']} "
        f"tokens, {raw['queries']} train queries; dense nDCG@10 by document (its best chunk). "
        f"Today's preset (TP, layer {p['layer']}): **{p['ndcg10']:.2f}**, "
        f"{p['cpu_s']:.0f} CPU s for the corpus.",
        "",
        "| system | best layer | nDCG@10 | at layer 16 | tokens vs preset | CPU s to layer 18 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in systems:
        scores = raw[s]["ndcg10"]
        best = max(scores, key=scores.get)
        cpu = raw[s]["cpu_s_to_layer_18"]
        lines.append(
            f"| {s} | {best} | {scores[best]:.2f} | {scores['16']:.2f} | "
            f"{raw[s]['tokens'] / p['tokens']:.2f}x | {cpu:.0f} |"
        )
    sym = [s for s in systems if "symmetric_ndcg10" in raw[s]]
    for s in sym:
        a, b = raw[s]["ndcg10"], raw[s]["symmetric_ndcg10"]
        lines += [
            "",
            f"{s}, queries under the query prompt (shipped) / the passage prompt (symmetric): "
            + ", ".join(f"layer {k} {a[k]:.2f} / {b[k]:.2f}" for k in ("13", "16", "17")),
        ]
    lines += ["", "Every layer (nDCG@10):", "", "| layer | " + " | ".join(systems) + " |"]
    lines.append("|---:|" + "---:|" * len(systems))
    for layer in LAYERS:
        cells = [f"{raw[s]['ndcg10'][str(layer)]:.2f}" for s in systems]
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
