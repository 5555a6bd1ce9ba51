"""Three small helpers used across the package: file hashing, atomic writes, and the physical core count.

Each is written once here; the registry cache, the run directory, scoring and the report all call these.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHUNK = 1 << 20

__all__ = ["physical_cores", "sha256_file", "write_json_atomic", "write_text_atomic"]


def sha256_file(
    path: str | os.PathLike[str],
    *,
    progress: Callable[[str, int, int | None], None] | None = None,
    stage: str = "",
) -> str:
    """The sha256 hex digest of a file, streamed in 1 MiB chunks; ``progress(stage, done, total)`` per chunk."""
    p = Path(path)
    h = hashlib.sha256()
    total = p.stat().st_size if progress is not None else None
    done = 0
    with open(p, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
            done += len(block)
            if progress is not None:
                progress(stage or f"hash {p.name}", done, total)
    return h.hexdigest()


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: changing the umask later would race with other threads


def _umask() -> int:
    return _UMASK


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to a uniquely named temporary file beside ``path``, fsync it, and rename it over ``path``.

    The temporary file is removed when anything fails; the file gets the usual umask mode (not mkstemp's 0600).
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        fh = os.fdopen(fd, "w", encoding="utf-8")  # owns fd from here on: closed even when fchmod fails
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    try:
        with fh:
            os.fchmod(fd, 0o666 & ~_umask())  # fd stays valid while fh owns it
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(p.parent)


def write_json_atomic(
    path: str | os.PathLike[str], data: Any, *, indent: int | None = 2, sort_keys: bool = False
) -> None:
    """``data`` as JSON (UTF-8, a trailing newline) written with :func:`write_text_atomic`."""
    text = json.dumps(data, indent=indent, ensure_ascii=False, sort_keys=sort_keys, default=str) + "\n"
    write_text_atomic(path, text)


def physical_cores() -> int:
    """Physical CPU cores available to this process (hyper-threads not counted).

    Reads the sysfs topology of the CPUs in the affinity mask, then ``/proc/cpuinfo``; falls back to the logical
    count. Never more than the logical CPUs the process may use, never less than 1.
    """
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = list(range(os.cpu_count() or 1))
    logical = max(1, len(allowed))
    cores: set[tuple[str, str]] = set()
    for cpu in allowed:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(
                ((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip())
            )
        except OSError:
            cores = set()
            break
    if not cores:
        try:
            phys = "0"
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "physical id":
                    phys = value
                elif key == "core id":
                    cores.add((phys, value))
        except OSError:
            cores = set()
    n = len(cores) if cores else logical
    return max(1, min(n, logical))
