"""benchmarks/replicate_bound.py: token counts from a run directory, batch sizes and the lower bound."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "replicate_bound.py"


@pytest.fixture(scope="module")
def rb():
    spec = importlib.util.spec_from_file_location("replicate_bound", PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _group(
    system: str,
    model: str,
    n_tokens: list[int],
    prompt: int,
    evaluated: int,
    max_tokens: int = 80,
    error: str | None = None,
) -> str:
    return json.dumps(
        {
            "system": system,
            "model": model,
            "n": len(n_tokens),
            "sampling": {"max_tokens": max_tokens},
            "prompt_tokens": prompt,
            "prompt_tokens_evaluated": evaluated,
            "seconds": 1.0,
            "error": error,
            "samples": [{"text": "x", "n_tokens": t} for t in n_tokens] if not error else [],
        }
    )


def test_passes_count_tokens_per_system_and_skip_errors(rb, tmp_path):
    (tmp_path / "aux").mkdir()
    (tmp_path / "samples.jsonl").write_text(
        "\n".join(
            [
                _group("base", "m1", [10, 20, 30, 40], 25, 25),
                _group("base", "m1", [5, 5, 5, 5], 30, 30),
                _group("urial", "m1", [80, 80, 80, 80], 400, 20),
                _group("urial", "m1", [], 900, 0, error="prompt_too_long"),
            ]
        )
        + "\n"
    )
    (tmp_path / "aux" / "samples.jsonl").write_text(
        _group("summaries", "m2", [7], 100, 100, max_tokens=96) + "\n"
    )
    rows = {r["system"]: r for r in rb.passes(tmp_path)}
    assert (
        rows["base"]["generated_tokens"] == 120
        and rows["base"]["groups"] == 2
        and rows["base"]["samples"] == 8
    )
    assert rows["base"]["prompt_tokens_evaluated"] == 55
    assert rows["urial"]["groups"] == 1 and rows["urial"]["prompt_tokens_evaluated"] == 20
    assert rows["summaries"]["file"] == "aux" and rows["summaries"]["model"] == "m2"


def test_batch_used_respects_max_seqs_kv_budget_and_samples(rb):
    row = {"n": 5, "groups": 40, "samples": 200, "prompt_tokens": 40 * 40, "max_tokens": 512}
    assert (
        rb.batch_used(row, max_seqs=16, kv_budget=8176) == 15
    )  # 3 whole jobs of 5 fit in 16 sequences and KV
    row["max_tokens"] = 1024  # 40 + 5 x 1024 cells per job: one job
    assert rb.batch_used(row, max_seqs=16, kv_budget=8176) == 5
    small = {"n": 1, "groups": 6, "samples": 6, "prompt_tokens": 600, "max_tokens": 96}
    assert rb.batch_used(small, max_seqs=16, kv_budget=8176) == 6


def test_bound_interpolates_decode_speed_and_adds_prompt_time(rb):
    assert rb.decode_at({1: 50.0, 16: 110.0}, 6) == pytest.approx(70.0)
    assert rb.decode_at({1: 50.0, 16: 110.0}, 32) == 110.0
    row = {
        "model": "m",
        "batch": 16,
        "generated_tokens": 1100,
        "prompt_tokens_evaluated": 800,
        "prompt_tokens": 400,
        "groups": 4,
        "n": 5,
        "token_positions": 1100 * 100,  # mean position 100 in the answer
    }
    cal = {"m": {"decode_tok_s": {1: 50.0, 16: 110.0}, "prompt_tok_s": 400.0}}
    b = rb.bound([dict(row)], cal)  # no depth curves: the short-context speed
    assert b["decode_s"] == pytest.approx(10.0) and b["prompt_s"] == pytest.approx(2.0)
    assert b["total_s"] == pytest.approx(12.0) and b["total_short_s"] == pytest.approx(12.0)
    # depth = 400 prompt tokens / 4 groups / 5 samples sharing them + mean position 100 = 120, halfway down
    # curves that halve the speed between depth 20 and 220: 0.75 of 110 tok/s
    assert rb.pass_depth(row) == pytest.approx(120.0)
    curve = [(20.0, 100.0), (220.0, 50.0)]
    cal["m"]["depth_tok_s"] = {8: curve, 32: curve}
    rows = [dict(row)]
    b = rb.bound(rows, cal)
    assert rows[0]["depth_factor"] == pytest.approx(0.75)
    assert b["decode_s"] == pytest.approx(1100 / 82.5) and b["decode_short_s"] == pytest.approx(10.0)
    # beyond the measured depths the last factor holds (an optimistic bound, never a slower one)
    assert rb.depth_factor({8: curve}, 8, 900.0) == pytest.approx(0.5)
    assert rb.depth_factor({}, 8, 900.0) == 1.0
    # with a KV stream per sequence every sample holds its own copy of the prompt: 100 cells + 100 = 200
    assert rb.pass_depth(row, shared_prompt=False) == pytest.approx(200.0)
    cal["m"]["kv_layout"] = "streams"
    rows = [dict(row)]
    rb.bound(rows, cal)
    assert rows[0]["depth"] == pytest.approx(200.0) and rows[0]["depth_factor"] == pytest.approx(0.55)


def test_cohort_tail_replay_follows_the_admission_rule(rb, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "replicate_bound", rb)  # cohort_tails imports it by its script name
    spec = importlib.util.spec_from_file_location("cohort_tails", PATH.parent / "cohort_tails.py")
    ct = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ct)
    curve = {1: 1.0, 4: 4.0}  # b tok/s at batch b: every step takes one second, so seconds = steps
    groups = [([3, 1], 0, 4), ([2, 2], 0, 4)]
    # room for both groups: they run together, 3 steps
    assert ct.replay(groups, curve, max_seqs=4, kv_budget=100, fill=0) == (3.0, pytest.approx(8 / 3))
    # two sequences: the second group waits until both of the first one's are free (3 + 2 steps)
    seconds, mean_batch = ct.replay(groups, curve, max_seqs=2, kv_budget=100, fill=0)
    assert seconds == 5.0 and mean_batch == pytest.approx(8 / 5)
    # the KV budget holds one group's 2 x 4 cells at a time: the same wait
    assert ct.replay(groups, curve, max_seqs=4, kv_budget=8, fill=0)[0] == 5.0
    # cohorts of one group each (fill 1 with max_seqs 2): a cohort starts when the previous one is done
    assert ct.replay(groups, curve, max_seqs=2, kv_budget=100, fill=1)[0] == 5.0
