"""What ``tpr`` prints: results, run reports, an index's card, the model-loading lines, and the
library's warnings on stderr. Everything a document or a file name puts on a terminal goes
through :func:`safe` (control characters written as visible escapes); ``--json`` output is
``json.dumps``'s, which escapes them itself.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import click

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe(text: object) -> str:
    """Text for a terminal: control characters (ESC of an OSC title or hyperlink sequence, a
    carriage return that overwrites a line, C1 codes) are written as visible escapes
    (``\\x1b``), so a file name or a document can never drive the terminal. Newlines and tabs
    stay. JSON output needs none of this: ``json.dumps`` escapes them itself."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def log_to_stderr() -> None:
    """The library's warnings (logger ``retriever``, e.g. a damaged FAISS file rebuilt) go to
    stderr as ``warning: ...``."""
    logger = logging.getLogger("retriever")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("warning: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
        logger.propagate = False


def load_logged(config):
    from .embed.factory import load_embedder

    t = time.perf_counter()
    click.echo(f"loading {config.model} ...", err=True)
    embedder = load_embedder(config)
    model = getattr(embedder, "model", None)
    where = ""
    if hasattr(model, "dtype") and hasattr(model, "device"):
        where = f" ({model.device.type}, {str(model.dtype).removeprefix('torch.')})"
    click.echo(f"loaded in {time.perf_counter() - t:.1f}s{where}", err=True)
    return embedder


def show_results(out: dict, as_json: bool) -> None:
    """Print a search's results (``Result.as_dict()`` rows, local or from a server)."""
    if as_json:
        click.echo(json.dumps(out))
        return
    if not out["results"]:
        click.echo("no results")
    for i, r in enumerate(out["results"], start=1):
        parts = " ".join(f"{name}={v:.4f}" for name, v in r["scores"].items())
        page = f" p.{r['page']}" if r.get("page") else ""
        click.echo(f"{i}. {safe(r['citation'])}{page} [chunk {r['ordinal']}] {parts}")
        if r.get("heading"):
            click.echo(f"   § {safe(r['heading'])}")
        snippet = " ".join(r["text"].split())
        click.echo(f"   {safe(snippet[:300])}{'...' if len(snippet) > 300 else ''}")
    click.echo(f"({out['mode']}, {out['ms']:.0f} ms including query embedding)", err=True)


def show_report(r, index_dir: Path, as_json: bool) -> None:
    """Print what an index run did (:class:`~retriever.index.indexer.SyncReport`)."""
    if as_json:
        click.echo(json.dumps({"index": str(index_dir), **r.as_dict()}))
        return
    click.echo(f"index {index_dir}")
    if r.faiss_factory:
        old, new = r.faiss_factory
        click.echo(f"FAISS factory {old} -> {new}: its file was rebuilt from SQLite")
    click.echo(
        f"added {r.added}, updated {r.updated}, moved {r.moved}, removed {r.removed}, "
        f"unchanged {r.unchanged}, skipped {len(r.skipped)}"
    )
    click.echo(
        f"{r.chunks} chunks embedded in {r.seconds:.1f}s ({r.chunks_per_second:.1f} "
        f"chunks/s; model {r.embed_seconds:.1f}s)"
        if r.model_loaded
        else f"nothing to embed; done in {r.seconds:.1f}s without loading the model"
    )
    if r.sparse_chunks:
        click.echo(f"sparse words computed for {r.sparse_chunks} chunks")
    for p, reason in r.skipped:
        click.echo(f"  skipped {safe(p)}: {safe(reason)}")


def show_info(index_dir, data: dict) -> None:
    """``tpr info``'s human output (``--json`` prints ``data`` as it is)."""
    e, counts, writer = data.get("embedder", {}), data["files"], data["writer_pid"]
    click.echo(f"index       {safe(index_dir)}\nfolder      {safe(data.get('root'))}")
    click.echo(
        f"model       {e.get('model')}  prompt={e.get('template') or e.get('prompt')} "
        f"query_prompt={e.get('query_template') or e.get('query_prompt') or 'same'} "
        f"tp={e.get('tp')} "
        f"[{e.get('tp_start')}, {e.get('tp_exit')}) layer={e.get('output_layer')} "
        f"pooling={e.get('pooling')}" + (f" htp={e['htp']}" if e.get("htp") else "")
    )
    click.echo(f"fingerprint {data.get('fingerprint')}")
    method, dense = data["hybrid"]
    click.echo(f"hybrid      {method} fusion, dense weight {dense} (BM25 1.0)")
    click.echo(
        f"files       {counts.get('indexed', 0)} indexed, {counts.get('skipped', 0)} skipped, "
        f"{counts.get('added', 0)} texts added from code"
    )
    engine = data["engine_description"]
    click.echo(
        f"chunks      {data['chunks']}  (dim {data.get('dimension')}, {engine}, "
        f"{data['faiss_state']})"
    )
    if writer is not None:
        click.echo(f"writer      PID {writer} is updating this index now (an index run)")
    if "sparse_scale" in data:
        click.echo(f"sparse      {data['sparse_chunks']} chunks with LLM sparse words")
    click.echo(f"created     {data.get('created')}  updated {data.get('updated')}")


def show_answer(pieces, sources, timings: dict, as_json: bool) -> None:
    """Stream an answer to the terminal as it comes, then its sources (``[n] path:lines §
    heading``) and any ``[n]`` it cited that names no source; ``--json`` prints it all at the
    end."""
    from .answer import unknown_citations

    t = time.perf_counter()
    parts = []
    for piece in pieces:
        parts.append(piece)
        if not as_json:
            click.echo(safe(piece), nl=False)
    answer = "".join(parts)
    timings = {**timings, "llm_ms": round((time.perf_counter() - t) * 1000, 1)}
    unknown = unknown_citations(answer, sources)
    if as_json:
        click.echo(json.dumps({"answer": answer, "sources": [s.as_dict() for s in sources],
                               "unknown_citations": unknown, "timings": timings}))  # fmt: skip
        return
    click.echo("\n\nSources:")
    for s in sources:
        heading = f" § {s.heading}" if s.heading else ""
        click.echo(safe(f"[{s.n}] {s.citation}{heading}"))
    if unknown:
        shown = ", ".join(f"[{n}]" for n in unknown)
        click.echo(f"warning: the answer cites {shown}, which is not among the sources", err=True)
    click.echo(
        f"(retrieval {timings['retrieve_ms']:.0f} ms, prompt {timings['prompt_ms']:.0f} ms, "
        f"LLM {timings['llm_ms'] / 1000:.1f} s)",
        err=True,
    )
