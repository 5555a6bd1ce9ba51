"""Small helpers shared by the CLI modules.

The conventions: a command's result (its tables, or ``--json``) goes to stdout; progress, warnings and banners go
to stderr (:data:`console`), so ``overtonlite models list | grep NAME`` and ``... --json | jq`` work.
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from typing import Any

from rich.console import Console

console = Console(stderr=True)
"""Progress, warnings, banners and notes: stderr."""


@lru_cache(maxsize=1)
def _stdout_console(file_id: int) -> Console:
    probe = Console()
    if probe.is_terminal:
        return probe
    # piped or redirected: keep tables at their natural width (rich would squeeze them to 80 columns)
    return Console(width=max(probe.width, 160), no_color=True, highlight=False)


def out_console() -> Console:
    """The console of a command's result: stdout (read at call time, so test runners that swap stdout see it)."""
    return _stdout_console(id(sys.stdout))


def print_result(renderable: Any, **kwargs: Any) -> None:
    """Print a table or line of a command's result on stdout."""
    out_console().print(renderable, **kwargs)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def at_least(minimum: float, *, exclusive: bool = False) -> Any:
    """A click callback refusing a number below ``minimum`` (or equal to it, when ``exclusive``) with the
    package's one-line UsageError, e.g. ``--threads must be >= 1, got 0``."""

    def check(ctx: Any, param: Any, value: Any) -> Any:
        if value is None:
            return value
        if value < minimum or (exclusive and value == minimum):
            from overtonlite.errors import UsageError

            flag = max(param.opts, key=len) if param.opts else param.name
            bound = f"> {minimum:g}" if exclusive else f">= {minimum:g}"
            raise UsageError(f"{flag} must be {bound}, got {value:g}")
        return value

    return check


def kv_layout_option(models: str, resumed: str = "run") -> Any:
    """The ``--kv-layout`` option of the commands that sample ``models`` (a phrase) on llama.cpp; a resumed
    ``resumed`` keeps the layout it recorded."""
    import click

    return click.option(
        "--kv-layout",
        type=click.Choice(["unified", "streams"]),
        default=None,
        help=f"llama.cpp KV cache of {models}: one cache shared by all sequences (unified, the default) or a "
        "stream per sequence (streams: faster on long answers, more memory; see `sample --kv-layout`). A "
        f"resumed {resumed} keeps the layout it recorded.",
    )
