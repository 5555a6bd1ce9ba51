"""Bad input through the real console entry (``python -m overtonlite``): every mistake is a one-line error on
stderr with the right exit code, no traceback, and nothing already written is lost or half-written.

Covered: unknown model / pair, sha256 mismatch (pinned and trusted-on-first-use), truncated or corrupt GGUF,
malformed JSONL / CSV lines, malformed models.toml, a prompt longer than the context, Ctrl-C on llama.cpp, a held
run lock, and an unusable or unwritable --out (including a write failure in the middle of a run).
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from overtonlite.rundir.records import RunDir, read_groups

REPO = Path(__file__).resolve().parent.parent
FAKE = ["sample", "--backend", "fake", "--model", "fk", "--n", "2", "--max-tokens", "12"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OVERTONLITE_MODELS", "OVERTONLITE_HOME")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300, **kw
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "overtonlite", *args],
        env=env or _env(),
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def one_line_error(proc: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    """The command failed with ``code`` and its stderr is exactly one ``Error: ...`` line holding ``fragments``."""
    err = proc.stderr
    assert proc.returncode == code, (proc.returncode, err)
    assert "Traceback" not in err, err
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])
    return lines[0]


def last_line_error(proc: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    """Like :func:`one_line_error` for a failure after progress output: the error is the single last line."""
    err = proc.stderr
    assert proc.returncode == code, (proc.returncode, err)
    assert "Traceback" not in err, err
    errors = [ln for ln in err.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and err.strip("\n").splitlines()[-1] == errors[0], err
    for frag in fragments:
        assert frag in errors[0], (frag, errors[0])
    return errors[0]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _needs_llama() -> None:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("overtonlite.backends.llamacpp")


def _model_entry(name: str, path: Path, sha256: str | None, *, ctx: int = 256) -> str:
    sha_line = f'sha256 = "{sha256}"\n' if sha256 else ""
    return (
        textwrap.dedent(f"""
        [models.{name}]
        family = "tiny"
        role = "chat"
        format = "gguf"
        context_length = {ctx}
        licence = "MIT"
        filename = "{path.name}"
        """)
        + sha_line
        + textwrap.dedent(f"""
        [models.{name}.source]
        kind = "path"
        path = "{path}"
        """)
    )


@pytest.fixture()
def registry(tmp_path: Path, tiny_gguf: Path) -> dict[str, Path]:
    """A models.toml of local-path models around copies of the tiny GGUF: good, wrong sha, truncated, sha-less."""
    good = tmp_path / "good.gguf"
    shutil.copy(tiny_gguf, good)
    wrong = tmp_path / "wrong.gguf"
    shutil.copy(tiny_gguf, wrong)
    trunc = tmp_path / "trunc.gguf"
    trunc.write_bytes(tiny_gguf.read_bytes()[: tiny_gguf.stat().st_size // 2])
    tofu = tmp_path / "tofu.gguf"
    shutil.copy(tiny_gguf, tofu)
    toml = tmp_path / "models.toml"
    toml.write_text(
        _model_entry("good", good, sha(good))
        + _model_entry("wrong-sha", wrong, "0" * 64)
        + _model_entry("trunc", trunc, sha(trunc))
        + _model_entry("tofu", tofu, None)
    )
    home = tmp_path / "home"
    return {"toml": toml, "home": home, "good": good, "wrong": wrong, "trunc": trunc, "tofu": tofu}


def reg_env(reg: dict[str, Path]) -> dict[str, str]:
    return _env(OVERTONLITE_MODELS=str(reg["toml"]), OVERTONLITE_HOME=str(reg["home"]))


def fake_run(out: Path, *extra: str) -> bytes:
    """A finished fake-backend run in ``out``; returns samples.jsonl's bytes (to check nothing changes)."""
    proc = run_cli(*FAKE, "--prompts", "builtin:contested", "--limit", "2", "--out", str(out), *extra)
    assert proc.returncode == 0, proc.stderr
    return (out / "samples.jsonl").read_bytes()


# ------------------------------------------------------------------------------------------- unknown names
def test_unknown_model_and_pair_list_the_known_ones(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_cli("sample", "--model", "gpt-9", "--prompts", "builtin:contested", "--out", str(out))
    one_line_error(proc, 2, "unknown model 'gpt-9'; known models:", "smollm2-135m-instruct", "gemma-3-270m")
    assert not out.exists()
    one_line_error(
        run_cli("models", "info", "gpt-9"), 2, "unknown model or embedder 'gpt-9'", "all-minilm-l6-v2"
    )
    line = one_line_error(run_cli("models", "pull", "gpt-9"), 2, "unknown model, embedder or pair 'gpt-9'")
    assert "default" in line and "smollm2-135m-instruct" in line
    proc = run_cli("diversity", "--pair", "no-pair", "--out", str(out))
    one_line_error(proc, 2, "unknown pair 'no-pair'; known pairs:", "default")
    assert not out.exists() or not any(out.iterdir())  # nothing written


# ------------------------------------------------------------------------------------------ sha256 mismatch
def test_sha256_mismatch_is_refused_and_the_file_never_used(
    tmp_path: Path, registry: dict[str, Path]
) -> None:
    env = reg_env(registry)
    before = registry["wrong"].read_bytes()
    out = tmp_path / "run"
    proc = run_cli(
        "sample", "--model", "wrong-sha", "--prompts", "builtin:contested", "--out", str(out), env=env
    )
    one_line_error(proc, 1, "wrong-sha: sha256 mismatch for", "expected " + "0" * 64, "the file was not used")
    assert not (out / "samples.jsonl").exists() and not (out / "manifest.json").exists()
    assert registry["wrong"].read_bytes() == before  # a user's own file is never deleted
    one_line_error(run_cli("models", "info", "wrong-sha", env=env), 1, "sha256 mismatch")
    line = last_line_error(run_cli("models", "verify", "wrong-sha", env=env), 1, "failed verification")
    assert "left in place but will not be used" in line and registry["wrong"].exists()
    proc = run_cli("models", "verify", "good", env=env)
    assert proc.returncode == 0, proc.stderr


def test_trusted_on_first_use_hash_catches_a_later_change(tmp_path: Path, registry: dict[str, Path]) -> None:
    env = reg_env(registry)
    ok = run_cli("models", "info", "tofu", "--json", env=env)
    assert ok.returncode == 0, ok.stderr
    recorded = json.loads((registry["home"] / "hashes.json").read_text())
    assert [v["sha256"] for v in recorded.values()] == [sha(registry["tofu"])]
    listing = json.loads(run_cli("models", "list", "--json", env=env).stdout)
    assert {e["name"]: e["sha"] for e in listing["entries"]}["tofu"] == "recorded"
    data = bytearray(registry["tofu"].read_bytes())
    data[-1] ^= 0xFF  # same size, one byte different
    registry["tofu"].write_bytes(bytes(data))
    out = tmp_path / "run"
    proc = run_cli("sample", "--model", "tofu", "--prompts", "builtin:contested", "--out", str(out), env=env)
    one_line_error(proc, 1, "tofu: sha256 mismatch", "recorded on first use", "the file was not used")
    assert not (out / "samples.jsonl").exists()


# ------------------------------------------------------------------------------------ truncated / corrupt GGUF
@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("half", "truncated GGUF file"),
        ("header", "not a valid GGUF file"),
        ("magic", "bad magic"),
        ("empty", "bad magic"),
    ],
)
def test_truncated_or_corrupt_gguf(tmp_path: Path, tiny_gguf: Path, how: str, message: str) -> None:
    data = tiny_gguf.read_bytes()
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(
        {"half": data[: len(data) // 2], "header": data[:40], "magic": b"GGML" + data[4:], "empty": b""}[how]
    )
    line = one_line_error(run_cli("models", "info", str(bad)), 1, message)
    assert str(bad) in line and (how not in ("half", "header") or "truncated" in line)
    out = tmp_path / "run"
    proc = run_cli("sample", "--model", str(bad), "--prompts", "builtin:contested", "--out", str(out))
    one_line_error(proc, 1, str(bad), message)
    assert not (out / "samples.jsonl").exists()


def test_gguf_that_llama_cpp_rejects(tmp_path: Path, tiny_gguf: Path) -> None:
    """A well-formed header with an unknown architecture passes the header check; llama.cpp refuses it."""
    _needs_llama()
    data = tiny_gguf.read_bytes()
    key = b"general.architecture"
    at = data.index(key) + len(key) + 4  # skip the value type
    length = int.from_bytes(data[at : at + 8], "little")
    start = at + 8
    bad = tmp_path / "alien.gguf"
    bad.write_bytes(data[:start] + b"z" * length + data[start + length :])
    out = tmp_path / "run"
    proc = run_cli("sample", "--model", str(bad), "--prompts", "builtin:contested", "--out", str(out))
    one_line_error(proc, 1, f"cannot load model {bad}")
    assert not (out / "samples.jsonl").exists()


def test_truncated_registry_model(tmp_path: Path, registry: dict[str, Path]) -> None:
    """A registry file whose sha256 matches but is itself truncated: caught before llama.cpp sees it."""
    env = reg_env(registry)
    one_line_error(
        run_cli("models", "info", "trunc", env=env), 1, "truncated GGUF file", str(registry["trunc"])
    )
    out = tmp_path / "run"
    proc = run_cli("sample", "--model", "trunc", "--prompts", "builtin:contested", "--out", str(out), env=env)
    one_line_error(proc, 1, "truncated GGUF file")
    assert not (out / "samples.jsonl").exists()


def test_models_info_on_a_gguf_path(tiny_gguf: Path) -> None:
    proc = run_cli("models", "info", str(tiny_gguf), "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["architecture"] == "llama" and info["file_size"] == tiny_gguf.stat().st_size
    one_line_error(run_cli("models", "info", str(tiny_gguf.with_name("nope.gguf"))), 2, "does not exist")


# ------------------------------------------------------------------------------------ malformed prompt files
@pytest.mark.parametrize(
    ("name", "content", "where", "why"),
    [
        ("p.jsonl", '{"prompt": "a"}\n{"prompt": "b"}\n{"prompt": "c",}\n', 3, "invalid JSON"),
        ("p.jsonl", '{"prompt": "a"}\n["not", "an", "object"]\n', 2, "expected a JSON object"),
        (
            "p.jsonl",
            '{"prompt": "a"}\n\n{"messages": [{"role": "bot", "content": "x"}]}\n',
            3,
            "unknown role",
        ),
        ("p.jsonl", '{"id": 1, "prompt": "a"}\n{"id": 1, "prompt": "b"}\n', 2, "duplicate id '1'"),
        ("p.csv", 'id,prompt\n1,"fine"\n2,"never closed\n3,three\n', 3, "a quoted field is never closed"),
        ("p.csv", "id,prompt\n1,one\n2,two,extra\n", 3, "more fields than the header has"),
        ("p.csv", 'id,prompt\n1,"multi\nline"\n2,""\n', 4, "'prompt' is empty"),
        ("p.csv", "id,question\n1,why\n", 1, "must have a 'prompt' column"),
    ],
)
def test_malformed_prompt_line_names_file_and_line(
    tmp_path: Path, name: str, content: str, where: int, why: str
) -> None:
    out = tmp_path / "run"
    before = fake_run(out)
    prompts = tmp_path / name
    prompts.write_text(content, encoding="utf-8")
    proc = run_cli(*FAKE, "--prompts", str(prompts), "--out", str(out))
    one_line_error(proc, 2, f"Error: {prompts}:{where}: ", why)
    assert (out / "samples.jsonl").read_bytes() == before


def test_damaged_line_in_an_existing_run_is_named_and_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "run"
    fake_run(out)
    lines = (out / "samples.jsonl").read_text().splitlines()
    lines[0] = lines[0][:60]  # damaged by hand, not a torn last line
    (out / "samples.jsonl").write_text("\n".join(lines) + "\n")
    before = (out / "samples.jsonl").read_bytes()
    proc = run_cli(*FAKE, "--prompts", "builtin:contested", "--limit", "3", "--out", str(out))
    one_line_error(proc, 2, f"{out / 'samples.jsonl'}:1: invalid JSON", "fix or remove that line")
    assert (out / "samples.jsonl").read_bytes() == before


def test_prompt_file_not_utf8_or_missing(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes('{"prompt": "caf\u00e9"}\n'.encode("latin-1"))
    one_line_error(run_cli(*FAKE, "--prompts", str(bad), "--out", str(tmp_path / "r")), 2, str(bad), "UTF-8")
    missing = tmp_path / "missing.jsonl"
    one_line_error(run_cli(*FAKE, "--prompts", str(missing), "--out", str(tmp_path / "r")), 2, "no such file")


# ---------------------------------------------------------------------------------------- malformed models.toml
@pytest.mark.parametrize(
    ("edit", "code", "fragments"),
    [
        (("context_length = 256", "context_lenght = 256"), 2,
         ("models.good.context_length: missing required key", "found 'context_lenght'")),
        (("licence = \"MIT\"", "licence = \"MIT\"\nnotez = \"x\""), 2,
         ("models.good.notez: unknown key", "did you mean 'notes'")),
        (("context_length = 256", 'context_length = "256"'), 2,
         ("models.good.context_length: expected int, got string",)),
        (('kind = "path"', 'kind = "ftp"'), 2, ("models.good.source.kind: must be one of pypi, path, hf",)),
        (("[models.good]", "[models.good"), 2, ("invalid TOML",)),
    ],
)  # fmt: skip
def test_malformed_models_toml_names_the_key(
    tmp_path: Path, registry: dict[str, Path], edit: tuple[str, str], code: int, fragments: tuple[str, ...]
) -> None:
    text = registry["toml"].read_text()
    registry["toml"].write_text(text.replace(*edit, 1))
    env = reg_env(registry)
    for args in (["models", "list"], ["sample", "--model", "good", "--prompts", "builtin:contested",
                                      "--out", str(tmp_path / "run")]):  # fmt: skip
        line = one_line_error(run_cli(*args, env=env), code, *fragments)
        assert str(registry["toml"]) in line
    assert not (tmp_path / "run").exists()


def test_missing_models_toml_named_by_the_environment(tmp_path: Path) -> None:
    env = _env(OVERTONLITE_MODELS=str(tmp_path / "nope.toml"), OVERTONLITE_HOME=str(tmp_path / "home"))
    one_line_error(run_cli("models", "list", env=env), 2, "OVERTONLITE_MODELS=", "no such file")


# ------------------------------------------------------------------------------- prompt longer than the context
def test_prompt_too_long_is_recorded_per_group_on_llama_cpp(tmp_path: Path, tiny_gguf: Path) -> None:
    _needs_llama()
    help_text = run_cli("sample", "--help").stdout
    assert "prompt_too_long" in help_text and "--retry-errors" in help_text
    prompts = tmp_path / "p.jsonl"
    long_text = "a fairly long prompt " * 20
    prompts.write_text(
        "\n".join(
            json.dumps({"id": i, "prompt": p}) for i, p in (("s1", "hi"), ("long", long_text), ("s2", "ok"))
        )
    )
    out = tmp_path / "run"
    args = ["sample", "--model", str(tiny_gguf), "--prompts", str(prompts), "--n", "2", "--max-tokens", "6",
            "--threads", "1", "--mode", "raw", "--out", str(out)]  # fmt: skip
    proc = run_cli(*args, "--ctx", "48")
    assert proc.returncode == 0, proc.stderr
    assert "1 group(s) recorded with an error" in proc.stderr and "Traceback" not in proc.stderr
    groups = {g["prompt_id"]: g for g in read_groups(out)}
    assert groups["long"]["error"] == "prompt_too_long" and groups["long"]["samples"] == []
    assert groups["long"]["prompt_tokens"] > 48
    assert all(groups[p]["error"] is None and len(groups[p]["samples"]) == 2 for p in ("s1", "s2"))
    # a plain rerun keeps the failed group; --retry-errors with a larger context regenerates it
    again = run_cli(*args, "--ctx", "48", "--json")
    assert json.loads(again.stdout)["groups_skipped"] == 3
    retry = run_cli(*args, "--ctx", "512", "--retry-errors", "--json")
    assert retry.returncode == 0, retry.stderr
    assert json.loads(retry.stdout)["groups_done"] == 1
    fixed = {g["prompt_id"]: g for g in read_groups(out)}["long"]
    assert fixed["error"] is None and len(fixed["samples"]) == 2


# ----------------------------------------------------------------------------------------------------- Ctrl-C
def test_ctrl_c_on_llama_cpp_stops_at_a_group_boundary_and_resumes(tmp_path: Path, tiny_gguf: Path) -> None:
    _needs_llama()
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i:02d}", "prompt": f"prompt number {i}"}) + "\n"
                               for i in range(60)))  # fmt: skip
    args = ["sample", "--model", str(tiny_gguf), "--prompts", str(prompts), "--n", "2", "--max-tokens", "40",
            "--ctx", "128", "--threads", "1", "--max-seqs", "2", "--mode", "raw"]  # fmt: skip
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "overtonlite", *args, "--out", str(out)], cwd=REPO, env=_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    samples = out / "samples.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if samples.exists() and samples.read_bytes().count(b"\n") >= 1:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted; rerun the same command to resume" in err and "Traceback" not in err
    raw = samples.read_bytes()
    assert raw.endswith(b"\n")
    kept = [json.loads(line)["prompt_id"] for line in raw.splitlines()]
    assert 1 <= len(kept) < 60
    assert not (out / ".lock").read_text().strip()  # the lock was released
    rerun = run_cli(*args, "--out", str(out), "--json")
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert (summary["groups_skipped"], summary["groups_done"]) == (len(kept), 60 - len(kept))
    assert samples.read_bytes().startswith(raw)  # what was there is untouched
    resumed = {g["prompt_id"]: g for g in read_groups(out)}
    assert len(resumed) == 60 and all(len(g["samples"]) == 2 for g in resumed.values())
    # the resumed run holds the same samples as an uninterrupted one
    straight = run_cli(*args, "--out", str(tmp_path / "straight"), "--json")
    assert straight.returncode == 0, straight.stderr
    for g in read_groups(tmp_path / "straight"):
        assert [s["text"] for s in g["samples"]] == [s["text"] for s in resumed[g["prompt_id"]]["samples"]]


# --------------------------------------------------------------------------------------------------- run lock
def test_lock_held_by_another_writer(tmp_path: Path) -> None:
    out = tmp_path / "run"
    before = fake_run(out)
    with RunDir(out).lock():
        proc = run_cli(*FAKE, "--prompts", "builtin:contested", "--limit", "4", "--out", str(out))
        one_line_error(proc, 1, f"run directory {out} is in use by process {os.getpid()}")
    assert (out / "samples.jsonl").read_bytes() == before
    proc = run_cli(*FAKE, "--prompts", "builtin:contested", "--limit", "4", "--out", str(out), "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["groups_skipped"] == 2


def test_lock_is_checked_before_loading_a_model(tmp_path: Path, tiny_gguf: Path) -> None:
    out = tmp_path / "run"
    RunDir(out)
    with RunDir(out).lock():
        proc = run_cli(
            "sample", "--model", str(tiny_gguf), "--prompts", "builtin:contested", "--out", str(out)
        )
    one_line_error(proc, 1, "is in use by process")


# ---------------------------------------------------------------------------------------------- unusable --out
def test_out_that_is_a_file_or_under_a_file(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    proc = run_cli(*FAKE, "--prompts", "builtin:contested", "--out", str(afile))
    one_line_error(proc, 2, f"cannot use {afile} as a run directory", "not a directory")
    proc = run_cli(*FAKE, "--prompts", "builtin:contested", "--out", str(afile / "sub"))
    one_line_error(proc, 2, f"cannot create run directory {afile / 'sub'}")
    assert afile.read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only directories")
def test_out_in_a_read_only_directory(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        proc = run_cli(*FAKE, "--prompts", "builtin:contested", "--out", str(ro / "run"))
        one_line_error(proc, 2, "cannot create run directory", "not writable")
    finally:
        ro.chmod(0o700)


def test_write_failure_mid_run_keeps_whole_groups_and_resumes(tmp_path: Path) -> None:
    """The disk 'fills up' (RLIMIT_FSIZE) after a few groups: one-line error, whole lines kept, rerun resumes."""
    out = tmp_path / "run"
    args = [*FAKE, "--prompts", "builtin:open-ended", "--limit", "12", "--out", str(out)]

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (6000, 6000))

    proc = run_cli(*args, preexec_fn=small_disk)
    last_line_error(proc, 1, f"cannot write to {out / 'samples.jsonl'}", "the groups written before are kept")
    raw = (out / "samples.jsonl").read_bytes()
    assert raw.endswith(b"\n")  # the partial line was rolled back
    kept = [json.loads(line)["prompt_id"] for line in raw.splitlines()]
    assert 1 <= len(kept) < 12
    json.loads((out / "manifest.json").read_text())
    rerun = run_cli(*args, "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["groups_skipped"] == len(kept)
    assert len(read_groups(out)) == 12
