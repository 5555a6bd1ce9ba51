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
