"""`overtonlite sample`: the command end to end, its exit codes, Ctrl-C and resume."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from overtonlite.cli import cli, main
from overtonlite.rundir.records import RunDir, read_groups

REPO = Path(__file__).resolve().parent.parent
FAKE = ["sample", "--backend", "fake", "--model", "fk", "--n", "2", "--max-tokens", "16"]


def _run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_fake_run_then_resume_json(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "run"
    args = [*FAKE, "--prompts", "builtin:contested", "--limit", "3", "--out", str(out)]
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "signature" in first.stdout and "3 total" in first.stdout  # the summary table: stdout
    assert len(read_groups(out)) == 3
    second = runner.invoke(cli, [*args[:-4], "--limit", "5", "--out", str(out), "--json"])
    assert second.exit_code == 0, second.output
    summary = json.loads(second.stdout)
    assert (summary["groups_total"], summary["groups_done"], summary["groups_skipped"]) == (5, 2, 3)
    assert summary["complete"] is True and summary["signature"].startswith("overtonlite ")
    groups = read_groups(out)
    assert len(groups) == 5 and {g["set"] for g in groups} == {"contested"}
    assert all(len(g["samples"]) == 2 and g["samples"][0]["max_tokens"] == 16 for g in groups)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["systems"]["fk"]["config"]["max_tokens"] == 16


def test_system_name_stop_and_sampling_options(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(
        cli,
        [*FAKE, "--prompts", "builtin:open-ended", "--limit", "2", "--out", str(tmp_path), "--system", "mine",
         "--temperature", "0.9", "--top-k", "40", "--top-p", "0.9", "--repetition-penalty", "1.0",
         "--stop", "\n", "--stop", "###", "--seed", "4", "--mode", "raw", "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    [g, _] = read_groups(tmp_path)
    assert g["system"] == "mine" and g["model"] == "fk" and g["mode"] == "raw" and g["seed"] == 4
    assert g["sampling"] == {"temperature": 0.9, "repetition_penalty": 1.0, "top_p": 0.9, "top_k": 40,
                             "min_p": 0.0, "max_tokens": 16, "stop": ["\n", "###"]}  # fmt: skip
    assert all("\n" not in s["text"] for s in g["samples"])
    sig = json.loads(res.stdout)["signature"]
    assert "n=2 T=0.9 rp=1 top_p=0.9 top_k=40 max_tokens=16" in sig


def test_prompt_too_long_is_recorded_and_reported(tmp_path: Path) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "a", "prompt": "short one"}\n{"id": "b", "prompt": "' + "long " * 40 + '"}\n')
    res = CliRunner().invoke(
        cli, [*FAKE, "--prompts", str(prompts), "--ctx", "10", "--out", str(tmp_path / "r")]
    )
    assert res.exit_code == 0, res.output
    assert "1 group(s) recorded with an error" in res.stderr
    errors = {g["prompt_id"]: g["error"] for g in read_groups(tmp_path / "r")}
    assert errors == {"a": None, "b": "prompt_too_long"}


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--prompts", "builtin:nope"], 2, "unknown built-in prompt set"),
        (["--prompts", "{bad}"], 2, "no such file"),
        (["--prompts", "builtin:contested", "--temperature", "-1"], 2, "temperature must be >= 0"),
        (["--prompts", "builtin:contested", "--limit", "0"], 2, "--limit must be >= 1"),
        (["--prompts", "builtin:contested", "--n", "0"], 2, "--n must be >= 1"),
    ],
)
def test_usage_errors_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], code: int,
                                 message: str) -> None:  # fmt: skip
    args = [
        *FAKE,
        "--out",
        str(tmp_path / "r"),
        *[a.replace("{bad}", str(tmp_path / "x.jsonl")) for a in extra],
    ]
    rc, _, err = _run_main(args, capsys)
    assert rc == code
    assert err.startswith("Error: ") and message in err and err.count("\n") == 1


def test_malformed_prompt_file_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": oops}\n')
    rc, _, err = _run_main([*FAKE, "--prompts", str(bad), "--out", str(tmp_path / "r")], capsys)
    assert rc == 2 and f"Error: {bad}:2: invalid JSON" in err
    csv = tmp_path / "bad.csv"
    csv.write_text("question\nwhy?\n")
    rc, _, err = _run_main([*FAKE, "--prompts", str(csv), "--out", str(tmp_path / "r")], capsys)
    assert rc == 2 and f"Error: {csv}:1:" in err
    assert not (tmp_path / "r" / "samples.jsonl").exists()


def test_locked_and_mixed_config_runs_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    base = [*FAKE, "--prompts", "builtin:contested", "--limit", "2", "--out", str(out)]
    assert _run_main(base, capsys)[0] == 0
    with RunDir(out).lock():
        rc, _, err = _run_main(base, capsys)
    assert rc == 1 and "is in use by process" in err
    rc, _, err = _run_main([*base, "--seed", "9"], capsys)
    assert rc == 2 and "other settings" in err and "seed: 0 -> 9" in err
    assert len(read_groups(out)) == 2


def test_openai_backend_needs_base_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "sample",
        "--backend",
        "openai",
        "--model",
        "m",
        "--prompts",
        "builtin:contested",
        "--out",
        str(tmp_path),
    ]
    rc, _, err = _run_main(args, capsys)
    assert rc == 2 and "--base-url" in err


def test_unknown_registry_model_lists_known(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["sample", "--model", "no-such-model", "--prompts", "builtin:contested", "--out", str(tmp_path)]
    rc, _, err = _run_main(args, capsys)
    assert rc == 2 and "no-such-model" in err and "smollm2-135m-instruct" in err


def test_missing_gguf_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "sample",
        "--model",
        str(tmp_path / "m.gguf"),
        "--prompts",
        "builtin:contested",
        "--out",
        str(tmp_path),
    ]
    rc, _, err = _run_main(args, capsys)
    assert rc == 2 and "does not exist" in err


def test_sigint_stops_at_a_group_boundary_and_rerun_completes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "overtonlite", *FAKE, "--prompts", "builtin:open-ended", "--limit", "10",
           "--fake-delay", "0.25", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    samples = out / "samples.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not samples.exists() or samples.read_text().count("\n") < 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted; rerun the same command to resume" in err
    kept = [json.loads(x)["prompt_id"] for x in samples.read_text().splitlines()]
    assert 2 <= len(kept) < 10
    assert samples.read_bytes().endswith(b"\n")
    rerun = subprocess.run(cmd[:-4] + ["--out", str(out), "--json"], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["groups_skipped"] == len(kept) and summary["groups_done"] == 10 - len(kept)
    ids = [json.loads(x)["prompt_id"] for x in samples.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 10


def test_tiny_gguf_by_path(tmp_path: Path, tiny_gguf: Path) -> None:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("overtonlite.backends.llamacpp")
    args = ["sample", "--model", str(tiny_gguf), "--prompts", "builtin:contested", "--limit", "2", "--n", "2",
            "--max-tokens", "6", "--ctx", "256", "--threads", "1", "--out", str(tmp_path), "--json"]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    groups = read_groups(tmp_path)
    sha = hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
    assert len(groups) == 2 and all(
        g["model_sha256"] == sha and g["system"] == tiny_gguf.stem for g in groups
    )
    assert all(len(g["samples"]) == 2 for g in groups)


@pytest.mark.realmodel
def test_real_chat_model_sample(tmp_path: Path, default_pair, default_chat_path: Path) -> None:
    args = ["sample", "--model", default_pair.chat, "--prompts", "builtin:open-ended", "--limit", "2", "--n", "3",
            "--max-tokens", "32", "--threads", "1", "--out", str(tmp_path), "--json"]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["groups_done"] == 2 and summary["tokens"] > 0
    groups = read_groups(tmp_path)
    assert len(groups) == 2
    for g in groups:
        assert g["mode"] == "chat" and g["error"] is None and len(g["samples"]) == 3
        assert all(
            s["n_tokens"] <= 32 and s["finish_reason"] in {"stop", "eos", "length"} for s in g["samples"]
        )
        assert len({s["text"] for s in g["samples"]}) > 1
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["systems"][default_pair.chat]["backend"]
    assert manifest["packages"]["llama_cpp"]


def test_sequence_budget_rule_and_resume_keeps_the_recorded_budget(tmp_path: Path, tiny_gguf: Path) -> None:
    pytest.importorskip("llama_cpp")
    from overtonlite.backends.llamacpp import cells_per_sequence, kv_bytes_per_cell, sequence_budget
    from overtonlite.rundir.manifest import read_manifest

    # the rule: the largest budget whose KV cache fits an eighth of the memory; 16 when either is unknown
    cell = 23040  # SmolLM2-135M: 30 layers x 3 KV heads x (64 + 64) dims x 2 bytes
    assert sequence_budget(cell, 512, 24 << 30) == 32
    assert sequence_budget(cell, 512, 2 << 30) == 16
    assert sequence_budget(cell, 512, 1 << 30) == 8
    assert sequence_budget(cell, 144, 1 << 30) == 32  # short samples need fewer cells per sequence
    assert sequence_budget(0, 512, 1 << 30) == sequence_budget(cell, 512, 0) == 16
    assert (
        cells_per_sequence(80) == 144 and cells_per_sequence(None) == 512 and cells_per_sequence(4000) == 512
    )
    assert cells_per_sequence(6) == 128
    assert kv_bytes_per_cell(tiny_gguf) > 0
    assert kv_bytes_per_cell(tmp_path / "missing.gguf") == 0

    out = tmp_path / "run"
    args = ["sample", "--model", str(tiny_gguf), "--prompts", "builtin:contested", "--n", "2", "--max-tokens", "6",
            "--ctx", "256", "--threads", "1", "--out", str(out), "--json"]  # fmt: skip
    first = CliRunner().invoke(cli, [*args, "--limit", "2", "--max-seqs", "3"])
    assert first.exit_code == 0, first.output
    engine = read_manifest(out)["systems"][tiny_gguf.stem]["engine"]
    assert engine["max_seqs"] == 3
    # resumed without --max-seqs: the recorded budget is reused instead of the machine's default (a mismatch
    # would be refused, since the budget decides which tokens are decoded together)
    second = CliRunner().invoke(cli, [*args, "--limit", "4"])
    assert second.exit_code == 0, second.output
    assert read_manifest(out)["systems"][tiny_gguf.stem]["engine"]["max_seqs"] == 3
    assert len(read_groups(out)) == 4
    # a fresh directory gets the machine's default, and an explicit other budget on the old one is refused
    fresh = CliRunner().invoke(cli, [*args[:-3], "--out", str(tmp_path / "fresh"), "--limit", "1", "--json"])
    assert fresh.exit_code == 0, fresh.output
    assert read_manifest(tmp_path / "fresh")["systems"][tiny_gguf.stem]["engine"]["max_seqs"] in (
        1,
        2,
        4,
        8,
        16,
        32,
    )
    refused = CliRunner().invoke(cli, [*args, "--limit", "5", "--max-seqs", "5"])
    assert refused.exit_code != 0 and "max_seqs" in (refused.output + str(refused.exception))


def test_resume_keeps_the_recorded_kv_layout(tmp_path: Path, tiny_gguf: Path) -> None:
    """A run sampled with --kv-layout streams resumes with streams without the option (the layout decides the
    texts); a run directory of an earlier version (``kv_unified`` recorded) resumes with the unified cache."""
    from overtonlite.cli.sample_cmd import recorded_engine
    from overtonlite.rundir.manifest import read_manifest

    out = tmp_path / "run"
    args = ["sample", "--model", str(tiny_gguf), "--prompts", "builtin:contested", "--n", "2", "--max-tokens", "6",
            "--ctx", "512", "--threads", "1", "--max-seqs", "2", "--out", str(out), "--json"]  # fmt: skip
    first = CliRunner().invoke(cli, [*args, "--limit", "1", "--kv-layout", "streams"])
    assert first.exit_code == 0, first.output
    assert read_manifest(out)["systems"][tiny_gguf.stem]["engine"]["kv_layout"] == "streams"
    assert recorded_engine(out, tiny_gguf.stem) == (2, "streams")
    second = CliRunner().invoke(cli, [*args, "--limit", "2"])
    assert second.exit_code == 0, second.output
    assert read_manifest(out)["systems"][tiny_gguf.stem]["engine"]["kv_layout"] == "streams"
    assert len(read_groups(out)) == 2
    refused = CliRunner().invoke(cli, [*args, "--limit", "3", "--kv-layout", "unified"])
    assert refused.exit_code != 0 and "kv_layout" in (refused.output + str(refused.exception))
    manifest = json.loads((out / "manifest.json").read_text())
    engine = manifest["systems"][tiny_gguf.stem]["engine"]
    del engine["kv_layout"]
    engine["kv_unified"] = True  # what an earlier version wrote
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert recorded_engine(out, tiny_gguf.stem) == (2, "unified")
    assert recorded_engine(tmp_path / "none", tiny_gguf.stem) == (None, None)


def test_resume_keeps_the_recorded_schedule(tmp_path: Path, tiny_gguf: Path) -> None:
    """A run directory started by a version with schedule 1 (no packing) resumes with schedule 1, its texts those
    an uninterrupted schedule-1 run gives; a new directory gets this version's schedule."""
    from overtonlite.backends.llamacpp import SCHEDULE_VERSION, LlamaCppGenerator
    from overtonlite.config import SamplingConfig
    from overtonlite.datasets import load_prompts
    from overtonlite.rundir.manifest import read_manifest, recorded_schedule
    from overtonlite.sampling import sample_run
    from overtonlite.util import sha256_file

    prompts = load_prompts("builtin:contested", limit=3)
    cfg = SamplingConfig(max_tokens=6)

    def old_version(out: Path, limit: int) -> None:  # what the previous version wrote: schedule 1
        gen = LlamaCppGenerator(
            tiny_gguf,
            model_sha256=sha256_file(tiny_gguf),
            n_ctx=256,
            n_threads=1,
            max_seqs=2,
            max_tokens=6,
            schedule=1,
        )
        try:
            sample_run(gen, prompts[:limit], out=out, n=2, sampling=cfg, mode="raw", system=tiny_gguf.stem)
        finally:
            gen.close()

    old_version(tmp_path / "whole", 3)
    old_version(tmp_path / "run", 1)
    assert recorded_schedule(tmp_path / "run", tiny_gguf.stem) == recorded_schedule(tmp_path / "run") == 1
    args = ["sample", "--model", str(tiny_gguf), "--prompts", "builtin:contested", "--n", "2", "--max-tokens", "6",
            "--ctx", "256", "--threads", "1", "--max-seqs", "2", "--mode", "raw", "--json"]  # fmt: skip
    resumed = CliRunner().invoke(cli, [*args, "--limit", "3", "--out", str(tmp_path / "run")])
    assert resumed.exit_code == 0, resumed.output
    assert read_manifest(tmp_path / "run")["systems"][tiny_gguf.stem]["engine"]["schedule"] == 1
    texts = {g["prompt_id"]: [x["text"] for x in g["samples"]] for g in read_groups(tmp_path / "run")}
    whole = {g["prompt_id"]: [x["text"] for x in g["samples"]] for g in read_groups(tmp_path / "whole")}
    assert texts == whole and len(texts) == 3
    fresh = CliRunner().invoke(cli, [*args, "--limit", "1", "--out", str(tmp_path / "fresh")])
    assert fresh.exit_code == 0, fresh.output
    assert recorded_schedule(tmp_path / "fresh") == SCHEDULE_VERSION == 2
    assert recorded_schedule(tmp_path / "missing") is None


@pytest.mark.parametrize("flag", [["--kv-layout", "streams"], ["--max-seqs", "4"]])
def test_engine_options_are_refused_off_llama_cpp(tmp_path: Path, flag: list[str]) -> None:
    """--max-seqs and --kv-layout set the llama.cpp engine; another backend refuses them instead of ignoring them,
    before anything is written."""
    out = tmp_path / "r"
    res = CliRunner().invoke(
        cli, [*FAKE, "--prompts", "builtin:contested", "--limit", "1", "--out", str(out), *flag]
    )
    assert res.exit_code == 2
    assert "do not apply to --backend fake" in res.output
    assert not (out / "samples.jsonl").exists()


def test_recorded_layout_of_a_run_directory(tmp_path: Path) -> None:
    """recorded_layout: "streams" when every llama.cpp system of the directory recorded it, None when none did
    (systems without engine settings, e.g. served, do not count), an error when the two layouts are mixed."""
    from overtonlite.errors import UsageError
    from overtonlite.rundir.manifest import recorded_layout

    def write(systems: dict) -> Path:
        (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": 2, "systems": systems}))
        return tmp_path

    assert recorded_layout(tmp_path / "missing") is None
    streams = {"engine": {"max_seqs": 8, "kv_layout": "streams"}}
    unified = {"engine": {"max_seqs": 32}}
    served = {"engine": None}
    assert recorded_layout(write({"base": unified, "chat": unified})) is None
    assert recorded_layout(write({"base": streams, "chat": streams, "srv": served})) == "streams"
    with pytest.raises(UsageError, match="chat"):
        recorded_layout(write({"base": streams, "chat": unified}))
