"""The judgment cache: ``judgments.jsonl`` in the run directory, one line per judgment, appended as each one is
made, so an interrupted run resumes where it stopped.

A judgment is found again by its key: the hash of (judge id, task, whether a reason was asked for, sha256 of the
exact prompt). The judge id hashes the judge's identity (model sha256 for a local GGUF, model id for a served
one), so another judge, another prompt wording or another input text is a new judgment. Errors are cached too
(``label`` null, ``error`` set): ``retry_errors`` makes them again.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from overtonlite.config import stable_hash
from overtonlite.errors import DataError

FILE = "judgments.jsonl"


def prompt_sha256(messages: list[dict[str, str]]) -> str:
    """sha256 of the canonical JSON of the judge's messages."""
    blob = json.dumps(messages, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def judgment_key(judge_id: str, task: str, with_reason: bool, prompt_hash: str) -> str:
    return stable_hash({"judge": judge_id, "task": task, "reason": with_reason, "prompt": prompt_hash}, 24)


class JudgmentCache:
    """Judgments already made in ``folder`` (a missing file is an empty cache; a torn last line is skipped)."""

    def __init__(self, folder: str | Path, *, retry_errors: bool = False) -> None:
        self.path = Path(folder) / FILE
        self._lock = threading.Lock()
        self.records: dict[str, dict[str, Any]] = {}
        for rec in _read(self.path):
            if isinstance(rec.get("key"), str):
                if retry_errors and rec.get("error") is not None:
                    continue
                self.records[rec["key"]] = rec

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def put(self, rec: dict[str, Any]) -> None:
        """Append one judgment (flushed at once) and remember it."""
        line = json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
            self.records[rec["key"]] = rec


def _read(path: Path) -> list[dict[str, Any]]:
    """The records of ``path``; a torn last line (an interrupted append) is skipped, other bad lines are errors."""
    if not path.is_file():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    lines = text.split("\n")
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            if i == len(lines):  # no newline after it: the append was cut short; cut it off before appending
                with open(path, "r+b") as fh:
                    fh.truncate(len(text.encode("utf-8")) - len(line.encode("utf-8")))
                continue
            raise DataError(f"{path}:{i}: not a JSON line") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{i}: not a JSON object")
        rows.append(obj)
    return rows
