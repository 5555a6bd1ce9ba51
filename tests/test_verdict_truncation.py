"""Issue 9: truncation-aware findings, "not measured" findings, and the power statement of inconclusive ones."""

from __future__ import annotations

import json
import math
from pathlib import Path

from overtonlite.experiments.diversity import overton_claim
from overtonlite.experiments.power import prompts_needed, spread_and_effect
from overtonlite.experiments.replicate import compute_claims
from overtonlite.experiments.truncation import MAX_CUT, gate, gate_claim, pick_metric, shares
from overtonlite.experiments.verdicts import (
    INCONCLUSIVE,
    NOT_MEASURED,
    NOT_SUPPORTED,
    SUPPORTED,
    Finding,
    combine,
)
from overtonlite.scoring import score_input
from tests.exp_fakes import HashEmbedder


def _finding(**kw):
    base = dict(
        name="x",
        statement="chat minus base",
        expected="greater",
        estimate=0.2,
        ci=(0.1, 0.3),
        systems=("chat", "base"),
    )
    base.update(kw)
    return Finding(**base)


def test_shares_count_length_stops_per_system() -> None:
    recs = [
        {
            "system": "chat",
            "prompt_id": "1",
            "samples": [{"text": "a", "finish_reason": "length"}, {"text": "b", "finish_reason": "stop"}],
        },
        {
            "system": "chat",
            "prompt_id": "2",
            "samples": [{"text": "c", "finish_reason": "length"}, {"text": "d", "finish_reason": "length"}],
        },
        {"system": "base", "prompt_id": "1", "samples": ["no finish reason recorded"]},
        {"system": "urial", "prompt_id": "1", "error": "prompt_too_long", "samples": []},
    ]
    assert shares(recs) == {"chat": 0.75}  # base records none: unknown, left out


def test_gate_forces_inconclusive_over_the_cap_only() -> None:
    supported = _finding()
    assert supported.verdict == SUPPORTED
    assert gate(supported, {"chat": MAX_CUT, "base": 0.1}).verdict == SUPPORTED  # exactly 20 % is allowed
    cut = gate(supported, {"chat": 1.0, "base": 0.54})
    assert cut.verdict == INCONCLUSIVE
    assert "Inconclusive: 100 % of chat and 54 % of base samples cut at max_tokens" in cut.line
    assert "raise --max-tokens" in cut.line
    d = cut.to_dict()
    assert d["truncated"] == {"chat": 1.0, "base": 0.54} and d["systems"] == ["chat", "base"]
    assert d["prompts_needed"] is None  # more prompts do not fix a cap
    refuted = _finding(estimate=-0.2, ci=(-0.3, -0.1))
    assert refuted.verdict == NOT_SUPPORTED
    assert gate(refuted, {"base": 0.3}).verdict == INCONCLUSIVE
    assert gate(refuted, {"urial": 0.9}).verdict == NOT_SUPPORTED  # not a compared system


def test_not_measured_is_left_out_of_the_claim() -> None:
    assert combine([SUPPORTED, NOT_MEASURED]) == SUPPORTED
    assert combine([NOT_SUPPORTED, NOT_MEASURED]) == NOT_SUPPORTED
    assert combine([NOT_MEASURED, NOT_MEASURED]) == NOT_MEASURED
    f = _finding(unmeasured="the input has no contested prompts")
    assert f.verdict == NOT_MEASURED and "not measured (the input has no contested prompts)" in f.line


def test_power_paired_difference_matches_the_formula() -> None:
    a = (1.0, 2.0, 3.0, 4.0, 5.0)
    b = (0.9, 2.2, 2.8, 4.3, 4.6)
    f = _finding(estimate=0.02, ci=(-0.2, 0.25), values=(a, b))
    d = [x - y for x, y in zip(a, b, strict=True)]
    mean = sum(d) / len(d)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1))
    assert f.verdict == INCONCLUSIVE
    assert f.prompts_needed == math.ceil((1.96 * sd / abs(mean)) ** 2)
    assert f.to_dict()["prompts_needed"] == f.prompts_needed
    assert f"about {f.prompts_needed} prompts (now 5)" in f.line
    # a decided finding states no power
    assert _finding(values=(a, b)).prompts_needed is None


def test_power_against_a_threshold_and_zero_effect() -> None:
    x = (0.4, 0.6, 0.5, 0.7, 0.3)  # mean 0.5 = threshold: the effect is zero
    f = Finding("coverage", "share", "greater", 0.5, (0.35, 0.65), threshold=0.5, values=(x,))
    assert f.verdict == INCONCLUSIVE and f.prompts_needed is None
    assert "effect is zero" in f.line
    y = (0.5, 0.7, 0.6, 0.8, 0.4)  # mean 0.6
    g = Finding("coverage", "share", "greater", 0.6, (0.45, 0.75), threshold=0.5, values=(y,))
    sd, effect, n = spread_and_effect(g)
    assert math.isclose(effect, 0.1) and n == 5
    assert prompts_needed(g) == math.ceil((1.96 * sd / 0.1) ** 2)


def test_power_of_a_ratio_uses_the_delta_method() -> None:
    num = (0.5, 0.7, 0.6, 0.9, 0.55, 0.65)
    den = (0.8, 0.9, 0.7, 1.0, 0.75, 0.85)
    r = sum(num) / sum(den)
    f = Finding("reaches_self_cosine", "ratio", "reach", r, (0.6, 1.05), threshold=1.0, values=(num, den))
    assert f.verdict == INCONCLUSIVE
    my = sum(den) / len(den)
    z = [(x - r * y) / my for x, y in zip(num, den, strict=True)]
    mz = sum(z) / len(z)
    sd = math.sqrt(sum((v - mz) ** 2 for v in z) / (len(z) - 1))
    margin = max(1 - r, r - 0.8)
    assert f.prompts_needed == max(2, math.ceil((1.96 * sd / margin) ** 2))


def _metrics(n: int, *, finished: bool) -> list[dict]:
    out = []
    for i in range(n):
        for system, words, cut_words in (("base", 40.0 + i, 30.0 + i), ("chat", 80.0 + i, 60.0 + i)):
            rec = {
                "system": system,
                "prompt_id": f"oe-{i}",
                "set": "open-ended",
                "jaccard": 0.1 + 0.01 * i if system == "base" else 0.2 + 0.012 * i,
                "words_mean": words,
                "missing_le2_share": 0.7,
                "truncation_rate": 0.0 if finished else None,
            }
            if finished:
                rec["words_mean_finished"] = (
                    cut_words if i % 4 else None
                )  # one prompt in four lacks finished ones
                rec["missing_le2_share_finished"] = 0.8
            out.append(rec)
    return out


def _summary(records: list[dict]) -> dict:
    from overtonlite.scoring.agg import build_summary

    return build_summary(
        records,
        systems=["base", "chat"],
        reference_system="chat",
        seed=0,
        n_boot=200,
        pairs=[("chat", "base")],
    )


def test_finished_variant_is_used_when_finish_reasons_are_recorded() -> None:
    name, text = pick_metric(
        _summary(_metrics(8, finished=False)), "words_mean", ("chat", "base"), "open-ended"
    )
    assert name == "words_mean" and "all samples" in text
    summary = _summary(_metrics(8, finished=True))
    name, text = pick_metric(summary, "words_mean", ("chat", "base"), "open-ended")
    assert name == "words_mean_finished" and "6 of 8 prompts" in text
    claim = overton_claim(summary)
    length = next(f for f in claim.findings if f.name == "length")
    assert length.estimate == 30.0  # 60+i - (30+i) on the finished samples, not 40 on all samples
    assert "finished samples only" in length.line and length.n_prompts == 6
    cov = next(f for f in claim.findings if f.name == "coverage")
    assert cov.estimate == 0.8 and cov.systems == ("base", "chat")
    # no contested prompts: the stance findings are not measured and the claim rests on the rest
    stance = [f for f in claim.findings if f.name in ("both_share", "yes_no_split")]
    assert stance and all(f.verdict == NOT_MEASURED for f in stance)
    assert claim.verdict == combine([f.verdict for f in claim.findings if f.verdict != NOT_MEASURED])
    # power reads the per-prompt values of the finding's own metric and set
    from overtonlite.experiments.power import attach_values

    attach_values(claim, _metrics(8, finished=True))
    length = next(f for f in claim.findings if f.name == "length")
    assert length.values == (
        tuple(60.0 + i for i in range(8) if i % 4),
        tuple(30.0 + i for i in range(8) if i % 4),
    )
    gated = gate_claim(claim, {"chat": 0.5, "base": 0.0})
    assert all(f.verdict in (INCONCLUSIVE, NOT_MEASURED) for f in gated.findings if "chat" in f.systems)


def _write_run(path: Path, *, cut_chat: bool) -> None:
    """A run directory whose chat samples all stop at the cap (cut_chat) and whose base samples all finish."""
    path.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(6):
        topic = ["tea", "rain", "bread", "chess", "bikes", "stars"][i]
        prompt = f"How do I learn about {topic}?"
        base = [f"{topic} is fun {k} times and {topic} again" for k in range(3)]
        chat = [
            f"Here is a long guide to {topic}: first read about {topic}, then practise {topic} daily {k}"
            for k in range(3)
        ]
        rows.append(
            {
                "system": "base",
                "prompt_id": f"oe-{i}",
                "prompt": prompt,
                "set": "open-ended",
                "samples": [{"text": t, "finish_reason": "stop"} for t in base],
            }
        )
        rows.append(
            {
                "system": "chat",
                "prompt_id": f"oe-{i}",
                "prompt": prompt,
                "set": "open-ended",
                "samples": [{"text": t, "finish_reason": "length" if cut_chat else "stop"} for t in chat],
            }
        )
    (path / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_a_run_with_a_cut_system_has_no_decided_finding_on_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _write_run(run, cut_chat=True)
    score_input(
        run,
        out=run,
        reference_system="chat",
        embedder=HashEmbedder(),
        seed=0,
        n_boot=200,
        pairs=[("chat", "base")],
    )
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    base = next(r for r in metrics if r["system"] == "base")
    chat = next(r for r in metrics if r["system"] == "chat")
    assert base["words_mean_finished"] == base["words_mean"]  # all finished
    assert chat["words_mean_finished"] is None and chat["truncation_rate"] == 1.0
    claims = compute_claims(run, conditions=(), which=("overton",), max_tokens=80)
    findings = claims["overton"]["findings"]
    assert findings and all(
        f["verdict"] not in (SUPPORTED, NOT_SUPPORTED) for f in findings if "chat" in f["systems"]
    )
    length = next(f for f in findings if f["name"] == "length")
    assert length["truncated"] == {"chat": 1.0} and "cut at max_tokens" in length["line"]
    assert any("80-token cap" in line and "length finding" in line for line in claims["overton"]["lines"])


def test_finished_runs_are_judged_normally(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _write_run(run, cut_chat=False)
    score_input(
        run,
        out=run,
        reference_system="chat",
        embedder=HashEmbedder(),
        seed=0,
        n_boot=200,
        pairs=[("chat", "base")],
    )
    claims = compute_claims(run, conditions=(), which=("overton",), max_tokens=80)
    length = next(f for f in claims["overton"]["findings"] if f["name"] == "length")
    assert length["truncated"] is None and length["verdict"] == SUPPORTED  # chat answers are longer here
    assert length["samples"].startswith("finished samples only: 6 of 6 prompts")
    assert not any("cap" in line for line in claims["overton"]["lines"])


def test_quick_replicate_records_truncation_and_respects_the_gate(tmp_path: Path) -> None:
    """A quick run with a cap of 16 tokens: the fake chat model (about 40 words) is cut, the base one (20) less."""
    from overtonlite.experiments import replicate as rep
    from tests.exp_fakes import fake_pair

    res = rep.replicate(
        out=tmp_path, quick=True, max_tokens=16, models=fake_pair(), embedder=HashEmbedder(), report=False
    )
    data = json.loads((tmp_path / "results.json").read_text())
    trunc = data["truncation"]
    assert {"base", "chat", "urial"} <= set(trunc) and all(0.0 <= v <= 1.0 for v in trunc.values())
    assert trunc == shares(json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines())
    checked = 0
    for claim in data["claims"].values():
        for f in claim["findings"]:
            assert f["systems"], f["name"]
            if any(trunc.get(s, 0.0) > MAX_CUT for s in f["systems"]):
                checked += 1
                assert f["verdict"] not in (SUPPORTED, NOT_SUPPORTED) and f["truncated"]
            elif f["verdict"] == INCONCLUSIVE and f["prompts_needed"] is not None:
                assert f"about {f['prompts_needed']} prompts" in f["line"]
    assert trunc["chat"] > MAX_CUT and checked >= 5  # every claim-1 finding compares chat
    assert any("16-token cap" in line for line in data["claims"]["overton"]["lines"])
    assert res.results["truncation"] == trunc
    again = rep.recompute_results(tmp_path)
    assert again is not None and again["truncation"] == trunc and again["claims"] == data["claims"]
