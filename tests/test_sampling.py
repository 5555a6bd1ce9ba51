"""sample_run: records, seeds, cache keys, resume, refusal to mix configs, errors, interrupts, manifest."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from overtonlite.backends.base import GenRequest, GroupResult
from overtonlite.backends.fake import FakeGenerator
from overtonlite.config import SamplingConfig, derive_seed, stable_hash
from overtonlite.datasets import Prompt, load_prompts
from overtonlite.errors import RunLockedError, UsageError
from overtonlite.rundir.manifest import read_manifest
from overtonlite.rundir.records import RunDir, read_groups
from overtonlite.sampling import SampleInterrupted, SampleProgress, sample_run

SMALL = SamplingConfig(max_tokens=24)


class Scripted:
    """Wraps a generator: records what was requested, can fail or be 'interrupted' after K groups."""

    def __init__(
        self,
        inner: Any,
        *,
        fail_after: int | None = None,
        exc: type[BaseException] = RuntimeError,
        reverse: bool = False,
        hook: Any = None,
    ) -> None:
        self.inner = inner
        self.fail_after = fail_after
        self.exc = exc
        self.reverse = reverse
        self.hook = hook
        self.requested: list[list[GenRequest]] = []
        self.streams_closed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def generate(self, requests: Iterable[GenRequest], *, on_tokens: Any = None) -> Iterator[GroupResult]:
        reqs = list(requests)
        self.requested.append(reqs)
        results = list(self.inner.generate(reqs, on_tokens=on_tokens))
        if self.reverse:
            results.reverse()
        try:
            for i, result in enumerate(results):
                if self.fail_after is not None and i == self.fail_after:
                    raise self.exc("simulated failure")
                if self.hook is not None:
                    self.hook(i)
                yield result
        finally:
            self.streams_closed += 1


def _prompts(k: int = 6) -> list[Prompt]:
    return load_prompts("builtin:open-ended", limit=k)


def _lines(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]


def test_records_follow_the_stable_shape(tmp_path: Path) -> None:
    gen = FakeGenerator("chatty")
    prompts = _prompts(3)
    summary = sample_run(gen, prompts, out=tmp_path, system="sys-a", n=4, sampling=SMALL, seed=7)
    assert (summary.groups_total, summary.groups_done, summary.groups_skipped, summary.groups_failed) == (
        3,
        3,
        0,
        0,
    )
    assert summary.complete and not summary.interrupted
    records = _lines(tmp_path)
    assert [r["prompt_id"] for r in records] == [p.id for p in prompts]
    assert summary.tokens == sum(s["n_tokens"] for r in records for s in r["samples"])
    for prompt, rec in zip(prompts, records, strict=True):
        rendered = gen.render_chat([{"role": "user", "content": prompt.text}])
        digest = hashlib.sha256(rendered.encode()).hexdigest()
        assert rec["system"] == "sys-a" and rec["model"] == "chatty"
        assert rec["model_sha256"] == gen.model_sha256
        assert rec["prompt"] == prompt.text and rec["set"] == "open-ended" and rec["mode"] == "chat"
        assert rec["rendered_prompt_sha256"] == digest
        assert rec["key"] == stable_hash(
            {
                "model_sha256": gen.model_sha256,
                "rendered_prompt_sha256": digest,
                "sampling": SMALL.to_dict(),
                "seed": 7,
                "n": 4,
            }
        )
        assert rec["n"] == 4 and rec["seed"] == 7 and rec["sampling"] == SMALL.to_dict()
        assert rec["error"] is None and rec["prompt_tokens"] > 0
        assert [s["seed"] for s in rec["samples"]] == [derive_seed(7, prompt.id, i) for i in range(4)]
        for s in rec["samples"]:
            assert set(s) >= {"text", "n_tokens", "finish_reason", "seed", "max_tokens"}
            assert s["max_tokens"] == 24 and 0 < s["n_tokens"] <= 24
        assert len({s["text"] for s in rec["samples"]}) > 1
    assert len({r["config_hash"] for r in records}) == 1


def test_same_settings_give_identical_samples(tmp_path: Path) -> None:
    prompts = _prompts(2)
    sample_run(FakeGenerator("m"), prompts, out=tmp_path / "a", n=3, sampling=SMALL)
    sample_run(FakeGenerator("m"), prompts, out=tmp_path / "b", n=3, sampling=SMALL)
    sample_run(FakeGenerator("m"), prompts, out=tmp_path / "c", n=3, sampling=SMALL, seed=1)
    a, b, c = (_lines(tmp_path / d) for d in "abc")
    assert [r["samples"] for r in a] == [r["samples"] for r in b]
    assert [r["samples"] for r in a] != [r["samples"] for r in c]


def test_modes_and_custom_render(tmp_path: Path) -> None:
    prompts = _prompts(2)
    base = FakeGenerator("base", chat_template=False)
    sample_run(base, prompts, out=tmp_path / "auto", n=2, sampling=SMALL)
    rec = _lines(tmp_path / "auto")[0]
    assert rec["mode"] == "raw"
    assert rec["rendered_prompt_sha256"] == hashlib.sha256(prompts[0].text.encode()).hexdigest()
    with pytest.raises(UsageError, match="no chat template"):
        sample_run(base, prompts, out=tmp_path / "chat", n=2, sampling=SMALL, mode="chat")
    with pytest.raises(UsageError, match="unknown prompt mode"):
        sample_run(base, prompts, out=tmp_path / "x", mode="fancy")
    sample_run(FakeGenerator("c"), prompts, out=tmp_path / "raw", n=2, sampling=SMALL, mode="raw")
    assert _lines(tmp_path / "raw")[0]["mode"] == "raw"

    def render(p: Prompt) -> str:
        return f"Q: {p.text}\nA:"

    sample_run(base, prompts, out=tmp_path / "custom", n=2, sampling=SMALL, render=render)
    rec = _lines(tmp_path / "custom")[1]
    assert rec["mode"] == "custom"
    assert rec["rendered_prompt_sha256"] == hashlib.sha256(render(prompts[1]).encode()).hexdigest()


def test_resume_after_crash_generates_only_missing_groups(tmp_path: Path) -> None:
    prompts = _prompts(6)
    crashing = Scripted(FakeGenerator("m"), fail_after=2)
    with pytest.raises(RuntimeError, match="simulated"):
        sample_run(crashing, prompts, out=tmp_path / "run", n=3, sampling=SMALL)
    assert crashing.streams_closed == 1
    assert len(_lines(tmp_path / "run")) == 2
    resumed = Scripted(FakeGenerator("m"))
    summary = sample_run(resumed, prompts, out=tmp_path / "run", n=3, sampling=SMALL)
    requested_ids = {rec["prompt_id"] for rec in _lines(tmp_path / "run")[2:]}
    assert len(resumed.requested[0]) == 4 and requested_ids == {p.id for p in prompts[2:]}
    assert (summary.groups_done, summary.groups_skipped) == (4, 2)
    # nothing twice, and the result equals an uninterrupted run
    lines = _lines(tmp_path / "run")
    assert sorted(r["prompt_id"] for r in lines) == sorted(p.id for p in prompts)
    sample_run(FakeGenerator("m"), prompts, out=tmp_path / "clean", n=3, sampling=SMALL)
    by_id = {r["prompt_id"]: r["samples"] for r in _lines(tmp_path / "clean")}
    assert all(by_id[r["prompt_id"]] == r["samples"] for r in lines)
    # a third call finds everything done and does not call the generator
    idle = Scripted(FakeGenerator("m"))
    summary = sample_run(idle, prompts, out=tmp_path / "run", n=3, sampling=SMALL)
    assert idle.requested == [] and summary.groups_skipped == 6 and summary.groups_done == 0


def test_more_prompts_later_extends_the_run(tmp_path: Path) -> None:
    sample_run(FakeGenerator("m"), _prompts(2), out=tmp_path, n=2, sampling=SMALL)
    gen = Scripted(FakeGenerator("m"))
    summary = sample_run(gen, _prompts(5), out=tmp_path, n=2, sampling=SMALL)
    assert len(gen.requested[0]) == 3 and summary.groups_skipped == 2
    assert len(read_groups(tmp_path)) == 5


def test_keyboard_interrupt_keeps_written_groups(tmp_path: Path) -> None:
    gen = Scripted(FakeGenerator("m"), fail_after=3, exc=KeyboardInterrupt)
    with pytest.raises(SampleInterrupted) as info:
        sample_run(gen, _prompts(6), out=tmp_path, n=2, sampling=SMALL)
    assert isinstance(info.value, KeyboardInterrupt)
    assert info.value.summary.interrupted and info.value.summary.groups_done == 3
    assert gen.streams_closed == 1
    assert len(_lines(tmp_path)) == 3
    with RunDir(tmp_path).lock():  # the lock was released
        pass
    summary = sample_run(FakeGenerator("m"), _prompts(6), out=tmp_path, n=2, sampling=SMALL)
    assert (summary.groups_done, summary.groups_skipped) == (3, 3)


class OneByOne:
    """Generates each group only when asked for it, reporting its tokens first, like a real engine."""

    def __init__(self, inner: Any, hook: Any) -> None:
        self.inner = inner
        self.hook = hook

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def generate(self, requests: Iterable[GenRequest], *, on_tokens: Any = None) -> Iterator[GroupResult]:
        for i, req in enumerate(requests):
            [result] = self.inner.generate([req], on_tokens=on_tokens)
            self.hook(i)
            yield result


needs_default_sigint = pytest.mark.skipif(
    signal.getsignal(signal.SIGINT) is not signal.default_int_handler, reason="SIGINT has a custom handler"
)


def _ctrl_c_at(index: int) -> Any:
    def hook(i: int) -> None:
        if i == index:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while group ``index`` is being produced

    return hook


@needs_default_sigint
def test_first_ctrl_c_finishes_the_current_group(tmp_path: Path) -> None:
    events: list[str] = []
    gen = OneByOne(FakeGenerator("m"), hook=_ctrl_c_at(2))
    with pytest.raises(SampleInterrupted) as info:
        sample_run(
            gen, _prompts(6), out=tmp_path, n=2, sampling=SMALL, progress=lambda e: events.append(e.kind)
        )
    assert info.value.summary.groups_done == 3  # group 2 was still written, group 3 was not waited for
    assert len(_lines(tmp_path)) == 3
    assert "stopping" in events and events[-1] == "end"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@needs_default_sigint
def test_first_ctrl_c_keeps_groups_that_finished_together(tmp_path: Path) -> None:
    """Groups already generated when Ctrl-C comes (decoded in the same batch) are written, not thrown away."""
    events: list[str] = []
    gen = Scripted(FakeGenerator("m"), hook=_ctrl_c_at(2))  # all tokens are reported before the first group
    summary = sample_run(
        gen, _prompts(6), out=tmp_path, n=2, sampling=SMALL, progress=lambda e: events.append(e.kind)
    )
    assert summary.complete and summary.groups_done == 6 and not summary.interrupted
    assert "stopping" in events and len(_lines(tmp_path)) == 6
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_groups_are_written_in_completion_order(tmp_path: Path) -> None:
    prompts = _prompts(4)
    sample_run(Scripted(FakeGenerator("m"), reverse=True), prompts, out=tmp_path, n=2, sampling=SMALL)
    lines = _lines(tmp_path)
    assert [r["prompt_id"] for r in lines] == [p.id for p in reversed(prompts)]
    for rec in lines:
        assert rec["samples"][0]["seed"] == derive_seed(0, rec["prompt_id"], 0)


@pytest.mark.parametrize(
    "change",
    [{"sampling": SamplingConfig(max_tokens=25)}, {"n": 3}, {"seed": 1}, {"mode": "raw"}],
)
def test_different_config_for_same_system_is_refused(tmp_path: Path, change: dict) -> None:
    kwargs: dict[str, Any] = {"out": tmp_path, "system": "s", "n": 2, "sampling": SMALL, "seed": 0}
    sample_run(FakeGenerator("m"), _prompts(2), **kwargs)
    before = (tmp_path / "samples.jsonl").read_text()
    with pytest.raises(UsageError, match="other settings") as info:
        sample_run(FakeGenerator("m"), _prompts(2), **{**kwargs, **change})
    assert "\n" not in str(info.value) and info.value.exit_code == 2
    assert (tmp_path / "samples.jsonl").read_text() == before
    # a different model file under the same system name is refused too
    with pytest.raises(UsageError, match="model_sha256"):
        sample_run(FakeGenerator("m", model_sha256="1" * 64), _prompts(2), **kwargs)


def test_two_systems_share_a_run_dir(tmp_path: Path) -> None:
    base = FakeGenerator("tiny-base", chat_template=False, model_sha256="ab" * 32)
    chat = FakeGenerator("tiny-chat", model_sha256="cd" * 32)
    sample_run(base, _prompts(3), out=tmp_path, n=2, sampling=SMALL)
    sample_run(chat, _prompts(3), out=tmp_path, n=2, sampling=SMALL)
    manifest = read_manifest(tmp_path)
    assert manifest is not None
    assert set(manifest["systems"]) == {"tiny-base", "tiny-chat"}
    assert manifest["systems"]["tiny-base"]["mode"] == "raw"
    assert manifest["systems"]["tiny-chat"]["backend"]["backend"] == "fake"
    sig = manifest["signature"]
    assert "tiny-base@abababab" in sig and "tiny-chat@cdcdcdcd" in sig
    assert re.fullmatch(
        r"overtonlite \S+ \| .+ \| n=2 T=0\.5 rp=1\.1 top_p=off top_k=off max_tokens=24 \| seed=0 \| cfg:[0-9a-f]{8}",
        sig,
    ), sig
    groups = read_groups(tmp_path)
    assert sorted({g["system"] for g in groups}) == ["tiny-base", "tiny-chat"] and len(groups) == 6


def test_manifest_contents(tmp_path: Path) -> None:
    sample_run(FakeGenerator("m"), _prompts(1), out=tmp_path, n=2, sampling=SMALL, seed=3)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    for key in (
        "overtonlite_version",
        "created",
        "updated",
        "git_revision",
        "python",
        "platform",
        "packages",
        "systems",
        "signature",
    ):
        assert key in manifest
    assert manifest["overtonlite_version"] == "0.1.0"
    assert manifest["git_revision"] is None or re.fullmatch(r"[0-9a-f]{40}", manifest["git_revision"])
    assert set(manifest["packages"]) >= {
        "llama_cpp",
        "onnxruntime",
        "fastembed",
        "numpy",
        "click",
        "rich",
        "huggingface_hub",
        "nltk",
    }
    assert manifest["packages"]["numpy"]
    entry = manifest["systems"]["m"]
    assert entry["config"] == SMALL.to_dict() and entry["seed"] == 3 and entry["n"] == 2
    assert entry["model_sha256"] == "0" * 64
    created = manifest["created"]
    sample_run(FakeGenerator("m"), _prompts(2), out=tmp_path, n=2, sampling=SMALL, seed=3)
    again = json.loads((tmp_path / "manifest.json").read_text())
    assert again["created"] == created
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_prompt_too_long_is_recorded_not_fatal(tmp_path: Path) -> None:
    prompts = [Prompt("short", "Is tea good?"), Prompt("long", " ".join(["word"] * 50)), Prompt("s2", "Why?")]
    gen = FakeGenerator("m", n_ctx=20)
    summary = sample_run(gen, prompts, out=tmp_path, n=2, sampling=SMALL, mode="raw")
    assert (summary.groups_done, summary.groups_failed) == (2, 1)
    bad = {r["prompt_id"]: r for r in _lines(tmp_path)}["long"]
    assert bad["error"] == "prompt_too_long" and bad["samples"] == []
    # resume: not retried by default...
    again = Scripted(FakeGenerator("m", n_ctx=20))
    summary = sample_run(again, prompts, out=tmp_path, n=2, sampling=SMALL, mode="raw")
    assert again.requested == [] and summary.groups_skipped == 3
    # ...but retried on request (here with a larger context), and the new record wins
    retry = Scripted(FakeGenerator("m", n_ctx=200))
    summary = sample_run(retry, prompts, out=tmp_path, n=2, sampling=SMALL, mode="raw", retry_errors=True)
    assert [r.key for r in retry.requested[0]] == [bad["key"]]
    assert summary.groups_done == 1 and summary.groups_failed == 0
    final = {g["prompt_id"]: g for g in read_groups(tmp_path)}
    assert final["long"]["error"] is None and len(final["long"]["samples"]) == 2


def test_changed_prompt_text_under_same_id_is_refused(tmp_path: Path) -> None:
    sample_run(FakeGenerator("m"), [Prompt("p1", "Is sugar bad?")], out=tmp_path, n=2, sampling=SMALL)
    with pytest.raises(UsageError, match="different prompt text"):
        sample_run(FakeGenerator("m"), [Prompt("p1", "Is salt bad?")], out=tmp_path, n=2, sampling=SMALL)


def test_bad_inputs(tmp_path: Path) -> None:
    gen = FakeGenerator("m")
    with pytest.raises(UsageError, match="same text"):
        sample_run(gen, [Prompt("a", "same"), Prompt("b", "same")], out=tmp_path, n=2, sampling=SMALL)
    with pytest.raises(UsageError, match="duplicate prompt id"):
        sample_run(gen, [Prompt("a", "x"), Prompt("a", "y")], out=tmp_path, n=2, sampling=SMALL)
    with pytest.raises(UsageError, match="no prompts"):
        sample_run(gen, [], out=tmp_path)
    with pytest.raises(UsageError, match="--n"):
        sample_run(gen, _prompts(1), out=tmp_path, n=0)


def test_locked_run_dir_is_refused(tmp_path: Path) -> None:
    with RunDir(tmp_path).lock():
        with pytest.raises(RunLockedError, match=f"process {os.getpid()}"):
            sample_run(FakeGenerator("m"), _prompts(1), out=tmp_path, n=2, sampling=SMALL)


def test_progress_events(tmp_path: Path) -> None:
    events: list[SampleProgress] = []
    sample_run(FakeGenerator("m"), _prompts(3), out=tmp_path, n=2, sampling=SMALL, progress=events.append)
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("group") == 3 and "tokens" in kinds
    groups = [e for e in events if e.kind == "group"]
    assert [e.groups_written for e in groups] == [1, 2, 3]
    assert groups[-1].record is not None and groups[-1].tokens > 0
    events.clear()
    sample_run(FakeGenerator("m"), _prompts(4), out=tmp_path, n=2, sampling=SMALL, progress=events.append)
    assert events[0].groups_total == 4 and events[0].groups_todo == 1


# -- real llama.cpp on the tiny random-weight GGUF ----------------------------------------------------------------


def _llama_generator(path: Path) -> Any:
    pytest.importorskip("llama_cpp")
    mod = pytest.importorskip("overtonlite.backends.llamacpp")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return mod.LlamaCppGenerator(path, name="tiny", model_sha256=sha, n_ctx=256, n_threads=1, max_seqs=8)


def test_llamacpp_resume_and_lock(tmp_path: Path, tiny_gguf: Path) -> None:
    prompts = [Prompt(f"t{i}", f"hello number {i} says") for i in range(5)]
    cfg = SamplingConfig(max_tokens=8)
    gen = _llama_generator(tiny_gguf)
    try:
        crashing = Scripted(gen, fail_after=2)
        with pytest.raises(RuntimeError):
            sample_run(crashing, prompts, out=tmp_path / "run", n=3, sampling=cfg, mode="raw")
        assert len(_lines(tmp_path / "run")) == 2
        written = {r["prompt_id"] for r in _lines(tmp_path / "run")}
        resumed = Scripted(gen)
        summary = sample_run(resumed, prompts, out=tmp_path / "run", n=3, sampling=cfg, mode="raw")
        assert summary.groups_skipped == 2 and summary.groups_done == 3
        # every cohort (consecutive slice of the plan) that misses a group is regenerated whole, with its index
        size = gen.cohort_groups(3)
        cohorts = [prompts[i : i + size] for i in range(0, len(prompts), size)]
        redo = [(c, p.id) for c, co in enumerate(cohorts) if any(p.id not in written for p in co) for p in co]
        ids = {r.key: p.id for r, p in zip(crashing.requested[0], prompts, strict=True)}
        assert [(r.cohort, ids[r.key]) for r in resumed.requested[0]] == redo
        lines = _lines(tmp_path / "run")
        assert sorted(r["prompt_id"] for r in lines) == [p.id for p in prompts]  # nothing written twice
        for rec in lines:
            assert rec["model_sha256"] == gen.model_sha256 and len(rec["samples"]) == 3
            assert all(s["max_tokens"] == 8 and s["n_tokens"] <= 8 for s in rec["samples"])
        # an uninterrupted run gives the same samples (seeds are per sample, not per batch)
        sample_run(gen, prompts, out=tmp_path / "clean", n=3, sampling=cfg, mode="raw")
        clean = {r["prompt_id"]: r["samples"] for r in _lines(tmp_path / "clean")}
        assert all(clean[r["prompt_id"]] == r["samples"] for r in lines)
        with RunDir(tmp_path / "run").lock():
            with pytest.raises(RunLockedError):
                sample_run(gen, prompts, out=tmp_path / "run", n=3, sampling=cfg, mode="raw")
    finally:
        gen.close()


def test_manifest_records_each_pass(tmp_path: Path) -> None:
    """Every sample_run call that generates adds one pass record (time, groups, tokens, the generator's step
    statistics over the call); an interrupted pass is recorded as such; a resume with nothing to do adds none;
    re-registering the system keeps the earlier passes."""
    prompts = _prompts(4)
    stopped = Scripted(FakeGenerator("m"), fail_after=1, exc=KeyboardInterrupt)
    with pytest.raises(SampleInterrupted):
        sample_run(stopped, prompts, out=tmp_path, n=2, sampling=SMALL)
    first = read_manifest(tmp_path)["systems"]["m"]["passes"]
    assert len(first) == 1 and first[0]["interrupted"] is True and first[0]["groups"] == 1
    gen = FakeGenerator("m")
    summary = sample_run(gen, prompts, out=tmp_path, n=2, sampling=SMALL)
    passes = read_manifest(tmp_path)["systems"]["m"]["passes"]
    assert passes[0] == first[0] and len(passes) == 2
    last = passes[1]
    assert last["interrupted"] is False and last["groups"] == summary.groups_done == 3
    assert last["tokens"] == summary.tokens > 0 and last["seconds"] >= 0
    # the fake generator counts its own tokens: the pass's engine statistics are the difference over the call
    assert last["engine"]["generated_tokens"] == summary.tokens and last["engine"]["groups"] == 3
    assert summary.engine == last["engine"]
    sample_run(FakeGenerator("m"), prompts, out=tmp_path, n=2, sampling=SMALL)  # nothing left to do
    assert read_manifest(tmp_path)["systems"]["m"]["passes"] == passes
