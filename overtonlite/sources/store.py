"""The overtonlite file cache: its location, sha256 stamps, trust-on-first-use records and locks.

``$OVERTONLITE_HOME`` (default ``~/.cache/overtonlite``) holds ``models/<name>/<file>`` and
``embedders/<name>/<file>``. Next to each cached file a ``<file>.sha256`` sidecar records the verified hash, size
and mtime, so a later use checks size and mtime only. Files outside the cache (``path`` sources, the
huggingface_hub cache) get the same cheap check through ``verified.json``; sha-less entries are trusted on first
use and their hash is kept in ``hashes.json``. Used by :mod:`overtonlite.sources` and its fetchers.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from overtonlite import util
from overtonlite.errors import IntegrityError, ModelLoadError, SourceError
from overtonlite.registry import FileSpec

Progress = Callable[[str, int, "int | None"], None]
"""``progress(stage, done, total)``: ``stage`` is a human-readable line, ``done``/``total`` count bytes
(or packages while downloading); ``total`` is ``None`` when unknown."""

CHUNK = 1 << 20


def cache_home() -> Path:
    """``$OVERTONLITE_HOME`` or ``~/.cache/overtonlite``."""
    env = os.environ.get("OVERTONLITE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "overtonlite"


# ------------------------------------------------------------------------------------------- small helpers
def sha256_file(path: Path, *, progress: Progress | None = None, stage: str = "") -> str:
    """Stream ``path`` through sha256 (:func:`overtonlite.util.sha256_file`)."""
    return util.sha256_file(path, progress=progress, stage=stage)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; ``{}`` when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically beside ``path`` (:func:`overtonlite.util.write_json_atomic`)."""
    util.write_json_atomic(path, data, indent=1, sort_keys=True)


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory lock (no-op where fcntl is unavailable) so parallel pulls do not race."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: atomic replace still keeps the cache consistent
        yield
        return
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


STALE_DAYS = 30
"""A cached file that was last rehashed longer ago than this gets a one-time warning when it is used."""

_warned_stale: set[str] = set()


def make_stamp(path: Path, sha: str) -> dict[str, Any]:
    """What a sidecar / ``verified.json`` records about a verified file: sha256, size, mtime and when the file
    was last rehashed (``verified_at``, Unix seconds)."""
    st = path.stat()
    return {"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "verified_at": int(time.time())}


def warn_if_stale(record: dict[str, Any], path: Path, label: str, stamp_file: Path) -> None:
    """Warn (once per file and process) when ``path`` passed only the cheap size + mtime check and was last
    rehashed more than :data:`STALE_DAYS` days ago; the time comes from ``verified_at`` (or, for stamps written
    before it existed, the stamp file's mtime)."""
    when = record.get("verified_at")
    if not isinstance(when, (int, float)):
        try:
            when = stamp_file.stat().st_mtime
        except OSError:
            return
    days = (time.time() - float(when)) / 86400
    key = str(path)
    if days < STALE_DAYS or key in _warned_stale:
        return
    _warned_stale.add(key)
    from overtonlite.errors import warn

    warn(
        f"{label}: {path} was last rehashed {int(days)} days ago (only its size and mtime are checked on use); "
        f"run: overtonlite models verify {label}"
    )


def stamp_matches(record: dict[str, Any], path: Path, sha: str | None) -> bool:
    """True when ``path`` still has the size and mtime of ``record`` (and ``record`` has ``sha``, if given)."""
    try:
        st = path.stat()
    except OSError:
        return False
    return (
        record.get("size") == st.st_size
        and record.get("mtime_ns") == st.st_mtime_ns
        and (sha is None or record.get("sha256") == sha)
    )


def sidecar(path: Path) -> Path:
    """The ``<file>.sha256`` stamp next to a cached file."""
    return path.with_name(path.name + ".sha256")


def tofu_key(f: FileSpec) -> str:
    """The key of a sha-less file in ``hashes.json`` (its source, not its local name)."""
    if f.kind == "hf":
        return f"hf:{f.repo_id}@{f.revision}:{f.filename}"
    if f.kind == "path":
        return f"path:{f.path}"
    return f"pypi:{','.join(f.packages)}:{','.join(f.members)}"


def mismatch(label: str, path: Path | str, expected: str, actual: str, extra: str = "") -> IntegrityError:
    """The one-line error for a file whose sha256 is not the expected one."""
    return IntegrityError(f"{label}: sha256 mismatch for {path}: expected {expected}, got {actual}{extra}")


def sha_status(f: FileSpec) -> str:
    """``pinned`` (sha256 in models.toml), ``recorded`` (trusted on first use, hash known) or ``tofu``."""
    if f.sha256:
        return "pinned"
    return "recorded" if tofu_key(f) in read_json(cache_home() / "hashes.json") else "tofu"


def expected_sha(f: FileSpec) -> str | None:
    """The sha256 ``f`` must have: pinned in models.toml, or recorded on first use; None when unknown yet."""
    if f.sha256:
        return f.sha256
    rec = read_json(cache_home() / "hashes.json").get(tofu_key(f))
    return rec.get("sha256") if isinstance(rec, dict) else None


def check_loads(path: Path, label: str) -> None:
    """SourceError unless ``path`` parses as what its name says (a GGUF header and tensor table, a JSON
    document, a non-empty ONNX file): a broken file's hash must never be trusted on first use."""
    name = path.name.lower()
    reason = None
    try:
        if name.endswith(".gguf"):
            from overtonlite.gguf_info import validate_gguf

            validate_gguf(path)
        elif name.endswith(".json"):
            json.loads(path.read_text(encoding="utf-8"))
        elif path.stat().st_size == 0:
            reason = "the file is empty"
    except ModelLoadError as exc:
        reason = str(exc)
    except (OSError, ValueError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
    if reason is not None:
        raise SourceError(
            f"{label}: {path} cannot be loaded ({reason}); its hash was not recorded: "
            "replace the file and run the command again"
        )


def record_tofu(f: FileSpec, sha: str, size: int) -> None:
    """Remember the sha256 of a sha-less file at its first use."""
    path = cache_home() / "hashes.json"
    with locked(cache_home() / ".hashes.lock"):
        data = read_json(path)
        data[tofu_key(f)] = {
            "sha256": sha,
            "size": size,
            "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        write_json_atomic(path, data)


# --------------------------------------------------------------------------------- verification (foreign)
def verify_foreign(f: FileSpec, path: Path, label: str, *, full: bool, progress: Progress | None) -> str:
    """Check a file outside our cache (path / hf): pinned or recorded sha256, else record it. Returns the sha."""
    real = path.resolve()
    stamps_path = cache_home() / "verified.json"
    expected = expected_sha(f)
    known = read_json(stamps_path).get(str(real))
    if not full and isinstance(known, dict) and expected and stamp_matches(known, real, expected):
        warn_if_stale(known, real, label, stamps_path)
        return expected
    actual = sha256_file(real, progress=progress, stage=f"{label}: verify {f.local_name}")
    if expected and actual != expected:
        how = (
            "models.toml"
            if f.sha256
            else f"the hash recorded on first use in {cache_home() / 'hashes.json'} "
            f"(if that file was broken: overtonlite models forget {label})"
        )
        raise mismatch(label, path, expected, actual, f" (expected value from {how}); the file was not used")
    if not expected:
        check_loads(real, label)
        record_tofu(f, actual, real.stat().st_size)
    with locked(cache_home() / ".hashes.lock"):
        stamps = read_json(stamps_path)
        stamps[str(real)] = make_stamp(real, actual)
        write_json_atomic(stamps_path, stamps)
    return actual


def forget(f: FileSpec) -> bool:
    """Drop the hash trust on first use recorded for ``f`` in ``hashes.json``, so the next use checks that the
    file loads, hashes it and records it again. False when nothing was recorded."""
    home = cache_home()
    with locked(home / ".hashes.lock"):
        hashes = read_json(home / "hashes.json")
        if hashes.pop(tofu_key(f), None) is None:
            return False
        write_json_atomic(home / "hashes.json", hashes)
    return True
