"""Peak memory and time of situated chunks at two window sizes (issue 24, item 6).

One long document (the demo folder's topics concatenated, cut to the tokens needed), chunked
as the indexer does (256 tokens, overlap 32), embedded with ``--situated W`` for W = 2,048 and
8,192 tokens, each in a fresh process: the default model, fp32 on a CPU without native bf16.
Reported: the process's peak resident memory (VmHWM) after the model is loaded and during the
document's embedding, the seconds, and the tokens each pass reads (echo: two copies).

    python benchmarks/situated_memory.py [--windows 2048,8192] [--tokens 16384] [--strategy late]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from harness import header, save


def vm(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) // 1024
    raise KeyError(key)


def child(strategy: str, window: int, tokens: int) -> None:
    import tempfile

    from retriever import EmbedderConfig, TPEmbedder
    from retriever.demo import write_python_docs
    from retriever.index.chunking import Chunker

    with tempfile.TemporaryDirectory() as tmp:
        write_python_docs(Path(tmp))
        text = "\n\n".join(p.read_text() for p in sorted(Path(tmp).glob("*.txt")))
    emb = TPEmbedder.load(EmbedderConfig.for_strategy(strategy, window=window, dtype="float32"))
    ids = emb.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    text = text[: ids["offset_mapping"][tokens - 1][1]]
    chunks = Chunker(emb.tokenizer, 256, 32).split(text)
    loaded = vm("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    t = time.perf_counter()
    (vectors,) = emb.encode_chunks([(text, [(c.start, c.end) for c in chunks])])
    seconds = time.perf_counter() - t
    row = {"strategy": strategy, "window": window, "tokens": tokens, "chunks": len(chunks)}
    row.update(loaded_mib=loaded, peak_mib=vm("VmHWM"), seconds=seconds)
    print(json.dumps({**row, "shape": list(vectors.shape)}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", default="2048,8192")
    ap.add_argument("--tokens", type=int, default=16384)
    ap.add_argument("--strategy", default="situated", help="situated or late")
    ap.add_argument("--child", nargs=3)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]))
        return
    header()
    rows = []
    for w in (int(x) for x in args.windows.split(",")):
        out = subprocess.run(
            [sys.executable, __file__, "--child", args.strategy, str(w), str(args.tokens)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    lines = [
        f"One document of {args.tokens:,} tokens, chunks of 256 (overlap 32), "
        f"`--{args.strategy} W`, "
        "fp32. Peak = VmHWM during the embedding (reset after the model loaded).",
        "",
        "| window W | chunks | RSS, model loaded | peak while embedding | growth | seconds |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['window']:,} | {r['chunks']} | {r['loaded_mib']:,} MiB | {r['peak_mib']:,} MiB "
            f"| {r['peak_mib'] - r['loaded_mib']:,} MiB | {r['seconds']:.0f} |"
        )
    text = "\n".join(lines)
    print(text)
    save("situated_memory" if args.strategy == "situated" else f"{args.strategy}_memory", text)


if __name__ == "__main__":
    main()
