"""Reading what ``overtonlite score`` scores: a run directory or any responses JSONL.

Accepted records, one JSON object per line: ``{"system", "prompt_id", "prompt"?, "set"?, "error"?, "samples": [...]}``
where each sample is either a string or an object with ``"text"`` (and optionally ``"n_tokens"`` and
``"finish_reason"``), i.e. the ``samples.jsonl`` of ``overtonlite sample`` or a bring-your-own file. A run directory
is read through its ``samples.jsonl``.

When no record carries a prompt text and a ``prompts.jsonl`` with ``{"id", "prompt"}`` lines sits next to the input
file, the prompt texts are taken from it (so the authors' reference folder loads directly).

Cleaning, the same for every sample: ``strip()``, then a trailing three-backtick fence is removed and the text is
stripped again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overtonlite.errors import DataError

FENCE = "```"


def clean_text(text: str) -> str:
    """``strip()``, remove one trailing ``````` fence, ``strip()`` again."""
    t = text.strip()
    if t.endswith(FENCE):
        t = t[: -len(FENCE)].strip()
    return t


@dataclass
class Group:
    """One (system, prompt) group of samples, cleaned."""

    system: str
    prompt_id: Any  # as written in the input (str or int)
    prompt: str | None
    prompt_set: str | None
    texts: list[str]
    n_tokens: list[int] | None  # per sample, when every sample records it
    finish_reasons: list[str] | None  # per sample, when every sample records it
    error: str | None

    @property
    def pid(self) -> str:
        return str(self.prompt_id)


def resolve_input(input_path: str | Path) -> Path:
    """The JSONL file behind INPUT (a run directory means its ``samples.jsonl``)."""
    p = Path(input_path)
    if p.is_dir():
        p = p / "samples.jsonl"
    if not p.is_file():
        raise DataError(f"{p}: no such file (expected a run directory or a responses JSONL)")
    return p


def _parse_samples(
    where: str, raw: list[dict[str, Any]]
) -> tuple[list[str], list[int] | None, list[str] | None]:
    texts: list[str] = []
    ntok: list[int] = []
    fin: list[str] = []
    for s in raw:
        texts.append(clean_text(s["text"]))
        n = s.get("n_tokens")
        if isinstance(n, int) and not isinstance(n, bool):
            ntok.append(n)
        if isinstance(s.get("finish_reason"), str):
            fin.append(s["finish_reason"])
    return (
        texts,
        ntok if texts and len(ntok) == len(texts) else None,
        fin if texts and len(fin) == len(texts) else None,
    )


def _sibling_prompts(path: Path) -> dict[str, str]:
    side = path.parent / "prompts.jsonl"
    if side == path or not side.is_file():
        return {}
    out: dict[str, str] = {}
    try:
        for line in side.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                if isinstance(rec, dict) and "id" in rec and isinstance(rec.get("prompt"), str):
                    out[str(rec["id"])] = rec["prompt"]
    except (OSError, ValueError):
        return {}
    return out


def read_input(input_path: str | Path) -> tuple[Path, list[Group]]:
    """Parse INPUT into groups in file order (records validated by :func:`overtonlite.rundir.records.read_groups`;
    malformed lines raise ``DataError("path:line: reason")``). Nothing is dropped in silence: a repeated
    (system, prompt_id) is a DataError naming both lines (a failed group retried later is the one exception: the
    retry counts), and a torn last line is skipped with a warning naming it. ``prompt_id`` is read as a string.
    """
    from overtonlite.rundir.records import read_groups

    path = resolve_input(input_path)
    records = read_groups(path, strict=True)
    out: list[Group] = []
    for rec in records:
        where = f"{path}: system {rec['system']!r}, prompt {rec['prompt_id']!r}"
        texts, ntok, fin = _parse_samples(where, rec["samples"])
        error = rec.get("error")
        if error is None and not texts:
            raise DataError(f"{where}: 'samples' is empty")
        prompt = rec.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise DataError(f"{where}: 'prompt' must be a string")
        pset = rec.get("set")
        out.append(
            Group(
                rec["system"],
                rec["prompt_id"],
                prompt,
                pset if isinstance(pset, str) else None,
                texts,
                ntok,
                fin,
                error,
            )
        )
    if not out:
        raise DataError(f"{path}: no records")
    if all(g.prompt is None for g in out):
        side = _sibling_prompts(path)
        for g in out:
            g.prompt = side.get(g.pid)
    return path, out
