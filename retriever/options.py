"""The click pieces every ``tpr`` command shares: the error-to-message group, the embedder and
index options, and the checks on option values. What the commands print lives in
:mod:`retriever.output`; the commands in :mod:`retriever.cli` and
:mod:`retriever.evaluation.commands`; the library does the work.
"""

from __future__ import annotations

import errno
import json
import math
import re
import sqlite3
from pathlib import Path

import click

from .embed.models import DEFAULT_MODEL
from .embed.prompts import METHODS
from .errors import TPRError
from .output import log_to_stderr

# OS errors that reach the CLI from writing an index (a full disk, quota, read-only file system)
_INDEX_OS_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


class Group(click.Group):
    """Turns the library's exceptions into ``Error: ...`` and exit code 1, no traceback.

    A ``sqlite3`` error or a full disk that reaches here is named by
    :func:`~retriever.index.store.db_error`: damage (a garbage page read late, after the index
    opened) with the way out, a full disk or a read-only file system as what it is, never as
    damage.
    """

    def invoke(self, ctx):
        log_to_stderr()
        try:
            return super().invoke(ctx)
        except TPRError as e:
            raise click.ClickException(str(e)) from e
        except (sqlite3.Error, OSError) as e:
            if isinstance(e, OSError) and e.errno not in _INDEX_OS_ERRORS:
                raise
            from .index.store import db_error

            where = ctx.meta.get("tpr.index", Path("the index"))
            raise click.ClickException(str(db_error(where, e))) from e


# What a new index really gets for the settings its model's retrieval preset sets (`tpr index
# --help` must not show EmbedderConfig's paper defaults as if they applied).
_INDEX_DEFAULT = "default: the index's own, else the model's retrieval preset (`tpr models`)"


def embedder_options(f=None, *, index: bool = False):
    """The embedder settings shared by every command that embeds.

    Args:
        index: for commands that build or sync an index: the prompt, pooling and TP settings
            then say where a new index's values come from instead of showing the paper's
            defaults (which apply only to a model without a preset).
    """
    if f is None:
        return lambda g: embedder_options(g, index=index)

    def preset(text: str, paper: str) -> dict:
        if not index:
            return {"show_default": True, "help": text}
        return {"show_default": False, "help": f"{text} ({_INDEX_DEFAULT}, else {paper})."}

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
            type=click.Choice(list(METHODS), case_sensitive=False),
            **preset("Prompt method", "prompteol"),
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
            **preset("Token Prepending, or the vanilla prompt", "on"),
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
            **preset("How the vector is read from the hidden states", "last"),
        ),
        click.option(
            "--htp",
            type=int,
            is_flag=False,
            flag_value=16,
            default=0,
            help="Hierarchical TP: a <PST> per sentence block besides the global one (up to N, "
            "16 when given bare), with HTP's own prompts, layers and pooling unless given.",
        ),
        click.option(
            "--echo",
            is_flag=True,
            default=False,
            help="Echo embeddings: the text twice, mean pooling over the second copy (its own "
            "prompts, no TP, unless given).",
        ),
        click.option(
            "--tp-preset",
            is_flag=True,
            default=False,
            help="The default model's TP preset from before late chunking: each chunk alone "
            "under the PromptReps pair, TP over [2, 8), last+mean pooling (needed for --sparse).",
        ),
        click.option(
            "--situated",
            type=int,
            is_flag=False,
            flag_value=1024,
            default=0,
            help="Situated chunks: each file's chunks embedded inside the file, one pass per "
            "window of up to N tokens (1024 when given bare), echo's prompts unless given.",
        ),
        click.option(
            "--late",
            type=int,
            is_flag=False,
            flag_value=1024,
            default=0,
            help="Late chunking: each window of up to N tokens of a file (1024 when given bare) "
            "read once, each chunk pooled over its own span at an early layer; half the "
            "tokens of --situated.",
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
    "htp",
    "situated",
    "late",
    "max_length",
    "batch_size",
    "device",
    "dtype",
)


def _split_given(kw: dict) -> tuple[dict, dict]:
    """(options the user gave, options left at their defaults), strategies applied."""
    from click.core import ParameterSource

    from .embed.config import with_strategy

    ctx = click.get_current_context()
    given, defaults = {}, {}
    for k in CONFIG_KEYS:
        source = ctx.get_parameter_source(k)
        (defaults if source in (None, ParameterSource.DEFAULT) else given)[k] = kw.pop(k)
    flags = [name for flag, name in (("echo", "echo"), ("tp_preset", "tp")) if kw.pop(flag, False)]
    valued = [name for name in ("htp", "situated", "late") if given.get(name)]
    if len(flags + valued) > 1:
        raise click.UsageError(
            "--htp, --echo, --situated, --late and --tp-preset are strategies; choose one"
        )
    strategy = (flags + valued or [None])[0]
    for name in ("situated", "late"):  # a window size, stored as ``window``
        window = given.pop(name, None)
        defaults.pop(name, None)
        if window:
            given["window"] = window
    return with_strategy(given, strategy), defaults


def config_of(kw: dict):
    """The ``EmbedderConfig`` the options say (the paper's defaults where none was given)."""
    from .embed.config import EmbedderConfig

    given, defaults = _split_given(kw)
    return EmbedderConfig(**{**defaults, **given})


def index_config_of(kw: dict, index_dir: Path, rebuild: bool = False):
    """The settings to build or re-sync ``index_dir`` with: the options the user gave (not
    those left at their defaults), then :func:`~retriever.index.settings.index_settings`."""
    from .index.settings import index_settings

    given, defaults = _split_given(kw)
    return index_settings(index_dir, given, defaults, rebuild)


def parse_meta(pairs) -> dict:
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


def parse_where(value: str | None) -> dict | None:
    """``--where JSON``: a LangChain-style filter expression, checked now (not mid-search)."""
    if value is None:
        return None
    from .search.filters import where_sql

    try:
        expr = json.loads(value)
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"not JSON ({e})", param_hint="--where") from None
    if not isinstance(expr, dict):
        raise click.BadParameter("give a JSON object, e.g. '{\"source\": \"a.md\"}'",
                                 param_hint="--where")  # fmt: skip
    try:
        where_sql(expr)
    except TPRError as e:
        raise click.BadParameter(str(e), param_hint="--where") from None
    return expr


def check_suffix(value: str) -> str:
    """A file type option: letters, digits and ``+-_.`` only, e.g. ``.md`` or ``tar.gz``."""

    if not re.fullmatch(r"\.?[\w+-]+(\.[\w+-]+)*", value):
        raise click.BadParameter(
            f"{value!r} is not a file type; write it like .md", param_hint="--type"
        )
    return value


def check_days(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and 0 < value <= 100_000):
        raise click.BadParameter(
            f"{value} is not a number of days in (0, 100000]", param_hint="--since-days"
        )
    return value


def data_option(f):
    return click.option(
        "--data",
        type=click.Path(path_type=Path),
        default=None,
        help="Data folder (default: $TPR_DATA_DIR or ../shared/data).",
    )(f)


def index_option(f):
    return click.option(
        "--index",
        "index_dir",
        default=None,
        help="Index directory, or a bare NAME for ~/.local/share/tp-retriever/indexes/NAME "
        "(default: $TPR_INDEX, else the index named 'default').",
    )(f)


def resolve_index_dir(index_dir: str | None) -> Path:
    from .index.store import resolve_index

    path = resolve_index(index_dir)
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta["tpr.index"] = path  # for naming a damaged index.db in the error
    return path


def scale_options(f):
    """``tpr index``'s engines past one process: Milvus for storage and search, Ray for
    embedding (README "Scaling out")."""
    options = [
        click.option(
            "--milvus",
            default=None,
            metavar="URI",
            help="Search this index in Milvus: a Milvus Lite file (x.db), 'local' (one in the "
            "index directory) or a server (http://host:19530; token from $TPR_MILVUS_TOKEN).",
        ),
        click.option(
            "--ray",
            "ray_address",
            is_flag=False,
            flag_value="local",
            default=None,
            metavar="[ADDRESS]",
            help="Embed as a Ray Data job: on the cluster at ADDRESS (e.g. ray://host:10001 or "
            "auto), or a local Ray with this machine's cores when given bare.",
        ),
        click.option(
            "--ray-actors", type=click.IntRange(1), default=None, help="Embedding actors (1)."
        ),
        click.option("--ray-gpus", type=float, default=0.0, help="GPUs per embedding actor."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def ray_options_of(kw: dict):
    """A ``RayOptions`` from the popped --ray options, or None when --ray was not given."""
    address, actors, gpus = kw.pop("ray_address"), kw.pop("ray_actors"), kw.pop("ray_gpus")
    if address is None:
        return None
    from .embed.ray_job import RayOptions

    return RayOptions(address=None if address == "local" else address, actors=actors, gpus=gpus)


def search_options(f):
    """Every option of a search (``tpr search``, ``tpr ask``): each a field of
    :class:`~retriever.search.request.SearchRequest`, built by :func:`request_of`."""
    from .search.fusion import FUSIONS
    from .search.request import MODES

    options = [
        click.option(
            "-k",
            type=click.IntRange(1, 10_000),
            default=5,
            show_default=True,
            help="Results to show.",
        ),
        click.option(
            "--mode",
            type=click.Choice(MODES),
            default="hybrid",
            show_default=True,
            help="sparse: the LLM's word weights (an index built with --sparse).",
        ),
        click.option("--path", "path_glob", default=None, help="Only paths matching this glob."),
        click.option(
            "--heading", default=None, help="Only chunks under headings matching this glob."
        ),
        click.option(
            "--type",
            "suffixes",
            multiple=True,
            callback=lambda ctx, param, values: [check_suffix(v) for v in values],
            help="Only this file type, e.g. .md (repeatable).",
        ),
        click.option(
            "--since-days",
            type=float,
            default=None,
            callback=lambda ctx, param, value: check_days(value),
            help="Only files modified in the last N days.",
        ),
        click.option(
            "--meta",
            multiple=True,
            metavar="KEY=VALUE",
            help="Only chunks whose stored metadata has KEY equal to VALUE (JSON or text; "
            "repeatable).",
        ),
        click.option(
            "--fusion",
            type=click.Choice(FUSIONS),
            default=None,
            help="Hybrid: reciprocal rank fusion, or a sum of min-max normalised scores "
            "(default: the model's measured default, see `tpr info`).",
        ),
        click.option(
            "--sparse-weight",
            type=float,
            default=0.0,
            show_default=True,
            help="Hybrid: add the sparse words as a third side with this weight (index built with "
            "--sparse; dense and BM25 keep the model's default weights).",
        ),
        click.option(
            "--where",
            default=None,
            metavar="JSON",
            callback=lambda ctx, param, value: parse_where(value),
            help='LangChain-style filter: \'{"source": "a.md"}\', '
            '\'{"lang": {"$in": ["en", "de"]}}\', '
            "on source, suffix, modified (epoch seconds), heading, page or stored metadata; "
            "$eq $ne $in $nin $gt $gte $lt $lte $and $or.",
        ),
        click.option(
            "--dense-weight",
            type=click.FloatRange(0, 100),
            default=None,
            help="Hybrid: the dense side's weight (BM25 1.0; default: the index's measured one, "
            "see `tpr info`).",
        ),
        click.option(
            "--fetch-k",
            type=click.IntRange(1, 10_000),
            default=50,
            show_default=True,
            help="Candidates taken from each side before fusion or MMR.",
        ),
        click.option(
            "--mmr", is_flag=True, help="Diversify: maximal marginal relevance re-ranking."
        ),
        click.option("--mmr-lambda", type=click.FloatRange(0, 1), default=0.5, show_default=True),
        click.option(
            "--min-score", type=float, default=None, help="Drop results below this score."
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def request_of(query: str, kw: dict):
    """The :class:`~retriever.search.request.SearchRequest` that :func:`search_options` say
    (the options are popped from ``kw``)."""
    from .search.filters import as_filter
    from .search.request import SearchRequest

    where = {"path_glob": kw.pop("path_glob"), "heading": kw.pop("heading"),
             "suffixes": list(kw.pop("suffixes")), "since_days": kw.pop("since_days"),
             "metadata": parse_meta(kw.pop("meta")) or None, "where": kw.pop("where")}  # fmt: skip
    dense = kw.pop("dense_weight")
    return SearchRequest(
        query, k=kw.pop("k"), mode=kw.pop("mode"),
        filter=as_filter({k: v for k, v in where.items() if v}),
        fusion=kw.pop("fusion"), sparse_weight=kw.pop("sparse_weight"), mmr=kw.pop("mmr"),
        fetch_k=kw.pop("fetch_k"), weights=None if dense is None else {"dense": dense, "bm25": 1.0},
        lambda_mult=kw.pop("mmr_lambda"), min_score=kw.pop("min_score"),
    )  # fmt: skip
