"""``tpr eval sts``, ``tpr eval beir`` and ``tpr tune``: evaluation commands over the library
(:mod:`.sts`, :mod:`.beir_eval`, :mod:`.tune`), registered on the ``tpr`` group by
:mod:`retriever.cli`. Every system is measured in the same run as its baselines.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import click

from ..options import (
    Group,
    config_of,
    data_option,
    embedder_options,
)
from ..output import (
    load_logged,
)
from .systems import encode_systems, system_specs


@click.group(name="eval", cls=Group)
def eval_group():
    """Evaluations."""


@eval_group.command("sts")
@data_option
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
    from . import sts

    config = config_of(kw)
    specs = system_specs(models or f"{config.model}:tp,{config.model}:vanilla")  # fail fast
    data = data or sts.default_data_dir()
    names = tasks.split(",") if tasks else (sts.TEST_TASKS if split == "test" else sts.DEV_TASKS)
    loaded = [sts.load_task(n, data, split) for n in names]
    t = time.perf_counter()
    table = sts.evaluate(
        loaded, lambda sentences: encode_systems(config, specs, sentences, load_logged)
    )
    if as_json:
        click.echo(json.dumps({"split": split, "systems": specs, "table": table}))
        return
    click.echo(sts.format_table(table, sts.PUBLISHED if split == "test" else None))
    click.echo(f"{split} split, {time.perf_counter() - t:.0f}s", err=True)


@click.command()
@data_option
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
@click.option("--index", "index_name", default=None, help="Tune this index's search instead.")
@click.option(
    "--queries",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="With --index: JSON lines of {'query': ..., 'file': 'path' or 'path:line'}.",
)
@click.option("--apply", is_flag=True, help="With --queries: make the winner the index's default.")
def tune(data, ranges, layers, prompts, limit, out, index_name, queries, apply, **kw):
    """Choose tp_start, tp_exit, output_layer (and prompt) on STS-B dev; or, with --index and
    --queries, an index's search setting on your own questions."""
    if index_name or queries:
        return _tune_index(index_name, queries, apply, out)
    from . import sts
    from .tune import default_ranges
    from .tune import tune as run_tune

    data = data or sts.default_data_dir()
    task = sts.load_task("STSB", data, "dev")
    if limit:
        task = sts.STSTask(task.name, task.left[:limit], task.right[:limit], task.gold[:limit])
    base = config_of(kw)
    rows = []
    for prompt in prompts.split(","):
        embedder = load_logged(replace(base, prompt=prompt))
        n = embedder.backbone.num_layers
        rng = parse_ranges(ranges) if ranges else default_ranges(n)
        lay = parse_span(layers) if layers else list(range(1, n + 1))
        click.echo(f"{prompt}: {len(rng)} TP ranges x {len(lay)} output layers", err=True)
        rows += run_tune(embedder, [task], rng, lay, prompt, show_progress_bar=True).rows
    from .tune import TuneResult

    result = TuneResult(rows)
    click.echo(result.markdown(top=15))
    p, rng, layer, score = result.best
    vp, _, vlayer, vscore = result.best_vanilla
    click.echo(
        f"\nchosen: prompt={p} tp=[{rng[0]}, {rng[1]}) output_layer={layer} "
        f"(STS-B dev {score:.2f}; best vanilla {vscore:.2f} at {vp} L{vlayer})"
    )
    if out:
        out.write_text(json.dumps(result.as_json(base.model, len(task.gold)), indent=2))


def _tune_index(index_name, queries, apply_it: bool, out) -> None:
    from ..search.searcher import Searcher
    from . import questions

    if not (index_name and queries):
        raise click.UsageError("tuning an index needs both --index NAME and --queries FILE")
    asked = questions.load_questions(queries)
    searcher = Searcher.open(index_name)
    try:
        tuning = questions.tune(searcher, asked)
    finally:
        searcher.close()
    click.echo("| setting | hits@1 | hits@5 | MRR@10 |\n|---|---:|---:|---:|")
    for r in tuning.rows():
        mark = " (current default)" if r["default"] else ""
        click.echo(
            f"| {r['setting']}{mark} | {r['hits@1']:.2f} | {r['hits@5']:.2f} | {r['mrr@10']:.3f} |"
        )
    mean, lo, hi = tuning.gain()
    best = tuning.chosen()
    click.echo(
        f"\nchosen on all {len(asked)} questions: {best}. Leave-one-out MRR "
        f"{tuning.leave_one_out().mean():.3f} against the current default's "
        f"{tuning.rr[tuning.default].mean():.3f}: gain {mean:+.3f} (95% CI {lo:+.3f} to {hi:+.3f})"
    )
    if out:
        data = {"rows": tuning.rows(), "chosen": best, "gain": [mean, lo, hi]}
        out.write_text(json.dumps(data, indent=2))
    click.echo(questions.verdict(tuning))
    if apply_it:
        value = questions.apply(searcher.index_dir, tuning)
        click.echo(f"recorded as the index's search default: {value['fusion']} {value['weights']}")


def parse_span(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def parse_ranges(text: str) -> list[tuple[int, int]]:
    try:
        return [tuple(int(x) for x in p.split("-")) for p in text.split(",")]  # type: ignore[misc]
    except ValueError:
        raise click.BadParameter("ranges look like '1-3,1-5' (start-exit)") from None


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
    from ..embed.gguf import cache_dir
    from . import beir
    from .beir_eval import evaluate
    from .sts import default_data_dir

    config = config_of(kw)
    systems = system_specs(models or f"{config.model}:tp,minilm")  # fail fast
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
    click.echo(beir.format_table(report.rows, beir.PUBLISHED_NDCG.get(data.name.lower())))
    for name, info in report.weights.items():
        for method, pick in info.items():
            what = f"depth {pick['depth']}" if "depth" in pick else f"weight {pick['weight']}"
            click.echo(f"{method} {what} for {name} (chosen on {tune_split})")
