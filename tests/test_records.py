"""Run directories: append-only records, torn lines, the writer lock, and reading records back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from overtonlite.errors import DataError, RunLockedError, UsageError
from overtonlite.rundir.records import RunDir, read_groups, read_json_object


def _rec(
    system: str, pid: str, key: str, *, error: str | None = None, texts: tuple[str, ...] = ("a", "b")
) -> dict:
    samples = (
        []
        if error
        else [{"text": t, "n_tokens": 1, "finish_reason": "eos", "seed": i} for i, t in enumerate(texts)]
    )
    return {"system": system, "prompt_id": pid, "key": key, "error": error, "samples": samples}


def test_rundir_creates_nested_dir(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "a" / "b")
    assert run.path.is_dir()
    assert run.samples_path == tmp_path / "a" / "b" / "samples.jsonl"
    assert run.manifest_path.name == "manifest.json"
    assert run.metrics_path.name == "metrics.jsonl"
    assert run.read_groups() == []
    assert run.existing_keys("x") == set()


def test_rundir_unusable_path_is_one_line_error(tmp_path: Path) -> None:
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(UsageError, match="not a directory") as info:
        RunDir(afile)
    assert "\n" not in str(info.value)
    with pytest.raises(UsageError, match="cannot create run directory"):
        RunDir(afile / "sub")


def test_append_and_read_round_trip(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.append_group(_rec("s1", "p1", "k1"))
    run.append_group(_rec("s2", "p1", "k2", texts=("é ünïcode", "z")))
    run.append_group(_rec("s1", "p2", "k3", error="prompt_too_long"))
    lines = run.samples_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and all(json.loads(x) for x in lines)
    groups = read_groups(tmp_path)
    assert [(g["system"], g["prompt_id"]) for g in groups] == [("s1", "p1"), ("s2", "p1"), ("s1", "p2")]
    assert groups[1]["samples"][0]["text"] == "é ünïcode"
    assert read_groups(run.samples_path) == groups
    assert run.existing_keys("s1") == {"k1", "k3"}
    assert run.existing_keys("s1", include_errors=False) == {"k1"}
    assert run.existing_keys("s2") == {"k2"}


def test_torn_last_line_ignored_then_cut_before_next_append(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.append_group(_rec("s", "p1", "k1"))
    run.append_group(_rec("s", "p2", "k2"))
    full = json.dumps(_rec("s", "p3", "k3"))
    with open(run.samples_path, "a", encoding="utf-8") as fh:
        fh.write(full[: len(full) // 2])  # a crash in the middle of a write
    assert [g["prompt_id"] for g in read_groups(tmp_path)] == ["p1", "p2"]
    assert run.existing_keys("s") == {"k1", "k2"}
    run.append_group(_rec("s", "p3", "k3"))
    lines = run.samples_path.read_text().splitlines()
    assert [json.loads(x)["prompt_id"] for x in lines] == ["p1", "p2", "p3"]


def test_complete_record_missing_only_its_newline_is_kept(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.append_group(_rec("s", "p1", "k1"))
    with open(run.samples_path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(_rec("s", "p2", "k2")))  # no trailing newline
    assert [g["prompt_id"] for g in read_groups(tmp_path)] == ["p1", "p2"]
    run.append_group(_rec("s", "p3", "k3"))
    assert [json.loads(x)["prompt_id"] for x in run.samples_path.read_text().splitlines()] == [
        "p1",
        "p2",
        "p3",
    ]


def test_torn_only_line(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.samples_path.write_text('{"system": "s", "prom')
    assert read_groups(tmp_path) == []
    run.append_group(_rec("s", "p1", "k1"))
    assert run.samples_path.read_text().count("\n") == 1
    assert [g["prompt_id"] for g in read_groups(tmp_path)] == ["p1"]


def test_plain_string_samples_and_int_ids_are_normalised(tmp_path: Path) -> None:
    path = tmp_path / "responses.jsonl"
    path.write_text(json.dumps({"system": "ref", "prompt_id": 3, "samples": ["one", "two"]}) + "\n")
    [group] = read_groups(path)
    assert group["prompt_id"] == "3"
    assert group["samples"] == [{"text": "one"}, {"text": "two"}]


def test_retried_group_last_record_wins(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.append_group(_rec("s", "p1", "k1", error="prompt_too_long"))
    run.append_group(_rec("s", "p2", "k2"))
    run.append_group(_rec("s", "p1", "k1"))
    groups = read_groups(tmp_path)
    assert [(g["prompt_id"], g["error"]) for g in groups] == [("p2", None), ("p1", None)]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("not json", "invalid JSON"),
        ("[1]", "expected a JSON object"),
        ('{"prompt_id": "p", "samples": []}', "'system'"),
        ('{"system": "s", "samples": []}', "'prompt_id'"),
        ('{"system": "s", "prompt_id": "p"}', "'samples' must be a list"),
        ('{"system": "s", "prompt_id": "p", "samples": [3]}', "samples[0]"),
        ('{"system": "s", "prompt_id": "p", "samples": [{"txt": "x"}]}', "samples[0]"),
        ('{"system": "s", "prompt_id": "p", "samples": [], "error": 5}', "'error'"),
    ],
)
def test_malformed_record_names_file_and_line(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "samples.jsonl"
    good = json.dumps(_rec("s", "p0", "k0"))
    path.write_text(f"{good}\n{line}\n{good}\n")
    with pytest.raises(DataError) as info:
        read_groups(path)
    assert str(info.value).startswith(f"{path}:2: ")
    assert reason in str(info.value)


def test_read_groups_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_groups(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="samples.jsonl: no such file"):
        read_groups(tmp_path)


def test_lock_twice_in_one_process_names_pid(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    with run.lock():
        assert run.lock_path.read_text().strip() == str(os.getpid())
        with pytest.raises(RunLockedError, match=f"process {os.getpid()}"):
            with RunDir(tmp_path).lock():
                pass
    with run.lock():  # released: can be taken again
        pass


def test_lock_held_by_another_process(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys, time
        from overtonlite.rundir.records import RunDir
        with RunDir({str(tmp_path)!r}).lock():
            print("locked", flush=True)
            sys.stdin.readline()
        """
    )
    repo = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=repo
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError) as info:
            with RunDir(tmp_path).lock():
                pass
        assert f"process {proc.pid}" in str(info.value)
        assert info.value.exit_code == 1
    finally:
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.close()
        proc.wait(timeout=30)
    with RunDir(tmp_path).lock():  # the other process is gone: the lock is free
        pass


def test_reference_responses_read_as_groups(reference_dir: Path) -> None:
    groups = read_groups(reference_dir / "lima-oe" / "responses.jsonl")
    assert len({g["system"] for g in groups}) >= 5
    assert all(isinstance(g["prompt_id"], str) for g in groups)
    assert all(set(s) == {"text"} and isinstance(s["text"], str) for g in groups for s in g["samples"])


def test_read_json_object(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    assert read_json_object(path) is None
    path.write_text('{"a": [1, 2]}')
    assert read_json_object(path) == {"a": [1, 2]}
    path.write_text('{\n  "a": 1,\n  "b": \n}')
    with pytest.raises(DataError, match=r"results\.json:4: invalid JSON"):
        read_json_object(path)
    path.write_text("[1, 2]")
    with pytest.raises(DataError, match=r"results\.json:1: expected a results object, got list"):
        read_json_object(path, what="a results object")
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(DataError, match=r"results\.json:1: not valid UTF-8 \(byte 0xff at column 8\)"):
        read_json_object(path)
