"""Run directories and the append-only ``samples.jsonl`` record file.

A run directory holds ``manifest.json``, ``samples.jsonl`` (one line per prompt group with all N samples),
``metrics.jsonl`` and a ``.lock`` file. Records are appended one line at a time, flushed and fsynced, so a crash
can at worst leave a torn last line: readers ignore it and the next append cuts it away. Complete lines are never
rewritten.

Several systems may share one run directory. When a system has more than one record for the same prompt id
(a group that failed and was retried), the last record wins.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from overtonlite.errors import DataError, RunLockedError, UsageError, io_error, utf8_error, warn

SAMPLES_FILE = "samples.jsonl"
MANIFEST_FILE = "manifest.json"
METRICS_FILE = "metrics.jsonl"
LOCK_FILE = ".lock"
_NOTHING = "nothing was written"


class RunDir:
    """A run directory; created on construction. Writers hold :meth:`lock` while they append."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise UsageError(
                f"cannot use {self.path} as a run directory: it exists and is not a directory"
            ) from None
        except OSError as exc:
            raise UsageError(f"cannot create run directory {self.path}: {exc.strerror or exc}") from None
        if not self.path.is_dir():
            raise UsageError(f"cannot use {self.path} as a run directory: it is not a directory")
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise UsageError(
                f"run directory {self.path} is not writable (no permission, or a read-only file system)"
            )

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @staticmethod
    def check_usable(path: str | Path) -> None:
        """Fail early (UsageError / RunLockedError) when ``path`` cannot become a run directory, or another
        process holds its lock, without creating anything; for a caller about to do slow work first."""
        p = Path(path).expanduser()
        probe = p
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if probe == p and not p.is_dir():
            raise UsageError(f"cannot use {p} as a run directory: it exists and is not a directory")
        if not probe.is_dir():
            raise UsageError(f"cannot create run directory {p}: {probe} is not a directory")
        if not os.access(probe, os.W_OK | os.X_OK):
            raise UsageError(f"cannot create run directory {p}: {probe} is not writable")
        lock = p / LOCK_FILE
        if probe == p and lock.exists():
            try:
                fd = os.open(lock, os.O_RDONLY)
            except OSError:
                return  # RunDir.lock() reports it
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                holder = _read_pid(fd)
                who = f"process {holder}" if holder else "another process"
                raise RunLockedError(
                    f"run directory {p} is in use by {who}; wait for it to finish or stop it"
                ) from None
            finally:
                os.close(fd)

    @property
    def samples_path(self) -> Path:
        """One JSON line per prompt group (append-only)."""
        return self.path / SAMPLES_FILE

    @property
    def manifest_path(self) -> Path:
        """Versions, configs, seeds and the signature of the run."""
        return self.path / MANIFEST_FILE

    @property
    def metrics_path(self) -> Path:
        """Per-group metrics written by ``score``."""
        return self.path / METRICS_FILE

    @property
    def lock_path(self) -> Path:
        """The writer lock (holds the writer's pid while locked)."""
        return self.path / LOCK_FILE

    @contextmanager
    def lock(self) -> Iterator[RunDir]:
        """Hold the directory's writer lock (``fcntl.flock`` on ``.lock``); RunLockedError if another holds it."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise io_error(exc, self.lock_path, action="create lock file", kept=_NOTHING) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                holder = _read_pid(fd)
                who = f"process {holder}" if holder else "another process"
                raise RunLockedError(
                    f"run directory {self.path} is in use by {who}; wait for it to finish or stop it"
                ) from None
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            except OSError as exc:
                fcntl.flock(fd, fcntl.LOCK_UN)
                raise io_error(exc, self.lock_path, action="write lock file", kept=_NOTHING) from None
            try:
                yield self
            finally:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def append_group(self, record: dict[str, Any]) -> None:
        """Append one group record as one JSON line; flushed and fsynced before returning."""
        if not isinstance(record, dict):
            raise TypeError("a group record must be a dict")
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        path = self.samples_path
        size = None
        try:
            self._drop_torn_tail()
            size = path.stat().st_size if path.exists() else 0
            with open(path, "ab") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            if size is not None:  # roll back a partly written line so the file keeps only whole records
                with contextlib.suppress(OSError):
                    os.truncate(path, size)
            raise io_error(
                exc,
                path,
                action="write to",
                kept="the groups written before are kept; rerun the same command to resume",
            ) from None

    def _drop_torn_tail(self) -> None:
        """Cut an incomplete last line (left by a crash mid-write) so the next record starts on a fresh line."""
        path = self.samples_path
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0:
            return
        with open(path, "rb+") as fh:
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return
            # scan backwards for the last newline
            pos, keep = size, 0
            chunk = 65536
            while pos > 0:
                start = max(0, pos - chunk)
                fh.seek(start)
                block = fh.read(pos - start)
                idx = block.rfind(b"\n")
                if idx >= 0:
                    keep = start + idx + 1
                    break
                pos = start
            fh.seek(keep)
            tail = fh.read()
            if _is_complete_record(tail):
                fh.seek(0, os.SEEK_END)
                fh.write(b"\n")  # the write stopped just before its newline: keep the record
            else:
                fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())

    def read_groups(self) -> list[dict[str, Any]]:
        """All valid group records in this directory (empty when there is no samples file yet)."""
        if not self.samples_path.exists():
            return []
        return read_groups(self.samples_path)

    def existing_keys(self, system: str, *, include_errors: bool = True) -> set[str]:
        """Cache keys of the groups already recorded for ``system`` (optionally leaving out failed groups)."""
        return {
            r["key"]
            for r in self.read_groups()
            if r.get("system") == system and r.get("key") and (include_errors or r.get("error") is None)
        }


def _json_reason(exc: json.JSONDecodeError) -> str:
    """``Expecting ',' delimiter at column 14`` (json's messages ending in "at" get the column appended)."""
    return f"{exc.msg} column {exc.colno}" if exc.msg.endswith(" at") else f"{exc.msg} at column {exc.colno}"


def _is_complete_record(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw.decode("utf-8")), dict)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False


def _read_pid(fd: int) -> int | None:
    try:
        raw = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        return int(raw) if raw else None
    except (OSError, ValueError):
        return None


def read_groups(path: str | Path, *, strict: bool = False) -> list[dict[str, Any]]:
    """Read and validate group records from a run directory or a JSONL file.

    Samples may be dicts with a ``text`` or plain strings (normalised to ``{"text": s}``); ``prompt_id`` becomes a
    string. A torn last line is ignored. For repeated (system, prompt_id) pairs the last record wins.

    ``strict`` (what ``score`` reads with): a torn last line is reported with an :class:`OvertonliteWarning`, and
    a repeated (system, prompt_id) is a DataError naming both lines, unless the earlier record is a failed group
    (``error`` set) that a later run retried.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / SAMPLES_FILE
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise DataError(f"{p}: cannot read ({exc.strerror or exc})") from None
    lines = data.split(b"\n")
    torn_tail = not data.endswith(b"\n")
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    line_of: dict[tuple[str, str], int] = {}
    for index, raw in enumerate(lines):
        lineno = index + 1
        if not raw.strip():
            continue
        last = index == len(lines) - 1
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            if last and torn_tail:
                if strict:
                    warn(
                        f"{p}:{lineno}: the last line is incomplete (an interrupted write?) and was skipped; "
                        "complete or remove it"
                    )
                break  # an interrupted write: ignore it (the next append removes it)
            reason = _json_reason(exc) if isinstance(exc, json.JSONDecodeError) else "not valid UTF-8"
            raise DataError(f"{p}:{lineno}: invalid JSON ({reason}); fix or remove that line") from None
        record = validate_group(obj, where=f"{p}:{lineno}")
        key = (record["system"], record["prompt_id"])
        previous = by_key.pop(key, None)
        if strict and previous is not None and previous.get("error") is None:
            raise DataError(
                f"{p}:{lineno}: duplicate record for system {key[0]!r}, prompt {key[1]!r} (also at line "
                f"{line_of[key]}); keep one of the two lines"
            )
        by_key[key] = record
        line_of[key] = lineno
    return list(by_key.values())


def read_jsonl_objects(path: str | Path) -> list[dict[str, Any]] | None:
    """Every line of a JSONL file as a JSON object (None when the file does not exist).

    Blank lines are skipped; invalid JSON, a line that is not an object, or an unreadable file is a DataError
    naming the file and line. For samples.jsonl use :func:`read_groups`, which also validates group records and
    tolerates a torn last line.
    """
    p = Path(path)
    if not p.is_file():
        return None
    rows: list[dict[str, Any]] = []
    try:
        with p.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                rows.append(_json_object(line, f"{p}:{lineno}"))
    except UnicodeDecodeError as exc:
        raise utf8_error(p, exc) from None
    except OSError as exc:
        raise DataError(f"{p}: cannot read ({exc.strerror or exc})") from None
    return rows


def read_json_object(path: str | Path, *, what: str = "a JSON object") -> dict[str, Any] | None:
    """A JSON file holding one object (None when the file does not exist).

    Invalid JSON is a DataError naming the file and line; a file that is not an object names ``what`` it should
    have been; an unreadable file is a DataError naming the file.
    """
    p = Path(path)
    if not p.is_file():
        return None
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise utf8_error(p, exc) from None
    except OSError as exc:
        raise DataError(f"{p}: cannot read ({exc.strerror or exc})") from None
    return _json_object(text, str(p), what=what, multiline=True)


def _json_object(
    text: str, where: str, *, what: str = "a JSON object", multiline: bool = False
) -> dict[str, Any]:
    """``text`` decoded as one JSON object; errors name ``where`` (plus the line, for a ``multiline`` file)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        line = f":{exc.lineno}" if multiline else ""
        raise DataError(
            f"{where}{line}: invalid JSON ({_json_reason(exc)}); fix or remove the file"
        ) from None
    if not isinstance(data, dict):
        line = ":1" if multiline else ""
        raise DataError(f"{where}{line}: expected {what}, got {type(data).__name__}")
    return data


def validate_group(obj: Any, *, where: str) -> dict[str, Any]:
    """Check one group record's shape and return a normalised copy (DataError naming ``where`` otherwise)."""
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    system = obj.get("system")
    if not isinstance(system, str) or not system:
        raise DataError(f"{where}: 'system' must be a non-empty string")
    pid = obj.get("prompt_id")
    if isinstance(pid, bool) or not isinstance(pid, (str, int)) or str(pid) == "":
        raise DataError(f"{where}: 'prompt_id' must be a string or an integer")
    samples = obj.get("samples")
    if not isinstance(samples, list):
        raise DataError(f"{where}: 'samples' must be a list")
    error = obj.get("error")
    if error is not None and not isinstance(error, str):
        raise DataError(f"{where}: 'error' must be a string or null")
    norm: list[dict[str, Any]] = []
    for i, s in enumerate(samples):
        if isinstance(s, str):
            norm.append({"text": s})
        elif isinstance(s, dict) and isinstance(s.get("text"), str):
            norm.append(s)
        else:
            raise DataError(f"{where}: samples[{i}] must be a string or an object with a string 'text'")
    out = dict(obj)
    out["prompt_id"] = str(pid)
    out["samples"] = norm
    return out
