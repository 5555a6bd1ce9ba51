"""The deterministic fake generator honours the same contract as the real engine."""

from __future__ import annotations

import pytest

from overtonlite.backends.base import PROMPT_TOO_LONG, Generator, GenRequest
from overtonlite.backends.fake import FakeGenerator
from overtonlite.config import SamplingConfig
from overtonlite.errors import UsageError


def _req(prompt: str = "Give me advice on sleep", seeds=(1, 2, 3), **kw) -> GenRequest:
    return GenRequest(key=f"k-{prompt[:8]}", prompt=prompt, seeds=tuple(seeds), sampling=SamplingConfig(**kw))


def test_is_a_generator() -> None:
    assert isinstance(FakeGenerator(), Generator)


def test_deterministic_and_seed_dependent() -> None:
    gen = FakeGenerator()
    a = list(gen.generate([_req()]))[0]
    b = list(FakeGenerator().generate([_req()]))[0]
    assert [s.text for s in a.samples] == [s.text for s in b.samples]
    assert len({s.text for s in a.samples}) == 3
    assert [s.seed for s in a.samples] == [1, 2, 3]
    other = list(gen.generate([_req("A different prompt entirely")]))[0]
    assert other.samples[0].text != a.samples[0].text


def test_max_tokens_and_finish_reasons() -> None:
    gen = FakeGenerator(mean_words=30)
    res = list(gen.generate([_req(seeds=range(20), max_tokens=5)]))[0]
    for s in res.samples:
        assert s.n_tokens <= 5 and s.max_tokens == 5
        assert s.finish_reason in ("length", "eos")
        if s.finish_reason == "length":
            assert s.n_tokens == 5
    assert any(s.finish_reason == "length" for s in res.samples)
    long = list(gen.generate([_req(seeds=range(20), max_tokens=1000)]))[0]
    assert all(s.finish_reason == "eos" for s in long.samples)


def test_stop_strings_removed() -> None:
    gen = FakeGenerator(vocab=["alpha", "beta", "gamma"], mean_words=30)
    res = list(gen.generate([_req(seeds=range(10), max_tokens=100, stop=("beta",))]))[0]
    stopped = [s for s in res.samples if s.finish_reason == "stop"]
    assert stopped
    for s in res.samples:
        assert "beta" not in s.text
    # a stop spanning two words ("a g" = end of "alpha" + space + start of "gamma")
    res2 = list(gen.generate([_req(seeds=range(10), max_tokens=100, stop=("a g",))]))[0]
    assert any(s.finish_reason == "stop" for s in res2.samples)
    assert all("a g" not in s.text for s in res2.samples)


def test_prompt_too_long_and_counting() -> None:
    gen = FakeGenerator(n_ctx=4)
    ok, bad = gen.generate([_req("one two three four"), _req("one two three four five")])
    assert ok.error is None and ok.prompt_tokens == 4 and len(ok.samples) == 3
    assert bad.error == PROMPT_TOO_LONG and bad.samples == []
    assert gen.count_tokens("a b  c") == 3


def test_on_tokens_progress() -> None:
    got: list[int] = []
    res = list(FakeGenerator().generate([_req()], on_tokens=got.append))[0]
    assert sum(got) == sum(s.n_tokens for s in res.samples) > 0


def test_chat_rendering() -> None:
    gen = FakeGenerator()
    text = gen.render_chat([{"role": "user", "content": "Hi"}])
    assert text == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert gen.has_chat_template()
    base = FakeGenerator(chat_template=False)
    assert not base.has_chat_template()
    with pytest.raises(UsageError):
        base.render_chat([{"role": "user", "content": "Hi"}])
    with pytest.raises(UsageError):
        gen.render_chat([{"role": "user"}])


def test_describe_and_close() -> None:
    gen = FakeGenerator("f1", n_ctx=99)
    d = gen.describe()
    assert d["backend"] == "fake" and d["n_ctx"] == 99 and d["name"] == "f1"
    gen.close()
    with pytest.raises(UsageError):
        list(gen.generate([_req()]))
