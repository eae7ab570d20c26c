"""``tpr``: a thin click CLI over the library. Each command opens, makes one library call,
prints; library errors become one-line messages (:class:`~retriever.options.Group`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from .embed.models import catalog
from .evaluation.commands import eval_group, tune
from .options import (
    Group,
    config_of,
    embedder_options,
    index_config_of,
    index_option,
    ray_options_of,
    request_of,
    resolve_index_dir,
    scale_options,
    search_options,
)
from .output import load_logged, safe, show_answer, show_info, show_report, show_results


@click.group(cls=Group)
@click.version_option(package_name="tp-retriever")
def cli():
    """tp-retriever: local retrieval with Token Prepending LLM embeddings."""


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def models(as_json):
    """List the named models and their TP defaults."""
    rows = catalog()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        mark = " (default)" if r["default"] else ""
        click.echo(f"{r['name']}{mark}: {r['description']}")
        click.echo(
            f"  prompt={r['prompt']} tp=[{r['tp_start']}, {r['tp_exit']}) "
            f"output_layer={r['output_layer']}  install: {r['install']}"
        )
        click.echo(
            f"  defaults: {r['tuned_on'] or 'untuned guesses; run tpr tune -m ' + r['name']}"
        )
        if r["retrieval"]:
            preset = " ".join(f"{k}={v}" for k, v in r["retrieval"].items())
            click.echo(f"  tpr index uses: {preset}")
    click.echo(
        "minilm (baseline): all-MiniLM-L6-v2 via sentence-transformers, no TP  "
        "install: pip install 'tp-retriever[baselines]'"
    )
    click.echo("Any local Hugging Face causal LM directory or .gguf file works too (--model PATH).")


@cli.command()
@click.argument("texts", nargs=-1, required=True)
@embedder_options
@click.option("--json", "as_json", is_flag=True, help="Full vectors as JSON.")
@click.option("--first", default=8, show_default=True, help="Values to show per vector.")
def embed(texts, as_json, first, **kw):
    """Embed TEXTS and show dimension, norm and the first values."""
    import numpy as np

    embedder = load_logged(config_of(kw))
    vectors = embedder.encode(list(texts))
    if as_json:
        rows = [{"text": t, "vector": v.tolist()} for t, v in zip(texts, vectors, strict=True)]
        info = {"fingerprint": embedder.fingerprint, "config": embedder.describe()["config"]}
        click.echo(json.dumps({**info, "embeddings": rows}))
        return
    click.echo(f"fingerprint {embedder.fingerprint[:16]}  dimension {embedder.dimension}")
    for t, v in zip(texts, vectors, strict=True):
        head = " ".join(f"{x:+.4f}" for x in v[:first])
        click.echo(f"{t[:60]!r}: norm {np.linalg.norm(v):.4f}  [{head} ...]")


@cli.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@index_option
@embedder_options(index=True)
@click.option("--include", multiple=True, help="Only files matching this glob (repeatable).")
@click.option("--exclude", multiple=True, help="Leave out files matching this glob (repeatable).")
@click.option(
    "--chunk-size",
    type=click.IntRange(8, 100_000),
    default=None,
    help="Tokens per chunk (default: the index's own, else 256). Fixed once an index exists: "
    "--rebuild to change it.",
)
@click.option(
    "--overlap",
    type=click.IntRange(0, 50_000),
    default=None,
    help="Overlap in tokens (default: the index's own, else 32). Fixed like --chunk-size.",
)
@click.option("--max-size", type=int, default=20, show_default=True, help="Skip files over N MB.")
@click.option(
    "--faiss",
    "factory",
    default=None,
    help="FAISS index_factory string (e.g. Flat, IVF4096,Flat, HNSW32; default: the index's "
    "own, else auto: exact Flat below 50,000 chunks, IVF with ~4 sqrt(n) lists from there). "
    "A new value on an existing index rebuilds its FAISS file from SQLite.",
)
@click.option(
    "--sparse",
    is_flag=True,
    help="Also store the LLM's sparse words per chunk (for --mode sparse); derived from the "
    "stored vectors, so adding them to an existing index re-embeds nothing.",
)
@click.option("--rebuild", is_flag=True, help="Drop everything and re-embed with these settings.")
@scale_options
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
def index(
    path,
    index_dir,
    include,
    exclude,
    chunk_size,
    overlap,
    max_size,
    factory,
    sparse,
    rebuild,
    as_json,
    **kw,
):
    """Index (or re-sync) the folder PATH: only new and changed files are embedded.

    Embedder settings not given here are the index's own when it exists, else the model's
    retrieval preset (`tpr models`; measured on SciFact train), else the defaults shown.
    """
    from .embed.factory import LazyEmbedder
    from .index.indexer import Indexer, IndexOptions

    index_dir = resolve_index_dir(index_dir)
    # Loaded only if something needs embedding, and only after the writer lock is taken.
    embedder = LazyEmbedder(index_config_of(kw, index_dir, rebuild), load_logged)
    opts = IndexOptions(
        chunk_size=chunk_size,
        overlap=overlap,
        include=include,
        exclude=exclude,
        max_bytes=max_size * 1024 * 1024,
        faiss_factory=factory,
        sparse=sparse,
        engine=kw.pop("milvus"),  # --milvus URI: the engine the index is searched in
        ray=ray_options_of(kw),
    )
    report = Indexer(embedder, opts).sync(path, index_dir, rebuild=rebuild, progress=not as_json)
    show_report(report, index_dir, as_json)


@cli.command()
@index_option
@click.option("--json", "as_json", is_flag=True)
def info(index_dir, as_json):
    """Show an index: folder, embedder, fingerprint, default hybrid, counts, and the state of
    index.db and the FAISS file (both read in full and checked)."""
    from .index import manage

    index_dir = resolve_index_dir(index_dir)
    data = manage.info(index_dir)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    show_info(index_dir, data)


@cli.command(name="list")
@click.option("--json", "as_json", is_flag=True)
def list_(as_json):
    """Every named index: model, files, chunks, size on disk, last update."""
    from .index import manage

    rows = manage.list_indexes()
    if as_json or not rows:
        click.echo(json.dumps(rows, indent=2) if as_json else "no index yet: see `tpr index`")
        return
    for r in rows:
        state = f"damaged: {r['error']}" if r.get("error") else (
            f"{r['model']}, {r['files']} files, {r['chunks']} chunks, "
            f"{r['bytes'] / 2**20:.1f} MiB, updated {r['updated']}"
        )  # fmt: skip
        click.echo(safe(f"{r['name']}  ({state})"))


@cli.command()
@index_option
@click.option("--skipped", is_flag=True, help="Only skipped files, with reasons.")
@click.option("--json", "as_json", is_flag=True)
def files(index_dir, skipped, as_json):
    """List the files of an index (skipped ones with their reason)."""
    from .index import manage

    rows = manage.files(resolve_index_dir(index_dir), skipped)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no file was skipped" if skipped else "the index holds no file")
    for r in rows:
        extra = f"skipped: {r['reason']}" if r["status"] == "skipped" else f"{r['chunks']} chunks"
        click.echo(safe(f"{r['path']}  ({extra})"))


@cli.command()
@click.argument("path")
@index_option
def remove(path, index_dir):
    """Remove PATH (relative to the indexed folder) from the index.

    The file is not excluded: a later `tpr index` picks it up again unless you pass --exclude.
    """
    from .index import manage

    chunks = manage.remove(resolve_index_dir(index_dir), path)
    click.echo(f"removed {safe(path)} ({chunks} chunks)")


@cli.command()
@index_option
def repair(index_dir):
    """Check index.db and the FAISS file (checksum, ids, a sample of vectors against SQLite),
    and rebuild the FAISS file from SQLite if anything is off."""
    from .index import manage

    r = manage.repair(resolve_index_dir(index_dir))
    if r.problem is None:
        click.echo(
            f"index.db is intact and the FAISS file is current ({r.vectors} vectors, checksum "
            "and a sample of vectors verified); nothing to do"
        )
    else:
        click.echo(
            f"FAISS file was {r.problem}: rebuilt from SQLite ({r.vectors} vectors, nothing "
            "re-embedded)"
        )


@cli.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("data/python-docs"),
    show_default=True,
    help="Where to write the demo documents.",
)
@index_option
@embedder_options(index=True)
def demo(out, index_dir, **kw):
    """Build data/python-docs from CPython's own docs and index it with the default model."""
    from .demo import write_python_docs
    from .embed.factory import LazyEmbedder
    from .index.indexer import Indexer

    n = write_python_docs(out)
    click.echo(f"wrote {n} Python language-reference topics to {out}")
    index_dir = resolve_index_dir(index_dir or "python-docs")
    # Loaded only if something needs embedding: a second run loads nothing.
    embedder = LazyEmbedder(index_config_of(kw, index_dir), load_logged)
    r = Indexer(embedder).sync(out, index_dir, progress=True)
    click.echo(
        f"indexed into {index_dir}: added {r.added}, updated {r.updated}, unchanged "
        f"{r.unchanged}; {r.chunks} chunks in {r.seconds:.0f}s"
    )
    name = "python-docs" if index_dir == resolve_index_dir("python-docs") else str(index_dir)
    click.echo(f'next: tpr search "how do I split a string on whitespace" --index {name}')
    click.echo(f"      streamlit run ui/app.py -- --index {name}")


@cli.command()
@click.argument("query")
@index_option
@search_options
@click.option(
    "--server", default=None, help="Ask a running `tpr serve` (e.g. http://127.0.0.1:8765)."
)
@click.option("--json", "as_json", is_flag=True)
def search(query, index_dir, **kw):
    """Search an index. The embedder is loaded with the settings the index was built with."""
    from .search.searcher import Searcher

    request = request_of(query, kw)
    if kw["server"]:  # a running `tpr serve`: no model load here
        from .client import remote_search

        payload = {"index": index_dir, **request.as_dict()}
        return show_results(remote_search(kw["server"], payload), kw["as_json"])
    searcher = Searcher.open(
        resolve_index_dir(index_dir), load=load_logged, need_embedder=request.needs_embedder
    )
    t = time.perf_counter()
    results = searcher.run(request)
    ms = round((time.perf_counter() - t) * 1000, 1)
    out = {"query": query, "mode": request.mode, "ms": ms,
           "results": [r.as_dict() for r in results]}  # fmt: skip
    show_results(out, kw["as_json"])


@cli.command()
@click.argument("question")
@index_option
@search_options
@click.option("--llm", "llm_url", default=None, metavar="URL|DIR|FILE",
              help="An OpenAI-compatible endpoint ending in /v1 (Ollama: "
              "http://127.0.0.1:11434/v1; llama.cpp's server: http://127.0.0.1:8080/v1), a local "
              "model directory, or a .gguf file (needs llama-cpp-python). Default: the "
              "index's own LLM (small: poor answers). API key: $TPR_LLM_API_KEY.")  # fmt: skip
@click.option("--llm-model", default="default", show_default=True,
              help="The model name the endpoint serves (e.g. llama3.2).")  # fmt: skip
@click.option("--llm-timeout", type=click.FloatRange(1, 3600), default=120.0, show_default=True)
@click.option("--llm-max-tokens", type=click.IntRange(1, 32768), default=512, show_default=True,
              help="The longest answer a local model writes.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="The answer, its sources and timings.")
def ask(question, index_dir, llm_url, llm_model, llm_timeout, llm_max_tokens, as_json, **kw):
    """Answer QUESTION from the index, citing its sources as [n] (path:lines below)."""
    from .answer import messages_for, sources_of
    from .generate import llm_for
    from .search.searcher import Searcher

    request = request_of(question, kw)
    need = request.needs_embedder or llm_url is None  # the index's own LLM answers
    searcher = Searcher.open(resolve_index_dir(index_dir), load=load_logged, need_embedder=need)
    endpoint, warning = llm_for(llm_url, searcher, llm_model, llm_timeout, llm_max_tokens)
    if warning:
        click.echo(f"note: {warning}", err=True)
    t = time.perf_counter()
    results = searcher.run(request)
    retrieved = time.perf_counter()
    if not results:
        raise click.ClickException(
            "no source in the index matches this question, so there is nothing to answer from; "
            "try other words or fewer filters"
        )
    sources = sources_of(results)
    messages = messages_for(question, sources)
    timings = {"retrieve_ms": round((retrieved - t) * 1000, 1),
               "prompt_ms": round((time.perf_counter() - retrieved) * 1000, 1)}  # fmt: skip
    show_answer(endpoint.stream(messages), sources, timings, as_json)


@cli.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@index_option
@click.option("--interval", type=click.FloatRange(0.1, 3600), default=2.0, show_default=True)
@click.option("--debounce", type=click.FloatRange(0, 600), default=1.0, show_default=True)
def watch(path, index_dir, interval, debounce):
    """Keep the index of PATH in sync while files change (polling; Ctrl-C stops).

    Each sync is a `tpr index` run with the index's own settings (or the model's preset for a
    new index): same lock, same crash safety, only changed files embedded."""
    from .embed.factory import LazyEmbedder
    from .index.indexer import Indexer
    from .index.settings import index_settings
    from .index.watch import watch as watch_folder

    index_dir = resolve_index_dir(index_dir)
    indexer = Indexer(LazyEmbedder(index_settings(index_dir, {}), load_logged))
    click.echo(f"watching {path} for index {index_dir} (Ctrl-C stops)", err=True)
    try:
        watch_folder(path, index_dir, indexer, interval, debounce,
                     on_sync=lambda r: show_report(r, index_dir, False),
                     on_wait=lambda msg: click.echo(msg, err=True))  # fmt: skip
    except KeyboardInterrupt:
        click.echo("stopped", err=True)


@cli.command()
@click.option("--index", "indexes", multiple=True, help="Serve this index (repeatable; "
              "default: every named index).")  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True, help="0.0.0.0 exposes it.")
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True)
@click.option("--max-concurrency", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option(
    "--llm",
    "llm_url",
    default=None,
    metavar="URL",
    help="The OpenAI-compatible endpoint POST /ask answers with (see tpr ask).",
)
@click.option("--llm-model", default="default", show_default=True)  # fmt: skip
def serve(indexes, host, port, max_concurrency, llm_url, llm_model):
    """Serve search over HTTP (POST /search, POST /ask, GET /indexes, /health, /docs); models
    load once."""
    import uvicorn

    from .answer import Endpoint
    from .server import create_app, served_indexes

    llm = Endpoint(llm_url, llm_model) if llm_url else None
    chosen = served_indexes(indexes)
    click.echo(f"loading {len(chosen)} index(es): {', '.join(sorted(chosen))} ...", err=True)
    app = create_app(chosen, max_concurrency=max_concurrency, load=load_logged, preload=True,
                     llm=llm)  # fmt: skip
    click.echo(f"serving on http://{host}:{port} (API docs at /docs)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


cli.add_command(eval_group)
cli.add_command(tune)
