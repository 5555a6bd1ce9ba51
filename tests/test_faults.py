"""Fault injection through the real console entry (``python -m overtonlite``) and the library.

A full disk and a read-only file system are real: a 64 KiB tmpfs mounted for the test (root only; otherwise those
tests skip and the injected-failure tests below still cover the same code paths). Also: two processes on one run
directory, a double Ctrl-C on a running ``sample`` (fake backend always; the real default chat model under the
``realmodel`` marker), duplicate and torn input lines in ``score``, non-UTF-8 input, a corrupt manifest, out-of-range
options, portable manifests and trust on first use of a broken file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from overtonlite.errors import DataError, RunLockedError, StorageError, io_error
from overtonlite.rundir.atomic import write_text_atomic
from overtonlite.rundir.records import RunDir, read_groups
from tests.test_bad_input import (
    FAKE,
    REPO,
    _env,
    last_line_error,
    one_line_error,
    reg_env,
    registry,  # noqa: F401 - a fixture
    run_cli,
    sha,
)
from tests.test_scoring import HashEmbedder

PAGE = 4096


# ------------------------------------------------------------------------------------------------ helpers
@contextlib.contextmanager
def _tmpfs(where: Path, size: str = "64k") -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB file system."""
    with _tmpfs(tmp_path / "fs") as fs:
        yield fs


def _fill(fs: Path, leave_pages: int = 0) -> Path:
    """Fill ``fs`` up to ``leave_pages`` free pages with one filler file; returns it."""
    filler = fs / "filler"
    free = os.statvfs(fs).f_bavail * os.statvfs(fs).f_frsize
    with open(filler, "wb") as fh:
        try:
            fh.write(b"\0" * max(0, free - leave_pages * PAGE))
            fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def _remount_ro(fs: Path) -> None:
    proc = subprocess.run(["mount", "-o", "remount,ro", str(fs)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot remount read-only: {proc.stderr.strip()}")


def _whole_lines(path: Path) -> list[dict]:
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), "a torn last line was left behind"
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def _responses(path: Path, rows: list[dict] | None = None, *, tail: str = "") -> Path:
    rows = rows or [
        {"system": "a", "prompt_id": "p1", "prompt": "Name a colour.", "samples": ["red sky", "blue sea"]},
        {"system": "a", "prompt_id": "p2", "prompt": "Name a fruit.", "samples": ["apple pie", "ripe pear"]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail, encoding="utf-8")
    return path


def _no_temp_files(folder: Path) -> None:
    left = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert not left, left


# ------------------------------------------------------------------------------------- a real full disk
def test_sample_on_a_full_disk_fails_at_the_lock_in_one_line(small_fs: Path) -> None:
    _fill(small_fs)
    out = small_fs / "run"
    proc = run_cli(*FAKE, "--prompts", "builtin:open-ended", "--limit", "3", "--out", str(out))
    one_line_error(proc, 1, f"cannot write lock file {out / '.lock'}", "No space left on device (ENOSPC)",
                   "the disk is full")  # fmt: skip
    assert not (out / "samples.jsonl").exists() and not (out / "manifest.json").exists()


def test_disk_full_mid_run_keeps_whole_groups_and_resumes(small_fs: Path) -> None:
    filler = _fill(small_fs, leave_pages=4)  # the lock, the manifest (and its temp copy), one page of samples
    out = small_fs / "run"
    args = [*FAKE, "--prompts", "builtin:open-ended", "--limit", "40", "--out", str(out)]
    proc = run_cli(*args)
    last_line_error(proc, 1, f"cannot write to {out / 'samples.jsonl'}", "(ENOSPC)",
                    "the groups written before are kept")  # fmt: skip
    kept = _whole_lines(out / "samples.jsonl")
    assert 0 < len(kept) < 40
    _no_temp_files(out)
    filler.unlink()
    proc = run_cli(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["groups_skipped"] == len(kept) and summary["groups_done"] == 40 - len(kept)
    assert len({r["prompt_id"] for r in _whole_lines(out / "samples.jsonl")}) == 40


def test_score_out_on_a_full_disk_leaves_no_temp_file(small_fs: Path, tmp_path: Path) -> None:
    src = _responses(tmp_path / "r.jsonl")
    out = small_fs / "scores"
    out.mkdir()
    (out / "metrics.jsonl").write_text("old\n")  # a previous result must survive a failed write
    _fill(small_fs, leave_pages=1)  # room for the lock's pid, none for metrics.jsonl
    with pytest.raises(
        StorageError, match=r"cannot write .*metrics\.jsonl: No space left on device \(ENOSPC\)"
    ):
        from overtonlite.scoring import score_input

        score_input(src, out=out, embedder=HashEmbedder())
    assert (out / "metrics.jsonl").read_text() == "old\n"
    _no_temp_files(out)


# ------------------------------------------------------------------------------ a real read-only file system
def test_read_only_run_directory(small_fs: Path, tmp_path: Path) -> None:
    out = small_fs / "run"
    out.mkdir()
    _remount_ro(small_fs)
    proc = run_cli(*FAKE, "--prompts", "builtin:open-ended", "--limit", "2", "--out", str(out))
    one_line_error(proc, 2, str(out), "not writable")
    new = small_fs / "new"
    proc = run_cli(*FAKE, "--prompts", "builtin:open-ended", "--limit", "2", "--out", str(new))
    one_line_error(proc, 2, str(new), "not writable")
    assert not new.exists()
    with pytest.raises(Exception, match="not writable") as info:  # score --out through the library
        from overtonlite.scoring import score_input

        score_input(_responses(tmp_path / "r.jsonl"), out=out, embedder=HashEmbedder())
    assert "Traceback" not in str(info.value) and "\n" not in str(info.value)


def test_read_only_file_system_under_a_writable_looking_directory(small_fs: Path, tmp_path: Path) -> None:
    """os.access can be fooled (root, ACLs): the write itself fails with EROFS and still gives one line."""
    out = small_fs / "scores"
    out.mkdir()
    _remount_ro(small_fs)
    with pytest.raises(StorageError, match=r"\(EROFS\).*read-only"):
        write_text_atomic(out / "metrics.jsonl", "x\n")
    _no_temp_files(out)


# ------------------------------------------------------------------------ injected failures (no root needed)
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_lock_pid_write_failure_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    def failing_pwrite(fd: int, data: bytes, offset: int) -> int:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "pwrite", failing_pwrite)
    run = RunDir(tmp_path / "run")
    with pytest.raises(StorageError) as info:
        with run.lock():
            pass
    msg = str(info.value)
    assert msg.startswith(
        f"cannot write lock file {run.lock_path}: {os.strerror(code)} ({errno.errorcode[code]})"
    )
    assert "\n" not in msg
    monkeypatch.undo()
    with run.lock():  # the failed attempt released the lock
        pass


@pytest.mark.parametrize("stage", ["write", "fsync", "replace"])
def test_atomic_write_failure_cleans_its_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    target = tmp_path / "metrics.jsonl"
    target.write_text("old\n")

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if stage == "write":
        monkeypatch.setattr(os, "fdopen", lambda *a, **k: _FailingFile())
    else:
        monkeypatch.setattr(os, stage, boom)
    with pytest.raises(StorageError, match=rf"cannot write {target}: No space left on device \(ENOSPC\)"):
        write_text_atomic(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]


class _FailingFile:
    def __enter__(self) -> _FailingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_temp_names_are_unique(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real_replace = os.replace

    def spy(src: str, dst: object) -> None:
        seen.append(os.path.basename(src))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    for _ in range(3):
        write_text_atomic(tmp_path / "summary.json", "{}\n")
    assert len(set(seen)) == 3 and all(name.startswith(".summary.json.") for name in seen)


def test_oserror_escaping_a_command_is_one_line(tmp_path: Path) -> None:
    """The central mapping: an OSError that no library code caught still becomes ``Error: cannot ...``."""
    from click.testing import CliRunner

    from overtonlite.cli import cli, to_user_error

    err = to_user_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/x"))
    assert (
        str(err)
        == "cannot write /data/x: No space left on device (ENOSPC): the disk is full; free some space"
    )
    assert str(io_error(OSError(errno.EACCES, "Permission denied"), "/d/f", action="read")).startswith(
        "cannot read /d/f: Permission denied (EACCES): permission denied"
    )
    assert to_user_error(ValueError("bug")) is None  # a bug keeps its traceback

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "o" / "summary.json"))

    import overtonlite.scoring

    src = _responses(tmp_path / "r.jsonl")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(overtonlite.scoring, "score_input", disk_full)
        res = CliRunner().invoke(cli, ["score", str(src), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and res.exception is None or isinstance(res.exception, SystemExit)
    assert res.output.strip() == (
        f"Error: cannot write {tmp_path / 'o' / 'summary.json'}: No space left on device (ENOSPC): the disk is "
        "full; free some space"
    )


# ------------------------------------------------------------------------------ two processes, one directory
def test_second_process_on_a_run_directory_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "overtonlite", *FAKE, "--prompts", "builtin:open-ended", "--limit", "10",
           "--fake-delay", "0.5", "--out", str(out)]  # fmt: skip
    first = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (out / "samples.jsonl").exists():
            time.sleep(0.05)
        assert first.poll() is None, first.communicate()
        second = run_cli(*FAKE, "--prompts", "builtin:open-ended", "--limit", "10", "--out", str(out))
        one_line_error(second, 1, f"run directory {out} is in use by process {first.pid}")
        score = run_cli("score", str(out), "--out", str(out))
        one_line_error(score, 1, f"run directory {out} is in use by process {first.pid}")
        assert first.poll() is None  # the first run was not disturbed
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    _whole_lines(out / "samples.jsonl")


def test_score_takes_the_run_lock(tmp_path: Path) -> None:
    from overtonlite.scoring import score_input

    src = _responses(tmp_path / "r.jsonl")
    out = RunDir(tmp_path / "scores")
    with out.lock():
        with pytest.raises(RunLockedError, match="is in use by process"):
            score_input(src, out=out.path, embedder=HashEmbedder())
    assert not out.metrics_path.exists()
    score_input(src, out=out.path, embedder=HashEmbedder())
    assert out.metrics_path.exists()
    _no_temp_files(out.path)


# ---------------------------------------------------------------------------------------------- double Ctrl-C
def _double_ctrl_c(cmd: list[str], out: Path, *, gap: float, wait_groups: int = 1) -> tuple[float, str, int]:
    """Start ``cmd``, wait for ``wait_groups`` written groups, press Ctrl-C twice ``gap`` seconds apart; returns
    (seconds from the second press to exit, stderr, groups written when the first press came)."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    samples = out / "samples.jsonl"
    deadline = time.monotonic() + 600
    while (
        time.monotonic() < deadline
        and proc.poll() is None
        and (not samples.exists() or samples.read_bytes().count(b"\n") < wait_groups)
    ):
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    before = samples.read_bytes().count(b"\n")
    proc.send_signal(signal.SIGINT)
    time.sleep(gap)
    proc.send_signal(signal.SIGINT)
    pressed = time.monotonic()
    _, err = proc.communicate(timeout=120)
    took = time.monotonic() - pressed
    assert proc.returncode == 130, err
    return took, err, before


def test_double_ctrl_c_stops_within_a_second_keeping_finished_groups(tmp_path: Path) -> None:
    """Each fake group takes 4 s: one press would wait for the next group; two presses stop at once."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "overtonlite", *FAKE, "--prompts", "builtin:open-ended", "--limit", "6",
           "--fake-delay", "4", "--out", str(out)]  # fmt: skip
    took, err, before = _double_ctrl_c(cmd, out, gap=0.3)
    assert took < 2.0, (took, err)
    assert "interrupted; rerun the same command to resume" in err and "Traceback" not in err
    kept = _whole_lines(out / "samples.jsonl")
    assert len(kept) == before  # the group in flight was dropped, every finished one kept
    assert all(len(r["samples"]) == 2 for r in kept)
    rerun = run_cli(*cmd[3:-4], "--fake-delay", "0", "--out", str(out), "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["groups_skipped"] == before


def test_single_ctrl_c_still_waits_for_the_group_in_flight(tmp_path: Path) -> None:
    """The control for the test above: with one press the run finishes the group in flight (about 2 s here)."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "overtonlite", *FAKE, "--prompts", "builtin:open-ended", "--limit", "6",
           "--fake-delay", "2", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    samples = out / "samples.jsonl"
    while proc.poll() is None and (not samples.exists() or not samples.read_bytes().count(b"\n")):
        time.sleep(0.02)
    # the line is on disk a moment before the run looks at the stop flag for that group: a press in that window
    # counts for the group just written (CI once hit it), so press well inside the next group's 2 s
    time.sleep(0.5)
    before = samples.read_bytes().count(b"\n")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert len(_whole_lines(samples)) == before + 1  # the next group was written, then it stopped


@pytest.mark.realmodel
def test_double_ctrl_c_on_llama_cpp_stops_within_a_second(
    tmp_path: Path, default_pair, default_chat_path
) -> None:
    """The real engine: the second press aborts the native decode in progress (it may take seconds to return on
    a busy CPU) instead of waiting for it."""
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "overtonlite",
        "sample",
        "--model",
        default_pair.chat,
        "--prompts",
        "builtin:open-ended",
        "--limit",
        "12",
        "--n",
        "4",
        "--max-tokens",
        "128",
        "--seed",
        "3",
        "--out",
        str(out),
    ]
    took, err, before = _double_ctrl_c(cmd, out, gap=0.3)
    assert took < 2.0, (took, err)
    kept = _whole_lines(out / "samples.jsonl")
    assert len(kept) >= before and all(len(r["samples"]) == 4 for r in kept)


# ------------------------------------------------------------------------------ score drops nothing in silence
def test_score_duplicate_record_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    rows = [
        {"system": "a", "prompt_id": "p1", "samples": ["x y", "y z"]},
        {"system": "a", "prompt_id": "p2", "samples": ["x y", "y z"]},
        {"system": "a", "prompt_id": 1, "samples": ["q r"]},
        {"system": "a", "prompt_id": "p1", "samples": ["other", "texts"]},
    ]
    src = _responses(tmp_path / "dup.jsonl", rows)
    proc = run_cli("score", str(src), "--out", str(tmp_path / "o"))
    one_line_error(proc, 2, f"{src}:4: duplicate record for system 'a', prompt 'p1' (also at line 1)")
    assert not (tmp_path / "o" / "metrics.jsonl").exists()


def test_score_accepts_a_retried_failed_group(tmp_path: Path) -> None:
    """What ``sample --retry-errors`` writes: a failed group and, later, its retry. The retry counts."""
    from overtonlite.scoring import score_input

    rows = [
        {"system": "a", "prompt_id": "p1", "error": "prompt_too_long", "samples": []},
        {"system": "a", "prompt_id": "p2", "samples": ["x y", "y z"]},
        {"system": "a", "prompt_id": "p1", "samples": ["u v", "v w"]},
    ]
    s = score_input(_responses(tmp_path / "r.jsonl", rows), out=tmp_path / "o", embedder=HashEmbedder())
    assert s.n_groups == 2 and not s.errors


def test_score_reports_a_torn_last_line(tmp_path: Path) -> None:
    from overtonlite.errors import OvertonliteWarning
    from overtonlite.scoring import score_input

    src = _responses(tmp_path / "r.jsonl", tail='{"system": "a", "prompt_id": "p3", "samp')
    with pytest.warns(OvertonliteWarning, match=rf"{src}:3: the last line is incomplete .* was skipped"):
        s = score_input(src, out=tmp_path / "o", embedder=HashEmbedder())
    assert s.n_groups == 2
    with pytest.raises(DataError, match=r":3: invalid JSON"):  # the same line in the middle is an error
        read_groups(_responses(tmp_path / "m.jsonl", tail='{"torn"\n{"system": "a"}\n'), strict=True)


def test_sampling_still_resumes_over_a_torn_tail_without_a_warning(tmp_path: Path) -> None:
    import warnings

    src = _responses(tmp_path / "samples.jsonl", tail='{"system": "a", "pro')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_groups(src)) == 2


# ------------------------------------------------------------------------------------------ small validations
def test_non_utf8_prompts_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "p.jsonl"
    bad.write_bytes(b'{"prompt": "one"}\n{"prompt": "two"}\n{"prompt": "caf\xe9"}\n')
    proc = run_cli(*FAKE, "--prompts", str(bad), "--out", str(tmp_path / "run"))
    one_line_error(proc, 2, f"{bad}:3: not valid UTF-8 (byte 0xe9 at column 16)")
    csv = tmp_path / "p.csv"
    csv.write_bytes(b"prompt\nfine\n\xff\xfe broken\n")
    one_line_error(
        run_cli(*FAKE, "--prompts", str(csv), "--out", str(tmp_path / "run")), 2, f"{csv}:3: not valid"
    )
    assert not (tmp_path / "run").exists()


def test_corrupt_manifest_message_is_complete(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "manifest.json").write_text('{"systems": {"a": "unterminated')
    proc = run_cli(*FAKE, "--prompts", "builtin:contested", "--limit", "1", "--out", str(out))
    line = one_line_error(
        proc, 2, f"{out / 'manifest.json'}:1: invalid JSON (Unterminated string starting at column"
    )
    assert line.endswith("fix or remove the file")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threads", "0"], "--threads must be >= 1, got 0"),
        (["--threads", "-1"], "--threads must be >= 1, got -1"),
        (["--timeout", "0"], "--timeout must be > 0, got 0"),
        (["--max-seqs", "0"], "--max-seqs must be >= 1, got 0"),
        (["--concurrency", "0"], "--concurrency must be >= 1, got 0"),
    ],
)
def test_out_of_range_options_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "run"
    one_line_error(run_cli(*FAKE, "--prompts", "builtin:contested", *args, "--out", str(out)), 2, message)
    assert not out.exists()


def test_replicate_with_an_unknown_pair_leaves_no_directory(tmp_path: Path) -> None:
    out = tmp_path / "rep"
    one_line_error(run_cli("replicate", "--pair", "nosuch", "--out", str(out)), 2, "unknown pair 'nosuch'")
    assert not out.exists()
    one_line_error(run_cli("replicate", "--threads", "-1", "--out", str(out)), 2, "--threads must be >= 1")
    assert not out.exists()


def test_short_context_warns_once(tmp_path: Path) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "long", "prompt": " ".join(["w"] * 60)}) + "\n"
                       + json.dumps({"id": "short", "prompt": "hi"}) + "\n")  # fmt: skip
    proc = run_cli(*FAKE, "--prompts", str(prompts), "--ctx", "80", "--max-tokens", "30", "--out",
                   str(tmp_path / "run"), "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("Warning:")]
    assert len(warnings) == 1, proc.stderr
    assert "1 prompt(s) leave less than --max-tokens 30 of the 80-token context" in warnings[0]
    assert "prompt 'long'" in warnings[0]


# ---------------------------------------------------------------------------------------- portable manifests
def test_portable_path() -> None:
    from overtonlite.rundir.manifest import portable, portable_path

    home = Path.home()
    assert portable_path(home / "runs" / "x") == "~/runs/x"
    assert portable_path("relative/x.gguf") == "relative/x.gguf"
    assert portable_path("/opt/models/x.gguf") == "/opt/models/x.gguf"
    assert portable({"a": [str(home / "m.gguf")], "n": 3}) == {"a": ["~/m.gguf"], "n": 3}


def test_manifest_has_no_home_paths(tmp_path: Path, tiny_gguf: Path) -> None:
    pytest.importorskip("llama_cpp")
    home = tmp_path / "ohome"
    model = home / "models" / "t.gguf"
    model.parent.mkdir(parents=True)
    model.write_bytes(tiny_gguf.read_bytes())
    out = tmp_path / "run"
    proc = run_cli("sample", "--model", str(model), "--prompts", "builtin:contested", "--limit", "1", "--n", "1",
                   "--max-tokens", "2", "--ctx", "256", "--threads", "1", "--out", str(out),
                   env=_env(OVERTONLITE_HOME=str(home)))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = (out / "manifest.json").read_text()
    manifest = json.loads(text)
    assert manifest["systems"]["t"]["backend"]["model_path"] == "$OVERTONLITE_HOME/models/t.gguf"
    assert str(home) not in text and str(Path.home()) not in text
    assert str(Path.home()) not in (out / "samples.jsonl").read_text()


# ------------------------------------------------------------------------------------------ trust on first use
def test_tofu_never_records_a_broken_file_and_forget_resets(
    tmp_path: Path,
    registry: dict[str, Path],  # noqa: F811 - the fixture imported above
) -> None:
    env = reg_env(registry)
    good = registry["tofu"].read_bytes()
    registry["tofu"].write_bytes(good[: len(good) // 2])  # truncated before its first use
    out = tmp_path / "run"
    sample = ["sample", "--model", "tofu", "--prompts", "builtin:contested", "--limit", "1", "--n", "1",
              "--max-tokens", "2", "--ctx", "256", "--threads", "1", "--out", str(out)]  # fmt: skip
    one_line_error(run_cli(*sample, env=env), 1, "tofu:", "cannot be loaded", "its hash was not recorded")
    hashes = registry["home"] / "hashes.json"
    assert not hashes.exists() or not json.loads(hashes.read_text())
    registry["tofu"].write_bytes(good)  # the right file is accepted afterwards
    assert run_cli(*sample, env=env).returncode == 0
    assert [v["sha256"] for v in json.loads(hashes.read_text()).values()] == [sha(registry["tofu"])]
    # a recorded hash can be reset
    proc = run_cli("models", "forget", "tofu", env=env)
    assert proc.returncode == 0 and "forgot the recorded sha256 of tofu.gguf" in proc.stderr, proc.stderr
    assert json.loads(hashes.read_text()) == {}
    one_line_error(run_cli("models", "forget", "tofu", env=env), 2, "no hash was recorded")
    one_line_error(run_cli("models", "forget", "good", env=env), 2, "pinned in models.toml")


def test_stale_verification_warns_once(
    tmp_path: Path,
    registry: dict[str, Path],  # noqa: F811 - the fixture imported above
) -> None:
    env = reg_env(registry)
    assert run_cli("models", "info", "good", env=env).returncode == 0  # verified and stamped
    stamps_path = registry["home"] / "verified.json"
    stamps = json.loads(stamps_path.read_text())
    key = str(registry["good"].resolve())
    stamps[key]["verified_at"] = int(time.time()) - 40 * 86400
    stamps_path.write_text(json.dumps(stamps))
    sample = ["sample", "--model", "good", "--prompts", "builtin:contested", "--limit", "1", "--n", "1",
              "--max-tokens", "2", "--ctx", "256", "--threads", "1"]  # fmt: skip
    proc = run_cli(*sample, "--out", str(tmp_path / "a"), env=env)
    assert proc.returncode == 0, proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("Warning:")]
    assert warnings == [
        f"Warning: good: {key} was last rehashed 40 days ago (only its size and mtime are checked on use); "
        "run: overtonlite models verify good"
    ], proc.stderr
    assert run_cli("models", "verify", "good", env=env).returncode == 0  # the deep check resets the clock
    proc = run_cli(*sample, "--out", str(tmp_path / "b"), env=env)
    assert proc.returncode == 0 and "Warning:" not in proc.stderr, proc.stderr
