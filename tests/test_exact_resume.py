"""Exact resume: a group's texts do not depend on how the run was interrupted or what else was in flight.

The llama.cpp engine decodes the run plan in cohorts (consecutive slices of the full prompt list, each from a
cleared KV cache), so a resumed run rebuilds the batches of an uninterrupted one. Fast tests check the mechanics
on the tiny GGUF; the realmodel test SIGKILLs a real ``overtonlite sample`` at three moments and compares texts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")

from overtonlite.backends.base import GenRequest, GroupResult  # noqa: E402
from overtonlite.backends.llamacpp import LlamaCppGenerator  # noqa: E402
from overtonlite.config import SamplingConfig  # noqa: E402
from overtonlite.datasets import Prompt  # noqa: E402
from overtonlite.rundir.manifest import read_manifest  # noqa: E402
from overtonlite.sampling import sample_run  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent


def _gen(path: Path, **kw) -> LlamaCppGenerator:
    kw.setdefault("n_ctx", 256)
    kw.setdefault("n_threads", 1)
    return LlamaCppGenerator(path, **kw)


def _req(key: str, prompt: str, cohort: int, max_tokens: int, seeds=(1, 2)) -> GenRequest:
    return GenRequest(key, prompt, tuple(seeds), SamplingConfig(max_tokens=max_tokens), cohort=cohort)


def _texts(results: list[GroupResult]) -> dict[str, list[str]]:
    return {r.key: [s.text for s in r.samples] for r in results}


def test_cohorts_do_not_overlap(tiny_gguf: Path) -> None:
    # a long group in cohort 0 and a short one in cohort 1: decoded together (cohort -1) the short one finishes
    # first; as cohorts, the second starts only once the first is finished
    gen = _gen(tiny_gguf, max_seqs=8, ignore_eos=True)
    try:
        mixed = [_req("long", "A long story", -1, 40), _req("short", "Short", -1, 2)]
        assert [r.key for r in gen.generate(mixed)] == ["short", "long"]
        cohorts = [_req("long", "A long story", 0, 40), _req("short", "Short", 1, 2)]
        assert [r.key for r in gen.generate(cohorts)] == ["long", "short"]
    finally:
        gen.close()


@pytest.mark.parametrize("layout", ["unified", "streams", "unified-packing"])
def test_cohort_texts_do_not_depend_on_what_ran_before(
    tiny_gguf: Path, layout: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    packing = layout == "unified-packing"
    if packing:  # pack after nearly every finished sample (the cached prefix's part included)
        from overtonlite.backends.llamacpp import sched

        monkeypatch.setattr(sched, "PACK_RATIO", 1)
        monkeypatch.setattr(sched, "PACK_MIN_CELLS", 0)
        layout = "unified"
    pre = "A shared preamble that is long enough to be cached as a prefix for every prompt of the plan. " * 2
    plan = [_req(f"g{i}", f"{pre}Question {i}:", i // 2, 12, seeds=(i, i + 7)) for i in range(6)]
    gen = _gen(tiny_gguf, max_seqs=4, kv_layout=layout)
    try:
        whole = _texts(list(gen.generate(plan)))
        assert gen.stats["prefix_tokens_evaluated"] > 0  # the preamble is shared within a cohort
        assert (gen.stats["packs"] > 0) == packing  # the tiny plan never reaches the real thresholds
        kept = gen.stats["prefix_tokens_evaluated"]
        last = _texts(
            list(gen.generate(plan[4:]))
        )  # a resumed run: only the last cohort, prefix still cached
        assert gen.stats["prefix_tokens_evaluated"] == kept  # ... reused, not evaluated again
    finally:
        gen.close()
    fresh = _gen(tiny_gguf, max_seqs=4, kv_layout=layout)
    try:
        alone = _texts(list(fresh.generate(plan[4:])))
    finally:
        fresh.close()
    assert last == alone == {k: whole[k] for k in ("g4", "g5")}


def test_schedule_settings_are_in_the_key_and_the_settings_check(tmp_path: Path, tiny_gguf: Path) -> None:
    prompts = [Prompt(f"t{i}", f"hello number {i} says") for i in range(3)]
    cfg = SamplingConfig(max_tokens=4)
    gen = _gen(tiny_gguf, max_seqs=4)
    try:
        sample_run(gen, prompts, out=tmp_path / "run", n=2, sampling=cfg, mode="raw", system="s")
    finally:
        gen.close()
    entry = read_manifest(tmp_path / "run")["systems"]["s"]
    assert entry["engine"]["max_seqs"] == 4 and entry["engine"]["engine"] == "llama.cpp"
    # the pass is recorded with the engine's step statistics; they are facts, not settings (no check below)
    (done,) = entry["passes"]
    assert done["groups"] == 3 and done["engine"]["generated_tokens"] == done["tokens"] > 0
    by_batch = {int(b): v for b, v in done["steps_by_batch"].items()}
    assert sum(b * steps for b, (steps, _) in by_batch.items()) == done["engine"]["gen_step_tokens"]
    other = _gen(tiny_gguf, max_seqs=6)
    try:
        with pytest.raises(Exception, match=r"other settings \(max_seqs: 4 -> 6"):
            sample_run(other, prompts, out=tmp_path / "run", n=2, sampling=cfg, mode="raw", system="s")
    finally:
        other.close()


# -- SIGKILL a real run at three moments, resume with the same command, compare with an uninterrupted run --------
SAMPLE_ARGS = [
    "sample",
    "--model",
    "smollm2-135m-instruct",
    "--prompts",
    "builtin:open-ended",
    "--limit",
    "12",
    "--n",
    "4",
    "--max-tokens",
    "48",
    "--seed",
    "3",
    "--json",
]


def _lines(out: Path) -> list[dict]:
    path = out / "samples.jsonl"
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.split("\n")[:-1]]  # whole lines only


def _sample(out: Path, kill_at: int | None = None) -> int:
    """Run the CLI; with ``kill_at``, SIGKILL it once ``kill_at`` groups are in samples.jsonl. Returns the count."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    cmd = [sys.executable, "-m", "overtonlite", *SAMPLE_ARGS, "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO_ROOT)
    try:
        if kill_at is None:
            _, err = proc.communicate(timeout=900)
            assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
            return len(_lines(out))
        path = out / "samples.jsonl"
        while proc.poll() is None:
            if path.is_file() and path.read_bytes().count(b"\n") >= kill_at:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return len(_lines(out))
            time.sleep(0.005)
        pytest.fail(f"the run ended (rc={proc.returncode}) before {kill_at} groups were written")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.realmodel
def test_kill_9_at_three_moments_then_resume_gives_the_uninterrupted_texts(
    tmp_path: Path, default_chat_path: Path
) -> None:
    assert _sample(tmp_path / "clean") == 12
    reference = {r["prompt_id"]: [s["text"] for s in r["samples"]] for r in _lines(tmp_path / "clean")}
    out = tmp_path / "killed"
    # each run resumes the previous one and is killed in turn: after the first group, about half of them, and two
    # thirds (the first cohort of 8 groups is written, the last 4 are in flight; they finish together, so a later
    # count would race with the end of the run)
    counts = [_sample(out, kill_at=k) for k in (1, 6, 8)]
    assert counts[0] >= 1 and all(c < 12 for c in counts), counts
    assert _sample(out) == 12
    lines = _lines(out)
    assert sorted(r["prompt_id"] for r in lines) == sorted(reference)  # each group written exactly once
    resumed = {r["prompt_id"]: [s["text"] for s in r["samples"]] for r in lines}
    differing = [pid for pid in reference if resumed[pid] != reference[pid]]
    assert not differing, f"groups whose texts differ from the uninterrupted run: {differing}"


@pytest.mark.realmodel
@pytest.mark.parametrize("layout", ["unified", "streams"])
def test_real_model_cohort_after_a_kept_prefix_matches_a_fresh_start(
    default_chat_path: Path, layout: str
) -> None:
    # a shared preamble (cached as a prefix and kept into the next cohort) on a quantized model: the last cohort
    # gives the same texts after the whole plan, alone on the same generator and alone on a fresh one (with
    # streams, the streams a cohort gets were used by the one before, and samples of unequal length are moved)
    pre = "You answer questions about daily life. Keep answers short, concrete and friendly. " * 4
    plan = [
        _req(
            f"g{i}", f"{pre}Question {i}: how do I keep a plant alive?", i // 2, 24 + 8 * i, seeds=(i, i + 9)
        )
        for i in range(4)
    ]
    gen = LlamaCppGenerator(default_chat_path, n_ctx=512, max_seqs=4, n_threads=1, kv_layout=layout)
    try:
        whole = _texts(list(gen.generate(plan)))
        kept = gen.stats["prefix_tokens_evaluated"]
        again = _texts(list(gen.generate(plan[2:])))
        assert gen.stats["prefix_tokens_evaluated"] == kept  # the prefix was kept, not evaluated again
    finally:
        gen.close()
    fresh = LlamaCppGenerator(default_chat_path, n_ctx=512, max_seqs=4, n_threads=1, kv_layout=layout)
    try:
        alone = _texts(list(fresh.generate(plan[2:])))
        assert fresh.stats["prefix_tokens_evaluated"] > 0
    finally:
        fresh.close()
    assert again == alone == {k: whole[k] for k in ("g2", "g3")}
