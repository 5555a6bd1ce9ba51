"""One error hierarchy for the whole package.

Library code raises these; ``overtonlite.cli`` turns every ``OvertonliteError`` into a one-line Click error with
the exit code given by ``exit_code``. Nothing else in the package should print tracebacks for user mistakes.
"""

from __future__ import annotations


class OvertonliteError(Exception):
    """Base class. ``str(err)`` must be a complete, one-line message for the user."""

    exit_code: int = 1


class UsageError(OvertonliteError):
    """Bad arguments or options (unknown name, impossible combination, too few prompts...)."""

    exit_code = 2


class RegistryError(OvertonliteError):
    """models.toml is malformed, or names an unknown model, embedder or pair."""

    exit_code = 2


class SourceError(OvertonliteError):
    """A model file could not be fetched or assembled."""


class IntegrityError(SourceError):
    """A file's sha256 does not match the registry; the file is never used."""


class ModelLoadError(OvertonliteError):
    """A model file exists but cannot be loaded (truncated, corrupt, wrong format)."""


class DataError(OvertonliteError):
    """A malformed input file. Messages name the file and, where it applies, the line: ``path:line: reason``."""

    exit_code = 2


class RunLockedError(OvertonliteError):
    """Another process holds the run directory's lock."""


class MissingDependencyError(OvertonliteError):
    """An optional dependency is missing; the message names the ``pip install`` that fixes it."""


def missing_dependency(
    module: str, extra: str | None = None, package: str | None = None
) -> MissingDependencyError:
    """Build the standard error for a missing optional import."""
    pkg = package or module
    fix = f"pip install 'overtonlite[{extra}]'" if extra else f"pip install {pkg}"
    return MissingDependencyError(f"the optional dependency '{module}' is not installed; run: {fix}")


class StorageError(OvertonliteError):
    """A file could not be written or read (disk full, read-only file system, no permission). The message names
    the path and the reason; whatever was written before is kept."""


# errno -> what the user can do about it
_IO_HINTS: dict[int, str] = {}


def _io_hints() -> dict[int, str]:
    if not _IO_HINTS:
        import errno

        _IO_HINTS.update(
            {
                errno.ENOSPC: "the disk is full; free some space",
                errno.EDQUOT: "the disk quota is exhausted; free some space",
                errno.EROFS: "the file system is read-only; choose a writable directory",
                errno.EACCES: "permission denied; check the permissions or choose another directory",
                errno.EPERM: "operation not permitted; check the permissions or choose another directory",
                errno.EIO: "input/output error; the disk may be failing",
                errno.EFBIG: "the file would exceed the file size limit",
            }
        )
    return _IO_HINTS


def io_error(exc: OSError, path: object = None, *, action: str = "write", kept: str = "") -> StorageError:
    """The one-line error for an OSError on ``path`` (default: the path the exception names).

    ``cannot write /runs/x/metrics.jsonl: No space left on device (ENOSPC): the disk is full; free some space``,
    followed by ``kept`` (e.g. what was kept and how to resume) when given.
    """
    import errno

    where = path if path is not None else (exc.filename if exc.filename is not None else None)
    reason = exc.strerror or str(exc) or type(exc).__name__
    code = errno.errorcode.get(exc.errno or -1)
    if code:
        reason = f"{reason} ({code})"
    hint = _io_hints().get(exc.errno or -1)
    target = f" {where}" if where is not None else ""
    msg = f"cannot {action}{target}: {reason}"
    if hint:
        msg += f": {hint}"
    if kept:
        msg += f"; {kept}"
    return StorageError(" ".join(msg.split()))


class OvertonliteWarning(UserWarning):
    """Something the user should know that does not stop the command (a torn last line, a short context...).
    The CLI prints each as one ``Warning: ...`` line on stderr."""


def warn(message: str) -> None:
    """Emit an :class:`OvertonliteWarning` (a one-line message that names the file / line it is about)."""
    import warnings

    warnings.warn(message, OvertonliteWarning, stacklevel=2)


def utf8_error(path: object, exc: UnicodeDecodeError | None = None) -> DataError:
    """``path:LINE: not valid UTF-8 (byte 0xff at column C)`` for a text file that does not decode, the line
    found by decoding the file line by line (``exc`` only supplies the reason when the file cannot be re-read)."""
    try:
        with open(str(path), "rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as bad:
                    byte = raw[bad.start : bad.start + 1].hex()
                    return DataError(
                        f"{path}:{lineno}: not valid UTF-8 (byte 0x{byte} at column {bad.start + 1}); "
                        "save the file as UTF-8"
                    )
    except OSError:
        pass
    where = f" ({exc.reason} at byte {exc.start})" if exc is not None else ""
    return DataError(f"{path}: not valid UTF-8{where}; save the file as UTF-8")
