"""Small helpers shared by the CLI modules."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

# Human output goes to stderr so that --json output on stdout stays machine-readable.
console = Console(stderr=True)


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
