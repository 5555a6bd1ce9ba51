"""Prompt sets: the two built-in sets and loaders for JSONL and CSV files.

A prompt set is a list of :class:`Prompt`. Sources:

* ``builtin:open-ended``: open-ended requests (advice, explanations, opinions, creative writing).
* ``builtin:contested``: short yes/no questions on contested topics.
* ``FILE.jsonl``: one JSON object per line, either ``{"prompt": "..."}`` or ``{"messages": [{"role", "content"},
  ...]}``, with an optional ``"id"`` (string or integer). Without an id, a prompt's id is its 0-based line number.
  Other keys are kept in ``Prompt.meta``.
* ``FILE.csv``: a header row with a ``prompt`` column and an optional ``id`` column. Without an id, a prompt's id
  is its 0-based data row number (the row after the header is 0).

Every problem with a file is a :class:`~overtonlite.errors.DataError` naming ``path:line``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overtonlite.errors import DataError, UsageError, utf8_error

DATA_DIR = Path(__file__).resolve().parent / "data"

BUILTIN_SETS: dict[str, str] = {
    "open-ended": "open-ended.jsonl",
    "contested": "contested.jsonl",
}
"""Built-in prompt set name -> data file in ``overtonlite/data``."""

BUILTIN_PREFIX = "builtin:"
_JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
_ROLES = {"system", "user", "assistant"}


@dataclass(frozen=True)
class Prompt:
    """One prompt. ``text`` is the user's text; ``messages`` is set when the source gave a whole conversation."""

    id: str
    text: str
    messages: tuple[dict[str, str], ...] | None = field(default=None, hash=False)
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def chat_messages(self) -> list[dict[str, str]]:
        """The conversation to render with a chat template (a single user turn unless ``messages`` is set)."""
        if self.messages:
            return [dict(m) for m in self.messages]
        return [{"role": "user", "content": self.text}]


def load_prompts(spec: str | Path, *, limit: int | None = None) -> list[Prompt]:
    """Load a prompt set from ``builtin:NAME``, a ``.jsonl`` file or a ``.csv`` file; keep the first ``limit``."""
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be >= 1, got {limit}")
    text_spec = str(spec)
    if text_spec.startswith(BUILTIN_PREFIX):
        name = text_spec[len(BUILTIN_PREFIX) :]
        if name not in BUILTIN_SETS:
            known = ", ".join(BUILTIN_PREFIX + n for n in BUILTIN_SETS)
            raise UsageError(f"unknown built-in prompt set {text_spec!r}; known: {known}")
        path = DATA_DIR / BUILTIN_SETS[name]
        prompts = _load_jsonl(path, set_name=name)
    else:
        path = Path(text_spec).expanduser()
        if not path.exists():
            raise DataError(
                f"{path}: no such file (use builtin:open-ended, builtin:contested or a .jsonl/.csv file)"
            )
        if path.is_dir():
            raise DataError(f"{path}: is a directory, expected a .jsonl or .csv file")
        prompts = _load_csv(path) if _looks_like_csv(path) else _load_jsonl(path, set_name=None)
    if not prompts:
        raise DataError(f"{path}: no prompts in the file")
    return prompts[:limit] if limit is not None else prompts


def _looks_like_csv(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return True
    if suffix in _JSONL_SUFFIXES:
        return False
    # unknown extension: JSONL if the first non-blank character opens an object
    for line in _read_lines(path):
        if line.strip():
            return not line.lstrip().startswith("{")
    return False


def _read_lines(path: Path) -> Iterator[str]:
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as fh:
            yield from fh
    except UnicodeDecodeError as exc:
        raise utf8_error(path, exc) from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _load_jsonl(path: Path, *, set_name: str | None) -> list[Prompt]:
    prompts: list[tuple[Prompt, int]] = []
    for index, line in enumerate(_read_lines(path)):
        lineno = index + 1
        if not line.strip():
            continue
        try:
            obj = json.loads(line.rstrip("\r\n"))
        except json.JSONDecodeError as exc:
            at = " column" if exc.msg.endswith(" at") else " at column"  # "Unterminated string starting at"
            raise DataError(f"{path}:{lineno}: invalid JSON ({exc.msg}{at} {exc.colno})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        prompt = _prompt_from_record(obj, default_id=str(index), where=f"{path}:{lineno}", set_name=set_name)
        prompts.append((prompt, lineno))
    return _check_unique(prompts, path)


def _load_csv(path: Path) -> list[Prompt]:
    lines = list(_read_lines(path))
    # strict: an unclosed quote is an error instead of swallowing the rest of the file
    reader = csv.DictReader(lines, strict=True)
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise DataError(f"{path}:1: malformed CSV header ({exc})") from None
    if not header or "prompt" not in [h.strip() for h in header]:
        raise DataError(
            f"{path}:1: the CSV header must have a 'prompt' column (found: {', '.join(header or [])})"
        )
    reader.fieldnames = [h.strip() for h in header]
    prompts: list[tuple[Prompt, int]] = []
    start = reader.line_num + 1  # first line of the row being read (a quoted field may span lines)
    try:
        for row_index, row in enumerate(reader):
            lineno = start
            start = reader.line_num + 1
            if None in row:
                raise DataError(f"{path}:{lineno}: more fields than the header has")
            if all(not (v or "").strip() for v in row.values()):
                continue
            record: dict[str, Any] = {k: v for k, v in row.items() if v is not None}
            if not (record.get("id") or "").strip():
                record.pop("id", None)
            prompt = _prompt_from_record(
                record, default_id=str(row_index), where=f"{path}:{lineno}", set_name=None
            )
            prompts.append((prompt, lineno))
    except csv.Error as exc:
        why = "a quoted field is never closed" if "end of data" in str(exc) else str(exc)
        raise DataError(f"{path}:{start}: malformed CSV ({why})") from None
    return _check_unique(prompts, path)


def _prompt_from_record(obj: dict[str, Any], *, default_id: str, where: str, set_name: str | None) -> Prompt:
    raw_id = obj.get("id", default_id)
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        raise DataError(f"{where}: 'id' must be a string or an integer")
    pid = str(raw_id).strip()
    if not pid:
        raise DataError(f"{where}: 'id' is empty")
    messages: tuple[dict[str, str], ...] | None = None
    if "messages" in obj and obj["messages"] is not None:
        messages = _parse_messages(obj["messages"], where)
        users = [m["content"] for m in messages if m["role"] == "user"]
        text = users[-1] if users else messages[-1]["content"]
        if "prompt" in obj and isinstance(obj["prompt"], str) and obj["prompt"].strip():
            text = obj["prompt"]
    elif "prompt" in obj:
        text = obj["prompt"]
        if not isinstance(text, str):
            raise DataError(f"{where}: 'prompt' must be a string, got {type(text).__name__}")
        if not text.strip():
            raise DataError(f"{where}: 'prompt' is empty")
    else:
        raise DataError(f"{where}: a record needs a 'prompt' string or a 'messages' list")
    meta = {k: v for k, v in obj.items() if k not in {"id", "prompt", "messages"}}
    if set_name is not None:
        meta["set"] = set_name
    return Prompt(id=pid, text=text, messages=messages, meta=meta)


def _parse_messages(value: Any, where: str) -> tuple[dict[str, str], ...]:
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: 'messages' must be a non-empty list of {{'role', 'content'}} objects")
    out: list[dict[str, str]] = []
    for i, msg in enumerate(value):
        if (
            not isinstance(msg, dict)
            or not isinstance(msg.get("content"), str)
            or not isinstance(msg.get("role"), str)
        ):
            raise DataError(f"{where}: messages[{i}] must be an object with string 'role' and 'content'")
        if msg["role"] not in _ROLES:
            raise DataError(
                f"{where}: messages[{i}] has unknown role {msg['role']!r} (use system, user, assistant)"
            )
        out.append({"role": msg["role"], "content": msg["content"]})
    if out[-1]["role"] == "assistant":
        raise DataError(f"{where}: the last message must not be from the assistant")
    return tuple(out)


def _check_unique(prompts: list[tuple[Prompt, int]], path: Path) -> list[Prompt]:
    first: dict[str, int] = {}
    for prompt, lineno in prompts:
        if prompt.id in first:
            raise DataError(
                f"{path}:{lineno}: duplicate id {prompt.id!r} (first used on line {first[prompt.id]})"
            )
        first[prompt.id] = lineno
    return [prompt for prompt, _ in prompts]
