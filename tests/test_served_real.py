"""Served pairs, a served embedder and judges against real servers on loopback.

Two llama-cpp-python servers (``python -m llama_cpp.server``) serve the default pair's GGUF files from the cache:
gemma-3-270m (base) and SmolLM2-135M-Instruct (chat; started with ``--embedding true``, so the same server also
answers ``/v1/embeddings``). A registry file given through ``OVERTONLITE_MODELS`` names them as endpoint entries,
next to the local default embedder and the local SmolLM2 (for the grammar-constrained local judge), copied from the
shipped models.toml. Everything here is ``realmodel``: it needs the default models pulled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.test_openai_backend import _free_port, _server_missing

pytestmark = [pytest.mark.realmodel, pytest.mark.slow]

SECRET = "sk-test-secret-never-written-7f3a"
LOCAL_ENTRIES = ("models.smollm2-135m-instruct", "embedders.all-minilm-l6-v2")


def _entry_text(text: str, key: str) -> str:
    """The lines of one entry of the shipped models.toml (its table and sub-tables)."""
    out, keep = [], False
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("["):
            name = s.strip("[]")
            keep = name == key or name.startswith(key + ".")
        if keep:
            out.append(line)
    return "\n".join(out)


def _start(model: Path, alias: str, log: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--model_alias",
        alias,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        "1",
        *extra,
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
    return proc, f"http://127.0.0.1:{port}/v1"


def _wait(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + 180
    while True:
        if proc.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"llama_cpp.server did not come up in 180 s: {log.read_text()[-2000:]}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
    default_base_path: Path,
    default_chat_path: Path,
    minilm_dir: Path,
) -> Iterator[dict[str, str]]:
    reason = _server_missing()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("served")
    procs = []
    try:
        base_proc, base_url = _start(default_base_path, "gemma-base", tmp / "base.log")
        procs.append(base_proc)
        chat_proc, chat_url = _start(default_chat_path, "smol-chat", tmp / "chat.log", "--embedding", "true")
        procs.append(chat_proc)
        _wait(base_proc, base_url, tmp / "base.log")
        _wait(chat_proc, chat_url, tmp / "chat.log")
        shipped = (REPO_ROOT / "models.toml").read_text(encoding="utf-8")
        local = "\n\n".join(_entry_text(shipped, k) for k in LOCAL_ENTRIES)
        registry = f"""default_embedder = "all-minilm-l6-v2"
default_pair = "served"

[models.served-gemma]
family = "gemma3"
role = "base"
[models.served-gemma.source]
kind = "endpoint"
base_urls = ["{base_url}"]
model = "gemma-base"

[models.served-smol]
family = "smollm2"
role = "chat"
context_length = 2048
[models.served-smol.source]
kind = "endpoint"
base_urls = ["{chat_url}"]
model = "smol-chat"
api_key_env = "SERVED_TEST_KEY"

[embedders.served-smol-emb]
family = "smollm2"
[embedders.served-smol-emb.source]
kind = "endpoint"
base_urls = ["{chat_url}"]
model = "smol-chat"

[pairs.served]
base = "served-gemma"
chat = "served-smol"

{local}
"""
        path = tmp / "models.toml"
        path.write_text(registry, encoding="utf-8")
        yield {"registry": str(path), "base_url": base_url, "chat_url": chat_url}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def served_env(served: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("OVERTONLITE_MODELS", served["registry"])
    monkeypatch.setenv("SERVED_TEST_KEY", SECRET)
    return served


@pytest.fixture(scope="module")
def replicate_run(served: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`overtonlite replicate --quick` on the served pair, as a user runs it (a subprocess, the registry through
    OVERTONLITE_MODELS, the key through the variable the entry names)."""
    out = tmp_path_factory.mktemp("rep") / "run"
    env = {
        **os.environ,
        "OVERTONLITE_MODELS": served["registry"],
        "SERVED_TEST_KEY": SECRET,
        "PYTHONPATH": str(REPO_ROOT),
    }
    cmd = [
        sys.executable,
        "-m",
        "overtonlite",
        "replicate",
        "--quick",
        "--pair",
        "served",
        "--limit",
        "4",
        "--n",
        "2",
        "--max-tokens",
        "16",
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_replicate_quick_on_a_served_pair(replicate_run: Path) -> None:
    results = json.loads((replicate_run / "results.json").read_text())
    assert set(results["claims"]) == {"overton", "recoverability"}
    for claim in results["claims"].values():
        assert claim["verdict"] in ("supported", "not supported", "inconclusive") and claim["findings"]
    assert results["pair"]["base"] == "served-gemma" and results["pair"]["chat"] == "served-smol"
    assert results["banner"]  # cross-family pair: the confound is said
    assert (replicate_run / "report.md").is_file() and (replicate_run / "report.html").is_file()
    systems = {
        json.loads(line)["system"] for line in (replicate_run / "samples.jsonl").read_text().splitlines()
    }
    assert {"base", "chat", "urial", "knn+summary"} <= systems


def test_manifest_records_endpoints_and_no_key(replicate_run: Path, served: dict[str, str]) -> None:
    text = (replicate_run / "manifest.json").read_text()
    assert SECRET not in text
    for path in replicate_run.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path
    manifest = json.loads(text)
    backends = json.dumps(manifest)
    assert served["base_url"] in backends and served["chat_url"] in backends
    assert '"backend": "openai"' in backends


def test_served_embedder_gives_vectors_and_local_token_states(
    served_env: dict[str, str], default_chat_path: Path
) -> None:
    import numpy as np
    from llama_cpp import Llama

    from overtonlite.backends import open_embedder

    emb = open_embedder("served-smol-emb")
    texts = ["a cat sat on the mat", "a kitten sat on the rug", "stock markets fell sharply"]
    vecs = emb.embed(texts)
    assert vecs.shape[0] == 3 and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    # the server's per-token vectors, mean-pooled here, are what llama.cpp itself gives for the same GGUF, text by
    # text (a batch of unpooled inputs comes back wrong from llama-cpp-python, so the embedder stops batching)
    local = Llama(model_path=str(default_chat_path), embedding=True, n_ctx=512, n_threads=1, verbose=False)
    try:
        for text, vec in zip(texts, vecs, strict=True):
            ref = np.asarray(local.embed(text), dtype=np.float64)
            ref = ref.mean(axis=0) if ref.ndim == 2 else ref
            ref /= np.linalg.norm(ref)
            assert float(ref @ vec) > 0.999
    finally:
        local.close()
    assert float(vecs[0] @ vecs[1]) > float(vecs[0] @ vecs[2])  # cat/kitten closer than cat/stocks
    info = emb.describe()
    assert info["pooling"] == "client mean over token vectors" and info["texts_per_request"] == 1
    sent, toks = emb.embed_with_tokens(["a cat sat on the mat"])
    assert sent.shape == (1, vecs.shape[1]) and toks[0].shape[1] == 384  # MiniLM token states, locally
    info = emb.describe()
    assert info["token_states"].startswith("local embedder all-minilm-l6-v2") and info["base_urls"]


def _tiny_input(tmp: Path) -> Path:
    rows = [
        {
            "system": "chat",
            "prompt_id": "c1",
            "prompt": "Is coffee bad for your health?",
            "set": "contested",
            "samples": [
                "It depends. Some studies link heavy coffee drinking to problems, while moderate amounts seem"
                " safe and may even help the liver.",
                "No. For most adults moderate coffee is fine.",
            ],
        },
        {
            "system": "base",
            "prompt_id": "c1",
            "prompt": "Is coffee bad for your health?",
            "set": "contested",
            "samples": ["Yes, coffee is bad for you because it raises blood pressure.", "I like tea better."],
        },
    ]
    path = tmp / "input.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("judge", ["served-smol", "smollm2-135m-instruct"])
def test_score_judge_writes_labels_beside_the_proxy(
    served_env: dict[str, str], tmp_path: Path, judge: str
) -> None:
    from overtonlite.cli import main

    inp = _tiny_input(tmp_path)
    out = tmp_path / "scored"
    main(
        [
            "score",
            str(inp),
            "--out",
            str(out),
            "--reference-system",
            "chat",
            "--judge",
            judge,
            "--judge-tasks",
            "stance,missing",
        ]
    )
    recs = {
        (r["system"], r["prompt_id"]): r
        for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
    }
    base = recs[("base", "c1")]
    assert base["stance"] is not None and len(base["stance_judge"]) == 2  # beside the proxy labels
    assert all(x in ("yes", "no", "both", "other", None) for x in base["stance_judge"])
    assert base["missing"] is not None and len(base["missing_judge"]) == 2
    assert all(x is None or 1 <= x <= 5 for x in base["missing_judge"])
    settings = json.loads((out / "summary.json").read_text())["settings"]["judge"]
    assert settings["name"] == judge and settings["counts"]["stance"]["judged"] == 4
    backend = "openai response_format" if judge == "served-smol" else "llama.cpp grammar"
    assert settings["backend"] == backend
    cached = [json.loads(line) for line in (out / "judgments.jsonl").read_text().splitlines()]
    # 4 stance + 3 missing (base 2, chat sample 1; chat sample 0 is the reference itself)
    assert settings["counts"]["missing"]["judged"] == 3 and recs[("chat", "c1")]["missing_judge"][0] is None
    assert len(cached) == 7 and all(c["judge"] == judge and len(c["prompt_sha256"]) == 64 for c in cached)
    # resumable: a second run makes no new judgment
    main(
        [
            "score",
            str(inp),
            "--out",
            str(out),
            "--reference-system",
            "chat",
            "--judge",
            judge,
            "--judge-tasks",
            "stance,missing",
        ]
    )
    assert len((out / "judgments.jsonl").read_text().splitlines()) == 7
    if judge == "served-smol":
        assert settings["response_format"] in ("json_schema", "json_object+schema")
