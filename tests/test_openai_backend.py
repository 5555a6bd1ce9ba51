"""The OpenAI-compatible HTTP backend.

Fast tests run against a tiny stdlib HTTP server that plays a scripted OpenAI-compatible server (errors, retries,
servers that ignore ``n``, vLLM's ``stop_reason``...). The ``slow`` tests run the real thing: llama-cpp-python's own
OpenAI-compatible server (``python -m llama_cpp.server``) on loopback with the tiny test GGUF.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from overtonlite.backends.base import PROMPT_TOO_LONG, Generator, GenRequest
from overtonlite.backends.openai import (
    CHAT_PREFIX,
    OpenAIGenerator,
    decode_chat,
    encode_chat,
    estimate_tokens,
    map_finish_reason,
)
from overtonlite.config import SamplingConfig
from overtonlite.errors import OvertonliteError, UsageError

Reply = tuple[int, Any]


class FakeServer:
    """A loopback HTTP server; ``handler(path, body) -> (status, json)`` scripts its answers."""

    def __init__(self, handler: Callable[[str, dict[str, Any]], Reply]) -> None:
        self.handler = handler
        self.calls: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.active = 0
        self.max_active = 0
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else {}
                with lock:
                    outer.calls.append((self.path, body, dict(self.headers)))
                    outer.active += 1
                    outer.max_active = max(outer.max_active, outer.active)
                try:
                    status, payload = outer.handler(self.path, body)
                finally:
                    with lock:
                        outer.active -= 1
                blob = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(blob)))
                    self.end_headers()
                    self.wfile.write(blob)
                except OSError:  # the client gave up (timeout test)
                    pass

            do_GET = do_POST = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def completions(self) -> list[dict[str, Any]]:
        return [body for path, body, _ in self.calls if path.endswith("completions")]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[..., FakeServer]]:
    servers: list[FakeServer] = []

    def start(handler: Callable[[str, dict[str, Any]], Reply]) -> FakeServer:
        servers.append(FakeServer(handler))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def _choice(text: str, i: int = 0, finish: str = "length", **more: Any) -> dict[str, Any]:
    return {"index": i, "text": text, "finish_reason": finish, **more}


def _completion(choices: list[dict[str, Any]], completion_tokens: int = 3, prompt_tokens: int = 7) -> dict:
    return {
        "object": "text_completion",
        "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
    }


def ignores_n(path: str, body: dict[str, Any]) -> Reply:
    """A server like llama-cpp-python: one choice whatever ``n``; text names the seed; no tokenizer."""
    if path.endswith("/completions"):
        return 200, _completion([_choice(f"seed {body['seed']} says hi")], completion_tokens=4)
    if path == "/v1/models":
        return 200, {"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "me"}]}
    return 404, {"detail": "Not Found"}


def _req(key: str, prompt: str = "Say hi.", n: int = 3, **sampling: Any) -> GenRequest:
    seeds = tuple(100 + 10 * i for i in range(n))
    return GenRequest(key=key, prompt=prompt, seeds=seeds, sampling=SamplingConfig(max_tokens=8, **sampling))


def test_chat_marker_round_trip_and_validation() -> None:
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Héllo\x1e?"}]
    encoded = encode_chat(msgs)
    assert encoded.startswith(CHAT_PREFIX)
    assert decode_chat(encoded) == msgs
    assert decode_chat("plain text prompt") is None
    with pytest.raises(UsageError, match="message 0"):
        encode_chat([{"role": "user"}])


def test_finish_reason_mapping() -> None:
    assert map_finish_reason({"finish_reason": "length"}, stop_requested=True) == ("length", False)
    assert map_finish_reason({"finish_reason": "eos_token"}, stop_requested=True) == ("eos", False)
    assert map_finish_reason({"finish_reason": "stop_sequence"}, stop_requested=True) == ("stop", False)
    # vLLM says what stopped it: None = EOS, a string = the stop string, an int = a stop token
    assert map_finish_reason({"finish_reason": "stop", "stop_reason": None}, stop_requested=True) == (
        "eos",
        False,
    )
    assert map_finish_reason({"finish_reason": "stop", "stop_reason": "##"}, stop_requested=True) == (
        "stop",
        False,
    )
    assert map_finish_reason({"finish_reason": "stop", "stop_reason": 2}, stop_requested=True) == (
        "eos",
        False,
    )
    # no stop string was asked for: "stop" can only be the end-of-generation token
    assert map_finish_reason({"finish_reason": "stop"}, stop_requested=False) == ("eos", False)
    assert map_finish_reason({"finish_reason": "stop"}, stop_requested=True) == ("stop", True)


def test_estimate_tokens() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("one two three") == 4


def test_bad_construction() -> None:
    with pytest.raises(UsageError, match="base-url"):
        OpenAIGenerator("localhost:8000", model="m")
    with pytest.raises(UsageError, match="--model"):
        OpenAIGenerator("http://127.0.0.1:8000/v1", model="")
    gen = OpenAIGenerator("http://127.0.0.1:8000", model="m", chat=False)
    assert gen.api_base == "http://127.0.0.1:8000/v1" and gen.root == "http://127.0.0.1:8000"
    with pytest.raises(UsageError, match="chat mode is off"):
        gen.render_chat([{"role": "user", "content": "hi"}])


def test_server_ignoring_n_gets_one_request_per_seed(serve) -> None:
    srv = serve(ignores_n)
    gen = OpenAIGenerator(srv.url, model="m", max_concurrency=2, chat=False)
    assert isinstance(gen, Generator)
    results = {g.key: g for g in gen.generate([_req("a"), _req("b")])}
    assert set(results) == {"a", "b"}
    for g in results.values():
        assert g.error is None and len(g.samples) == 3
        assert [s.seed for s in g.samples] == [100, 110, 120]
        assert [s.text for s in g.samples] == ["seed 100 says hi", "seed 110 says hi", "seed 120 says hi"]
        assert all(s.n_tokens == 4 and s.finish_reason == "length" and s.max_tokens == 8 for s in g.samples)
        assert g.prompt_tokens == 7 and g.extra["sampling_mode"] == "one request per sample"
        assert g.extra["n_tokens_source"] == ["usage"]
    bodies = srv.completions()
    # at most the first round of groups probes n; afterwards every request asks for one sample
    assert sum(1 for b in bodies if b.get("n", 1) > 1) <= 2
    assert len(bodies) == 6
    assert gen.describe()["n_per_request"] == "one request per sample"


def test_every_sampling_setting_is_sent(serve) -> None:
    srv = serve(ignores_n)
    gen = OpenAIGenerator(srv.url, model="m", use_n=False, chat=False)
    sp = dict(temperature=0.7, repetition_penalty=1.3, top_p=0.9, top_k=20, min_p=0.05, stop=("##",))
    list(gen.generate([_req("a", n=1, **sp)]))
    (body,) = srv.completions()
    assert body["prompt"] == "Say hi." and body["model"] == "m" and body["seed"] == 100
    assert body["temperature"] == 0.7 and body["top_p"] == 0.9 and body["max_tokens"] == 8
    assert body["repetition_penalty"] == 1.3 and body["repeat_penalty"] == 1.3
    assert body["top_k"] == 20 and body["min_p"] == 0.05 and body["stop"] == ["##"]
    assert body["repeat_last_n"] == -1  # llama-server: the penalty covers the whole context
    assert "n" not in body and body["stream"] is False


def test_llama_server_facts(serve) -> None:
    def llama_server(path: str, body: dict[str, Any]) -> Reply:
        if path == "/props":
            return 200, {"chat_template": "", "default_generation_settings": {"n_ctx": 3072}}
        if path == "/tokenize":  # llama-server answers an empty list to bodies without "content"
            return 200, {"tokens": list(range(len(body.get("content", "").split())))}
        if path == "/v1/models":
            return 404, {"error": {"message": "File Not Found"}}
        return ignores_n(path, body)

    srv = serve(llama_server)
    gen = OpenAIGenerator(srv.url, model="m")
    assert gen.has_chat_template() is False  # chat=None: the server says its model has no template
    assert gen.n_ctx == 3072 and gen.count_tokens("a b c") == 3
    info = gen.describe()
    assert info["tokenizer"] == "llama-server" and info["server_models"] == [] and info["chat"] is False
    assert "api_key" not in json.dumps(info)


def test_n_supported_uses_one_request_and_counts_tokens(serve) -> None:
    def vllm_like(path: str, body: dict[str, Any]) -> Reply:
        if path == "/v1/completions":
            n = body.get("n", 1)
            choices = [_choice(f"alpha beta {i}", i, "stop", stop_reason=None) for i in reversed(range(n))]
            return 200, _completion(choices, completion_tokens=3 * n)
        if path == "/tokenize" and "prompt" in body:
            return 200, {"count": len(body["prompt"].split()) + 10, "tokens": [], "max_model_len": 1024}
        if path == "/v1/models":
            return 200, {"data": [{"id": "m", "owned_by": "vllm", "max_model_len": 1024}]}
        return 404, {"detail": "Not Found"}

    srv = serve(vllm_like)
    gen = OpenAIGenerator(srv.url, model="m", chat=False)
    (g,) = gen.generate([_req("a", n=4)])
    assert len(srv.completions()) == 1 and srv.completions()[0]["n"] == 4
    assert [s.text for s in g.samples] == [f"alpha beta {i}" for i in range(4)]  # ordered by index
    assert {s.seed for s in g.samples} == {100}
    assert all(s.finish_reason == "eos" for s in g.samples)
    assert [s.n_tokens for s in g.samples] == [13] * 4  # per-choice counts from /tokenize
    assert g.extra["sampling_mode"] == "n" and g.extra["n_tokens_source"] == ["tokenize"]
    info = gen.describe()
    assert info["n_ctx"] == 1024 and info["owned_by"] == "vllm" and info["tokenizer"] == "vllm"
    assert gen.n_ctx == 1024


def test_n_rejected_falls_back(serve) -> None:
    def tgi_like(path: str, body: dict[str, Any]) -> Reply:
        if body.get("n", 1) > 1:
            return 422, {"error": "Input validation error: n must be 1", "error_type": "validation"}
        return ignores_n(path, body)

    srv = serve(tgi_like)
    (g,) = OpenAIGenerator(srv.url, model="m", chat=False).generate([_req("a")])
    assert [s.seed for s in g.samples] == [100, 110, 120]
    assert [b.get("n", 1) for b in srv.completions()] == [3, 1, 1, 1]


def test_chat_prompts_go_to_chat_endpoint(serve) -> None:
    def chat(path: str, body: dict[str, Any]) -> Reply:
        if path == "/v1/chat/completions":
            msg = {"role": "assistant", "content": f"reply to {body['messages'][-1]['content']}"}
            return 200, {"choices": [{"index": 0, "message": msg, "finish_reason": "stop"}], "usage": {}}
        return ignores_n(path, body)

    srv = serve(chat)
    gen = OpenAIGenerator(srv.url, model="m", chat=True, use_n=False)
    assert gen.has_chat_template()
    prompt = gen.render_chat([{"role": "user", "content": "ping"}])
    (g,) = gen.generate([_req("c", prompt=prompt, n=2)])
    paths = [p for p, _, _ in srv.calls if "completions" in p]
    assert paths == ["/v1/chat/completions"] * 2
    assert srv.calls[0][1]["messages"] == [{"role": "user", "content": "ping"}]
    assert [s.text for s in g.samples] == ["reply to ping"] * 2
    assert all(s.finish_reason == "eos" for s in g.samples)  # no stop string requested
    assert g.extra["n_tokens_source"] == ["estimate"]  # no usage, no tokenize endpoint
    assert all(s.n_tokens == estimate_tokens("reply to ping") for s in g.samples)


def test_stop_string_kept_by_server_is_cut(serve) -> None:
    def keeps_stop(path: str, body: dict[str, Any]) -> Reply:
        if path.endswith("/completions"):
            return 200, _completion([_choice("an answer\n```", finish="stop")])
        return ignores_n(path, body)

    srv = serve(keeps_stop)
    (g,) = OpenAIGenerator(srv.url, model="m", use_n=False).generate([_req("a", n=1, stop=("```",))])
    (s,) = g.samples
    assert s.text == "an answer\n" and s.finish_reason == "stop"
    assert "eos_or_stop_ambiguous" not in g.extra


def test_context_overflow_is_a_group_error_and_the_run_goes_on(serve) -> None:
    def ctx(path: str, body: dict[str, Any]) -> Reply:
        if path.endswith("/completions") and body["prompt"].startswith("LONG"):
            msg = "This model's maximum context length is 512 tokens, however you requested 900 tokens"
            return 400, {
                "error": {"message": msg, "type": "invalid_request_error", "code": "context_length_exceeded"}
            }
        return ignores_n(path, body)

    srv = serve(ctx)
    gen = OpenAIGenerator(srv.url, model="m", use_n=False, max_concurrency=1)
    results = {g.key: g for g in gen.generate([_req("long", prompt="LONG " * 50, n=5), _req("ok")])}
    bad, ok = results["long"], results["ok"]
    assert bad.error == PROMPT_TOO_LONG and bad.samples == []
    assert "maximum context length" in bad.extra["server_error"]
    assert bad.prompt_tokens == estimate_tokens("LONG " * 50)
    assert ok.error is None and len(ok.samples) == 3
    # the failed group's queued requests were dropped, not sent
    assert sum(1 for b in srv.completions() if b["prompt"].startswith("LONG")) == 1


@pytest.mark.parametrize(
    "status, message",
    [
        (
            400,
            "This model's maximum context length is 4096 tokens. However, you requested 4800 tokens",
        ),  # vLLM
        (400, "The decoder prompt (length 5000) is longer than the maximum model length of 4096."),  # vLLM V1
        (400, "the request exceeds the available context size, try increasing it"),  # llama-server
        (422, "Input validation error: `inputs` must have less than 4095 tokens. Given: 5000"),  # TGI
        (
            422,
            "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 4000",
        ),  # TGI
    ],
)
def test_context_messages_of_each_server(serve, status: int, message: str) -> None:
    srv = serve(
        lambda path, body: (status, {"error": message}) if "completions" in path else ignores_n(path, body)
    )
    (g,) = OpenAIGenerator(srv.url, model="m", use_n=False).generate([_req("a", n=1)])
    assert g.error == PROMPT_TOO_LONG and g.extra["server_error"] == message


def test_other_client_error_is_not_a_context_error(serve) -> None:
    srv = serve(lambda path, body: (400, {"error": {"message": "temperature must be <= 2"}}))
    with pytest.raises(OvertonliteError, match="HTTP 400: temperature must be <= 2"):
        list(OpenAIGenerator(srv.url, model="m", use_n=False).generate([_req("a", n=1)]))


def test_refused_setting_is_dropped_and_reported(serve) -> None:
    def picky(path: str, body: dict[str, Any]) -> Reply:
        if path.endswith("/completions") and "top_k" in body:
            return 400, {"error": {"message": "top_k must be -1 (disable), or at least 1, got 0."}}
        return ignores_n(path, body)

    srv = serve(picky)
    gen = OpenAIGenerator(srv.url, model="m", use_n=False, max_concurrency=1)
    (g,) = gen.generate([_req("a", n=2)])
    assert len(g.samples) == 2 and g.extra["dropped_fields"] == ["top_k"]
    assert gen.describe()["dropped_fields"] == ["top_k"]
    assert ["top_k" in b for b in srv.completions()] == [True, False, False]


def test_tgi_refusing_top_p_one(serve) -> None:
    def tgi(path: str, body: dict[str, Any]) -> Reply:
        if path.endswith("/completions") and body.get("top_p") == 1.0:
            return 422, {
                "error": "Input validation error: `top_p` must be > 0.0 and < 1.0",
                "error_type": "validation",
            }
        return ignores_n(path, body)

    srv = serve(tgi)
    (g,) = OpenAIGenerator(srv.url, model="tgi", use_n=False, max_concurrency=1).generate([_req("a", n=2)])
    assert len(g.samples) == 2 and g.extra["dropped_fields"] == ["top_p"]


def test_transient_errors_are_retried(serve) -> None:
    state = {"fails": 2}

    def flaky(path: str, body: dict[str, Any]) -> Reply:
        if path.endswith("/completions") and state["fails"] > 0:
            state["fails"] -= 1
            return 503, {"error": {"message": "loading model"}}
        return ignores_n(path, body)

    srv = serve(flaky)
    gen = OpenAIGenerator(srv.url, model="m", use_n=False, backoff=0.01)
    (g,) = gen.generate([_req("a", n=1)])
    assert g.samples[0].text == "seed 100 says hi" and len(srv.completions()) == 3


def test_persistent_5xx_gives_one_line_error_naming_the_url(serve) -> None:
    srv = serve(lambda path, body: (500, {"error": {"message": "CUDA out of memory\nstack..."}}))
    gen = OpenAIGenerator(srv.url, model="m", use_n=False, retries=2, backoff=0.01)
    with pytest.raises(OvertonliteError) as err:
        list(gen.generate([_req("a", n=1)]))
    msg = str(err.value)
    assert "\n" not in msg and f"{srv.url}/completions" in msg
    assert "HTTP 500: CUDA out of memory stack..." in msg and "3 attempts" in msg
    assert len(srv.completions()) == 3


def test_client_errors_are_not_retried_and_key_is_sent_not_shown(serve, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-123")
    srv = serve(lambda path, body: (401, {"error": {"message": "invalid api key"}}))
    gen = OpenAIGenerator(srv.url, model="m", use_n=False, backoff=0.01)
    with pytest.raises(OvertonliteError, match="refused the request: HTTP 401: invalid api key"):
        list(gen.generate([_req("a", n=1)]))
    assert len(srv.calls) == 1
    assert srv.calls[0][2]["Authorization"] == "Bearer sk-secret-123"
    info_url = OpenAIGenerator(srv.url, model="m").describe()["base_url"]
    assert info_url == srv.url


def test_credentials_in_the_url_become_basic_auth(serve, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OVERTONLITE_API_KEY", raising=False)
    srv = serve(ignores_n)
    gen = OpenAIGenerator(srv.url.replace("http://", "http://user:p%40ss@"), model="m", use_n=False)
    assert gen.api_base == srv.url and gen.describe()["base_url"] == srv.url
    list(gen.generate([_req("a", n=1)]))
    assert {c[2]["Authorization"] for c in srv.calls} == {"Basic dXNlcjpwQHNz"}  # user:p@ss


def test_connection_refused(serve) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gen = OpenAIGenerator(f"http://127.0.0.1:{port}/v1", model="m", use_n=False, retries=2, backoff=0.01)
    with pytest.raises(OvertonliteError) as err:
        list(gen.generate([_req("a", n=1)]))
    msg = str(err.value)
    assert msg.startswith(
        f"cannot use the OpenAI-compatible server at http://127.0.0.1:{port}/v1/completions"
    )
    assert "connection refused" in msg and "3 attempts" in msg and "\n" not in msg


def test_concurrency_bound_and_completion_order(serve) -> None:
    def slow(path: str, body: dict[str, Any]) -> Reply:
        if path.endswith("/completions"):
            time.sleep(0.4 if body["prompt"] == "slow" else 0.05)
        return ignores_n(path, body)

    srv = serve(slow)
    gen = OpenAIGenerator(srv.url, model="m", use_n=False, max_concurrency=3)
    reqs = [_req("slow", prompt="slow", n=1)] + [_req(f"f{i}", prompt="fast", n=2) for i in range(4)]
    seen: list[int] = []
    keys = [g.key for g in gen.generate(reqs, on_tokens=seen.append)]
    assert sorted(keys) == sorted(r.key for r in reqs)
    assert keys[0] != "slow"  # groups come back as they complete
    assert srv.max_active <= 3 and srv.max_active >= 2
    assert sum(seen) == 4 * 9


def test_timeout_is_not_retried(serve) -> None:
    def hang(path: str, body: dict[str, Any]) -> Reply:
        time.sleep(1.0)
        return ignores_n(path, body)

    srv = serve(hang)
    gen = OpenAIGenerator(srv.url, model="m", use_n=False, timeout=0.2)
    with pytest.raises(OvertonliteError, match=r"no answer .* within 0.2s"):
        list(gen.generate([_req("a", n=1)]))
    assert len(srv.calls) == 1


# -- the real thing: llama-cpp-python's OpenAI-compatible server ------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_missing() -> str | None:
    for module in (
        "llama_cpp",
        "fastapi",
        "uvicorn",
        "sse_starlette",
        "starlette_context",
        "pydantic_settings",
    ):
        try:
            __import__(module)
        except ImportError:
            return f"llama-cpp-python's server is not installed ({module} missing): pip install 'overtonlite[server]'"
    return None


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path) -> Iterator[str]:
    """``python -m llama_cpp.server`` on a free loopback port serving the tiny GGUF as model ``tiny``."""
    reason = _server_missing()
    if reason:
        pytest.skip(reason)
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(tiny_gguf), "--model_alias", "tiny"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "512", "--n_threads", "1"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not come up in 120 s: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def real(llama_server: str) -> OpenAIGenerator:
    return OpenAIGenerator(llama_server, model="tiny", chat=True, max_concurrency=2)


@pytest.mark.slow
def test_real_server_n_samples_and_seeds(real: OpenAIGenerator) -> None:
    req = GenRequest(
        "g", "The weather today is", (11, 22, 33), SamplingConfig(temperature=1.0, max_tokens=12)
    )
    (g,) = real.generate([req])
    assert g.error is None and [s.seed for s in g.samples] == [11, 22, 33]
    assert len({s.text for s in g.samples}) == 3  # different seeds, different samples
    assert all(s.max_tokens == 12 and s.finish_reason in ("length", "eos") for s in g.samples)
    # a random-weight model rarely ends on its own; llama-cpp-python may finish a split UTF-8 character
    # past max_tokens, so the count is at least, not exactly, 12
    lengths = [s.n_tokens for s in g.samples if s.finish_reason == "length"]
    assert lengths and all(12 <= n <= 16 for n in lengths), [s.to_dict() for s in g.samples]
    assert g.prompt_tokens > 0 and g.extra["n_tokens_source"] == ["usage"]
    # llama-cpp-python ignores n: every sample is its own request with its own seed, reproducibly
    (again,) = real.generate([req])
    assert [s.text for s in again.samples] == [s.text for s in g.samples]
    info = real.describe()
    assert info["backend"] == "openai" and info["server_models"] == ["tiny"]
    assert info["n_per_request"] == "one request per sample" and info["tokenizer"] == "llama-cpp-python"


@pytest.mark.slow
def test_real_server_stop_strings_and_token_count(real: OpenAIGenerator) -> None:
    base = GenRequest("s", "a b c", (5,), SamplingConfig(temperature=1.0, max_tokens=40))
    (free,) = real.generate([base])
    text = free.samples[0].text
    stop = next((ch for ch in text[3 : len(text) // 2] if ch.strip()), None)  # stops well before 40 tokens
    assert stop is not None, f"no usable stop character in {text!r}"
    (g,) = real.generate([GenRequest("s2", "a b c", (5,), base.sampling.replace(stop=(stop,)))])
    (s,) = g.samples
    assert stop not in s.text and text.startswith(s.text) and s.finish_reason == "stop"
    assert s.n_tokens < 40
    assert real.count_tokens("hello world") > 0


@pytest.mark.slow
def test_real_server_chat_mode(real: OpenAIGenerator) -> None:
    prompt = real.render_chat([{"role": "user", "content": "Hi there"}])
    (g,) = real.generate([GenRequest("c", prompt, (1, 2), SamplingConfig(temperature=1.0, max_tokens=8))])
    assert g.error is None and len(g.samples) == 2
    assert g.prompt_tokens > real.count_tokens("Hi there")  # the server applied a chat template


@pytest.mark.slow
def test_real_server_prompt_too_long(real: OpenAIGenerator) -> None:
    long = GenRequest("long", "word " * 700, (1, 2), SamplingConfig(max_tokens=8))
    ok = GenRequest("ok", "Hello", (1,), SamplingConfig(max_tokens=4))
    results = {g.key: g for g in real.generate([long, ok])}
    assert results["long"].error == PROMPT_TOO_LONG and results["long"].samples == []
    assert "context" in results["long"].extra["server_error"]
    assert results["ok"].error is None and len(results["ok"].samples) == 1
