"""The shared helpers: file hashing, atomic writes, physical cores."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from overtonlite import util


def test_sha256_file_matches_hashlib_and_reports_progress(tmp_path: Path) -> None:
    data = os.urandom(3 * util.CHUNK + 17)
    path = tmp_path / "blob"
    path.write_bytes(data)
    seen: list[tuple[str, int, int | None]] = []
    assert util.sha256_file(path, progress=lambda *a: seen.append(a)) == hashlib.sha256(data).hexdigest()
    assert [s[1] for s in seen] == [util.CHUNK, 2 * util.CHUNK, 3 * util.CHUNK, len(data)]
    assert all(s[2] == len(data) and s[0] == "hash blob" for s in seen)


def test_atomic_writes_replace_whole_files_with_the_umask_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "x.json"
    util.write_json_atomic(path, {"b": 1, "a": "é"})
    util.write_json_atomic(path, {"b": 2, "a": [1]}, indent=None, sort_keys=True)
    assert path.read_text(encoding="utf-8") == '{"a": [1], "b": 2}\n'
    assert path.stat().st_mode & 0o044 == 0o044  # readable by others (umask 022), not mkstemp's 0600
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_atomic_write_failure_keeps_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "x.txt"
    util.write_text_atomic(path, "old")
    temps: list[str] = []

    def failing_replace(src: str, dst: object) -> None:
        temps.append(src)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(util.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space"):
        util.write_text_atomic(path, "new")
    with pytest.raises(OSError):
        util.write_text_atomic(path, "newer")
    assert len(set(temps)) == 2  # unique temporary names
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_physical_cores_is_within_the_logical_cpus() -> None:
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    assert 1 <= util.physical_cores() <= logical


def test_one_implementation_of_each_helper() -> None:
    from overtonlite.backends import onnx
    from overtonlite.backends.llamacpp import native
    from overtonlite.sources import store

    assert onnx.physical_cores is util.physical_cores and native.physical_cores is util.physical_cores
    root = Path(util.__file__).parent
    for path in root.rglob("*.py"):
        if path.name == "util.py":
            continue
        text = path.read_text(encoding="utf-8")
        assert "def physical_cores" not in text, path
        assert "tempfile.mkstemp" not in text, path
    assert store.sha256_file.__doc__ and "util.sha256_file" in store.sha256_file.__doc__
