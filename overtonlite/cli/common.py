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
