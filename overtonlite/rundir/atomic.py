"""Whole-file writes that either land completely or leave the old file (and no temp file) behind.

The text goes to a uniquely named temp file in the target's directory (``tempfile.mkstemp``, so two writers never
share a temp name), is fsynced, and replaces the target with :func:`os.replace`. On any failure (disk full,
read-only file system, no permission, Ctrl-C) the temp file is removed and an OSError becomes the one-line
:class:`~overtonlite.errors.StorageError` naming the file and the reason.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

from overtonlite.errors import io_error

F = TypeVar("F", bound=Callable[..., Any])


def write_text_atomic(
    path: str | Path, text: str, *, kept: str = "the previous file, if any, is unchanged"
) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; StorageError (one line, path and reason) on an OSError."""
    target = Path(path)
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are as readable as any other file
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise io_error(exc, target, kept=kept) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def holding_run_lock(fn: F) -> F:
    """Run ``fn`` holding the run lock of its ``out=`` directory (created if needed), as sampling does: a second
    process writing the same directory is refused at once with RunLockedError."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from overtonlite.rundir.records import RunDir

        with RunDir(kwargs["out"]).lock():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
