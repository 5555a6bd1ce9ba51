"""The report's document model and its Markdown rendering.

A report is a list of blocks (headings, paragraphs, callouts, tables, plot slots) built by
:func:`overtonlite.report.document.build_document`. ``render_markdown`` writes them as GitHub Markdown;
``overtonlite.report.html`` renders the same blocks as HTML and fills the plot slots with images, so both files say
the same things.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from overtonlite.report import Stat

MISSING = "—"
LIST_LIMIT = 12  # settings lists longer than this are shortened


@dataclass
class Heading:
    level: int
    text: str
    id: str = ""


@dataclass
class Para:
    """A paragraph. kind: "text", "callout" (the banner), "note", "verdict" (``verdict`` set) or "signature"."""

    text: str
    kind: str = "text"
    verdict: str = ""


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    """A table; ``numeric`` lets the HTML right-align number cells (all columns but the first)."""

    headers: list[str]
    rows: list[list[str]]
    id: str = ""
    numeric: bool = True


@dataclass
class PlotSlot:
    """A plot drawn by the HTML rendering: ``kind`` names a function of plots.py, ``payload`` is its data."""

    id: str
    kind: str
    alt: str
    title: str
    payload: dict[str, Any] = field(default_factory=dict)


Block = Heading | Para | Bullets | Table | PlotSlot


def fmt_num(x: float | None, digits: int = 3) -> str:
    """A number with fixed decimals, or the not-measured mark."""
    return MISSING if x is None else f"{x:.{digits}f}"


def fmt_stat(s: Stat | None, digits: int = 3) -> str:
    """``mean [lo, hi]`` (the 95% CI), or the not-measured mark."""
    if s is None:
        return MISSING
    mean, ci = s
    return (
        fmt_num(mean, digits) if ci is None else f"{mean:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
    )


def fmt_pct(x: float | None, digits: int = 0) -> str:
    return MISSING if x is None else f"{100 * x:.{digits}f}%"


def one_minus(s: Stat | None) -> Stat | None:
    """1 − x with its CI flipped (similarity → diversity)."""
    if s is None:
        return None
    mean, ci = s
    return 1.0 - mean, (None if ci is None else (1.0 - ci[1], 1.0 - ci[0]))


def short(value: Any) -> str:
    """A compact one-line rendering of a setting (hashes shortened, long lists cut)."""
    if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{40,64}", value):
        return value[:12]
    if isinstance(value, dict):
        return ", ".join(f"{k}={short(v)}" for k, v in value.items()) or MISSING
    if isinstance(value, list | tuple):
        shown = ", ".join(short(v) for v in value[:LIST_LIMIT]) or MISSING
        return shown + (f", … ({len(value)} in all)" if len(value) > LIST_LIMIT else "")
    if isinstance(value, float):
        return f"{value:.4g}"
    return MISSING if value is None else str(value)


def anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def not_measured(blocks: list[Block], why: str = "") -> list[Block]:
    blocks.append(Para("Not measured in this run" + (f" ({why})." if why else ".")))
    return blocks


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(doc: list[Block]) -> str:
    """GitHub Markdown. The banner is a ``[!WARNING]`` callout; plot slots are left out (they are in the HTML)."""
    parts: list[str] = []
    for block in doc:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Para):
            if block.kind == "callout":
                parts.append("> [!WARNING]\n> " + block.text.replace("\n", "\n> "))
            else:
                parts.append(("> " if block.kind == "note" else "") + block.text)
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            lines = ["| " + " | ".join(map(_cell, block.headers)) + " |", "|" + "---|" * len(block.headers)]
            lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in block.rows]
            parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"
