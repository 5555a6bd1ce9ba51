"""Writes of whole output files that fail with one line, and the run lock for any writer of a directory.

The write itself is :func:`overtonlite.util.write_text_atomic` (a uniquely named temp file beside the target,
fsynced, renamed over it, removed on any failure). :func:`storage_errors` turns the OSError of a failed write (disk
full, read-only file system, no permission) into the one-line :class:`~overtonlite.errors.StorageError` naming the
target file, not the temp file; :func:`holding_run_lock` makes a writer hold the directory's run lock as sampling
does, so ``score --out`` and ``sample`` never write one directory at the same time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

from overtonlite.errors import io_error

F = TypeVar("F", bound=Callable[..., Any])

KEPT = "the previous file, if any, is unchanged"


@contextmanager
def storage_errors(path: str | Path, *, kept: str = KEPT) -> Iterator[None]:
    """Turn an OSError raised while writing ``path`` into StorageError (one line: the path and the reason)."""
    try:
        yield
    except OSError as exc:
        raise io_error(exc, Path(path), kept=kept) from None


def write_text_atomic(path: str | Path, text: str, *, kept: str = KEPT) -> None:
    """:func:`overtonlite.util.write_text_atomic` with :func:`storage_errors`."""
    from overtonlite.util import write_text_atomic as write

    with storage_errors(path, kept=kept):
        write(path, text)


def holding_run_lock(fn: F) -> F:
    """Run ``fn`` holding the run lock of its ``out=`` directory (created if needed), as sampling does: a second
    process writing the same directory is refused at once with RunLockedError."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from overtonlite.rundir.records import RunDir

        with RunDir(kwargs["out"]).lock():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
