"""Served models through open_generator: several endpoints, concurrency per endpoint, keys from the named
environment variable only, results independent of the number of endpoints, refused settings.

Fast tests use the scripted loopback server of test_openai_backend; the real-server tests are in
test_served_real.py."""

from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import tests.test_openai_backend as ob
from overtonlite.backends import open_generator, served_sha256
from overtonlite.backends.base import GenRequest
from overtonlite.config import SamplingConfig, derive_seed
from overtonlite.errors import OvertonliteError, UsageError
from overtonlite.registry import load_registry

serve = ob.serve  # the fixture


def _registry(tmp_path: Path, urls: list[str], *, role: str = "base", extra: str = "") -> Any:
    quoted = ", ".join(f'"{u}"' for u in urls)
    text = f"""
    [models.srv]
    family = "f"
    role = "{role}"
    [models.srv.source]
    kind = "endpoint"
    base_urls = [{quoted}]
    model = "m"
    concurrency = 2
    retries = 1
    {extra}
    """
    p = tmp_path / "models.toml"
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_registry(p)


def _requests(k: int = 6, n: int = 3) -> list[GenRequest]:
    sp = SamplingConfig(max_tokens=8)
    return [
        GenRequest(f"p{i}", f"Prompt {i}", tuple(derive_seed(0, f"p{i}", j) for j in range(n)), sp)
        for i in range(k)
    ]


def slow_ignores_n(path: str, body: dict[str, Any]) -> ob.Reply:
    if path.endswith("/completions"):
        time.sleep(0.05)
    return ob.ignores_n(path, body)


def test_requests_spread_over_endpoints_with_concurrency_per_endpoint(serve, tmp_path: Path) -> None:
    a, b = serve(slow_ignores_n), serve(slow_ignores_n)
    reg = _registry(tmp_path, [a.url, b.url])
    gen = open_generator("srv", registry=reg)
    assert gen.max_concurrency == 4 and gen.name == "srv" and not gen.has_chat_template()
    assert gen.model_sha256 == served_sha256("m")
    out = {g.key: g for g in gen.generate(_requests())}
    assert len(out) == 6 and all(g.error is None and len(g.samples) == 3 for g in out.values())
    na, nb = len(a.completions()), len(b.completions())
    assert na + nb == 18 and abs(na - nb) <= 2, (na, nb)  # round-robin over the two URLs
    assert a.max_active <= 2 and b.max_active <= 2  # concurrency = 2 per endpoint
    info = gen.describe()
    assert info["base_urls"] == [a.url, b.url] and info["concurrency_per_endpoint"] == 2


def test_results_do_not_depend_on_the_number_of_endpoints(serve, tmp_path: Path) -> None:
    a, b, c = serve(slow_ignores_n), serve(slow_ignores_n), serve(slow_ignores_n)
    one = open_generator("srv", registry=_registry(tmp_path, [a.url]))
    three = open_generator("srv", registry=_registry(tmp_path, [a.url, b.url, c.url]))
    texts = [
        {g.key: [(s.text, s.seed) for s in g.samples] for g in gen.generate(_requests())}
        for gen in (one, three)
    ]
    assert texts[0] == texts[1]
    # each sample carries the seed derived from (run seed, prompt id, sample index), whatever server answered
    assert texts[0]["p2"][1][1] == derive_seed(0, "p2", 1)
    assert one.model_sha256 == three.model_sha256  # so a run resumes when endpoints are added


def test_key_only_from_the_named_variable(serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = serve(ob.ignores_n)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-be-sent")
    gen = open_generator("srv", registry=_registry(tmp_path, [a.url]))
    list(gen.generate(_requests(1, 1)))
    assert all("Authorization" not in h for _, _, h in a.calls)
    reg = _registry(tmp_path, [a.url], extra='api_key_env = "SRV_TEST_KEY"')
    monkeypatch.delenv("SRV_TEST_KEY", raising=False)
    with pytest.raises(UsageError, match="SRV_TEST_KEY .* is not set"):
        open_generator("srv", registry=reg)
    monkeypatch.setenv("SRV_TEST_KEY", "secret-123")
    gen = open_generator("srv", registry=reg)
    list(gen.generate(_requests(1, 1)))
    assert a.calls[-1][2]["Authorization"] == "Bearer secret-123"
    assert "secret-123" not in repr(gen.describe())


def test_chat_role_goes_to_chat_endpoint(serve, tmp_path: Path) -> None:
    def chat(path: str, body: dict[str, Any]) -> ob.Reply:
        if path.endswith("/chat/completions"):
            msg = {"role": "assistant", "content": f"hello {body['seed']}"}
            return 200, {
                "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2},
            }
        return ob.ignores_n(path, body)

    a = serve(chat)
    gen = open_generator("srv", registry=_registry(tmp_path, [a.url], role="chat"))
    assert gen.has_chat_template()
    prompt = gen.render_chat([{"role": "user", "content": "Hi"}])
    (g,) = gen.generate([GenRequest("c", prompt, (7,), SamplingConfig(max_tokens=4))])
    assert g.samples[0].text == "hello 7"
    body = a.calls[-1][1]
    assert a.calls[-1][0] == "/v1/chat/completions" and body["messages"] == [
        {"role": "user", "content": "Hi"}
    ]
    # the paper's settings, explicitly: temperature 0.5, repetition penalty 1.1, top-p / top-k off
    assert (body["temperature"], body["repeat_penalty"], body["top_p"], body["top_k"]) == (0.5, 1.1, 1.0, 0)


def test_refused_paper_setting_is_a_one_line_error_naming_it(serve, tmp_path: Path) -> None:
    def no_temp(path: str, body: dict[str, Any]) -> ob.Reply:
        if path.endswith("/completions"):
            return 400, {"error": {"message": "temperature must be at most 0.3 on this server"}}
        return ob.ignores_n(path, body)

    a = serve(no_temp)
    gen = open_generator("srv", registry=_registry(tmp_path, [a.url]))
    with pytest.raises(OvertonliteError) as err:
        list(gen.generate(_requests(1, 1)))
    msg = str(err.value)
    assert "refused the setting temperature=0.5" in msg and "\n" not in msg


def test_5xx_on_one_endpoint_is_retried(serve, tmp_path: Path) -> None:
    lock = threading.Lock()
    state = {"failed": 0}

    def flaky(path: str, body: dict[str, Any]) -> ob.Reply:
        if path.endswith("/completions"):
            with lock:
                if state["failed"] < 1:
                    state["failed"] += 1
                    return 503, {"error": "overloaded"}
        return ob.ignores_n(path, body)

    a, b = serve(flaky), serve(ob.ignores_n)
    gen = open_generator("srv", registry=_registry(tmp_path, [a.url, b.url]))
    gen._servers[0].backoff = gen._servers[1].backoff = 0.01
    out = list(gen.generate(_requests(2, 2)))
    assert state["failed"] == 1 and all(g.error is None and len(g.samples) == 2 for g in out)


def test_hint_model_writes_the_summaries(tmp_path: Path) -> None:
    from overtonlite.backends.fake import FakeGenerator
    from overtonlite.datasets import Prompt
    from overtonlite.experiments.icl import generate_icl
    from overtonlite.rundir.records import read_groups
    from tests.exp_fakes import HashEmbedder, fake_pair

    models = fake_pair()
    hinter = FakeGenerator("hint-writer", chat_template=True, model_sha256="h" * 64, mean_words=12)
    prompts = [Prompt(id=f"p{i}", text=f"How do I learn topic {i}?") for i in range(4)]
    generate_icl(
        models.base,
        models.chat,
        prompts,
        "knn+summary",
        out=tmp_path,
        n=2,
        seed=0,
        k=2,
        embedder=HashEmbedder(),
        hint_model=hinter,
    )
    aux = {g["system"]: g for g in read_groups(tmp_path / "aux")}
    assert set(aux) == {"summaries@hint-writer"} and hinter.stats["groups"] == 4
    chat_groups = models.chat.stats["groups"]
    assert chat_groups == 4  # the chat model answered the prompts, but wrote no summary


@pytest.mark.parametrize("option", [{"kv_layout": "streams"}, {"max_seqs": 4}])
def test_served_model_refuses_engine_settings(tmp_path: Path, option: dict[str, Any]) -> None:
    """The sequence budget and KV layout belong to the local engine: a served model refuses them rather than
    ignoring them (the check comes before any request)."""
    reg = _registry(tmp_path, ["http://127.0.0.1:9/v1"])
    with pytest.raises(UsageError, match="served at http://127.0.0.1:9/v1"):
        open_generator("srv", registry=reg, **option)
