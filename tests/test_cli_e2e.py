"""`overtonlite sample` end to end through the console entry, as a user runs it: the files it writes (the stable
samples.jsonl / manifest.json interface), what it prints when stderr is a log file, and resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GROUP_KEYS = {"system", "model", "model_sha256", "prompt_id", "prompt", "rendered_prompt_sha256", "config_hash",
              "key", "n", "seed", "sampling", "prompt_tokens", "error", "set", "samples"}  # fmt: skip
SAMPLE_KEYS = {"text", "n_tokens", "finish_reason", "seed", "max_tokens"}
MANIFEST_KEYS = {"overtonlite_version", "created", "updated", "git_revision", "python", "packages", "systems",
                 "signature"}  # fmt: skip


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "overtonlite", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def check_run(out: Path, *, system: str, n: int, max_tokens: int, groups: int) -> list[dict]:
    """samples.jsonl and manifest.json of a finished run have the documented shape."""
    lines = (out / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == groups
    for rec in records:
        assert GROUP_KEYS <= set(rec), GROUP_KEYS - set(rec)
        assert rec["system"] == system and rec["n"] == n and rec["error"] is None
        assert len(rec["model_sha256"]) == 64 and len(rec["rendered_prompt_sha256"]) == 64
        assert rec["sampling"]["max_tokens"] == max_tokens and rec["prompt_tokens"] > 0
        assert len(rec["samples"]) == n and len({s["seed"] for s in rec["samples"]}) == n
        for s in rec["samples"]:
            assert SAMPLE_KEYS <= set(s) and s["finish_reason"] in {"stop", "eos", "length"}
            assert 0 <= s["n_tokens"] <= max_tokens and s["max_tokens"] == max_tokens
    assert len({r["key"] for r in records}) == groups and len({r["config_hash"] for r in records}) == 1
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert MANIFEST_KEYS <= set(manifest)
    entry = manifest["systems"][system]
    assert entry["n"] == n and entry["config"]["max_tokens"] == max_tokens
    assert entry["model_sha256"] == records[0]["model_sha256"] and entry["backend"]
    assert manifest["signature"].startswith("overtonlite ") and f"n={n}" in manifest["signature"]
    assert "\n" not in manifest["signature"]
    assert (out / "manifest.json").stat().st_mode & 0o044 == 0o044  # readable like samples.jsonl
    return records


def test_tiny_gguf_run_files_log_and_resume(tmp_path: Path, tiny_gguf: Path) -> None:
    pytest.importorskip("llama_cpp")
    out = tmp_path / "run"
    args = ["sample", "--model", str(tiny_gguf), "--prompts", "builtin:open-ended", "--n", "3", "--max-tokens",
            "8", "--ctx", "256", "--threads", "1", "--mode", "raw", "--out", str(out)]  # fmt: skip
    first = run_cli(*args, "--limit", "4")
    assert first.returncode == 0, first.stderr
    # stderr is a pipe here: plain lines, no progress-bar redraws and no stray blank lines
    assert "\r" not in first.stderr and "\x1b[" not in first.stderr
    assert first.stderr.startswith(f"{tiny_gguf.stem}: 4 of 4 groups to sample\n")
    assert "signature" in first.stdout and "\x1b[" not in first.stdout  # the summary table: stdout, plain
    records = check_run(out, system=tiny_gguf.stem, n=3, max_tokens=8, groups=4)
    assert {r["set"] for r in records} == {"open-ended"}
    second = run_cli(*args, "--limit", "6")
    assert second.returncode == 0, second.stderr
    assert "2 of 6 groups to sample (4 already in the run)" in second.stderr
    again = check_run(out, system=tiny_gguf.stem, n=3, max_tokens=8, groups=6)
    assert again[:4] == records  # the first groups are untouched
    third = run_cli(*args, "--limit", "6", "--json")
    assert third.returncode == 0, third.stderr
    summary = json.loads(third.stdout)
    assert (summary["groups_skipped"], summary["groups_done"], summary["complete"]) == (6, 0, True)
    assert third.stderr == ""  # --json: nothing but the JSON summary on stdout


@pytest.mark.realmodel
def test_real_chat_model_run_and_resume(tmp_path: Path, default_pair, default_chat_path: Path) -> None:
    out = tmp_path / "run"
    args = ["sample", "--model", default_pair.chat, "--prompts", "builtin:open-ended", "--n", "3",
            "--max-tokens", "32", "--threads", "1", "--out", str(out)]  # fmt: skip
    first = run_cli(*args, "--limit", "2")
    assert first.returncode == 0, first.stderr
    records = check_run(out, system=default_pair.chat, n=3, max_tokens=32, groups=2)
    for rec in records:
        assert rec["mode"] == "chat" and len({s["text"] for s in rec["samples"]}) > 1
    second = run_cli(*args, "--limit", "3", "--json")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["groups_skipped"] == 2
    check_run(out, system=default_pair.chat, n=3, max_tokens=32, groups=3)
