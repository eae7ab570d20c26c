"""``python -m retriever``: the ``tpr`` CLI without the console script (e.g. from a source tree)."""

from .cli import cli

cli(prog_name="tpr")
