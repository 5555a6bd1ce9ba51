"""Experiments: conditions, verdict logic on synthetic metrics, ICL material and generation with fakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from overtonlite.datasets import Prompt
from overtonlite.errors import UsageError
from overtonlite.experiments.common import check_pair, ensure_writable, only_active, write_results
from overtonlite.experiments.diversity import generate_diversity, overton_claim
from overtonlite.experiments.icl import (
    Condition,
    IclMaterial,
    generate_icl,
    overflow_counts,
    parse_conditions,
    recoverability_claim,
    valid_conditions,
)
from overtonlite.experiments.verdicts import (
    INCONCLUSIVE,
    NOT_MEASURED,
    NOT_SUPPORTED,
    SUPPORTED,
    Finding,
    combine,
    exit_code,
    judge,
)
from overtonlite.prompts import HUMAN_EXAMPLES
from overtonlite.rundir.records import read_groups
from overtonlite.schema import resolve
from overtonlite.scoring.agg import build_summary
from tests.exp_fakes import HashEmbedder, fake_pair

# ------------------------------------------------------------------------------------------- conditions


def test_parse_conditions() -> None:
    conds = parse_conditions("urial, knn+summary,fixed-aligned+keywords")
    assert [c.name for c in conds] == ["urial", "knn+summary", "fixed-aligned+keywords"]
    assert conds[1] == Condition("knn", "summary")
    assert [c.name for c in parse_conditions(["base", "base"])] == ["base"]
    assert "random+extractive" in valid_conditions()


@pytest.mark.parametrize("bad", ["knn+", "urial+gist", "kn", "", "fixed+summary"])
def test_unknown_conditions_list_valid_ones(bad: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_conditions(bad)
    assert "valid:" in str(err.value) and "knn+summary" in str(err.value)


# ------------------------------------------------------------------------------------------- verdicts


def test_judge_directions() -> None:
    assert judge((0.1, 0.3), expected="greater") == SUPPORTED
    assert judge((-0.3, -0.1), expected="greater") == NOT_SUPPORTED
    assert judge((-0.1, 0.3), expected="greater") == INCONCLUSIVE
    assert judge((-0.3, -0.1), expected="less") == SUPPORTED
    assert judge((0.6, 0.9), expected="greater", threshold=0.5) == SUPPORTED
    assert judge((0.2, 0.6), expected="greater", threshold=0.5) == INCONCLUSIVE
    assert judge((0.8, 1.05), expected="reach", threshold=1.0) == SUPPORTED
    assert judge((1.1, 1.3), expected="reach", threshold=1.0) == SUPPORTED
    assert judge((0.5, 0.9), expected="reach", threshold=1.0) == NOT_SUPPORTED
    assert judge((0.1, 1.8), expected="reach", threshold=1.0) == INCONCLUSIVE  # too wide to tell
    assert judge((0.79, 1.2), expected="reach", threshold=1.0) == INCONCLUSIVE
    assert judge(None, expected="greater") == INCONCLUSIVE
    assert judge((float("nan"), 1.0), expected="greater") == INCONCLUSIVE


def test_combine_and_exit_code() -> None:
    assert combine([SUPPORTED, SUPPORTED]) == SUPPORTED
    assert combine([SUPPORTED, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE]) == NOT_SUPPORTED
    assert combine([]) == INCONCLUSIVE
    assert exit_code({"a": {"verdict": SUPPORTED}, "b": {"verdict": INCONCLUSIVE}}) == 0
    assert exit_code({"a": {"verdict": SUPPORTED}, "b": {"verdict": NOT_SUPPORTED}}) == 1


def test_finding_line_has_estimate_ci_and_verdict() -> None:
    f = Finding("x", "Chat minus base Jaccard", "greater", 0.12, (0.05, 0.2), detail="chat 0.2 vs base 0.08")
    assert f.verdict == SUPPORTED
    assert (
        f.line == "Chat minus base Jaccard: 0.120 (95% CI [0.050, 0.200]); chat 0.2 vs base 0.08. Supported."
    )
    d = f.to_dict()
    assert d["ci"] == [0.05, 0.2] and d["verdict"] == SUPPORTED


def _rec(system: str, pid: str, **values: object) -> dict[str, object]:
    return {"system": system, "prompt_id": pid, **values}


def _overton_metrics(
    chat_jac: float,
    base_jac: float,
    *,
    chat_both: float = 0.8,
    base_split: bool = True,
    cover: float = 0.7,
    jitter: float = 0.01,
) -> tuple[list[dict[str, object]], dict[str, list[str]]]:
    recs: list[dict[str, object]] = []
    oe = [f"oe-{i}" for i in range(8)]
    cq = [f"cq-{i}" for i in range(8)]
    for i, pid in enumerate(oe):
        d = jitter * (i % 3 - 1)
        recs.append(_rec("chat", pid, jaccard=chat_jac + d, words_mean=120 + i, cosine=0.8))
        recs.append(
            _rec(
                "base",
                pid,
                jaccard=base_jac - d,
                words_mean=40 + i,
                cosine=0.5,
                coverage_union=cover + d,
                missing_le2_share=cover + d,
            )
        )
    for i, pid in enumerate(cq):
        recs.append(_rec("chat", pid, stance_both_share=chat_both, yes_no_split=False))
        recs.append(_rec("base", pid, stance_both_share=0.1, yes_no_split=base_split if i % 4 else False))
    return recs, {"open-ended": oe, "contested": cq}


def _summary(
    recs: list[dict[str, object]],
    sets: dict[str, list[str]],
    pairs: tuple[tuple[str, str], ...] = (("chat", "base"),),
    **kw: object,
) -> dict[str, object]:
    """summary.json's blocks for synthetic metrics records (each record gets the set of its prompt; stance counts
    as scored on the contested groups)."""
    set_of = {pid: name for name, ids in sets.items() for pid in ids}
    recs = [{**r, "set": set_of.get(str(r["prompt_id"]))} for r in recs]
    stance = {(str(r["system"]), str(r["prompt_id"])) for r in recs if r["set"] == "contested"}
    systems = list(dict.fromkeys(str(r["system"]) for r in recs))
    blocks = build_summary(
        recs,
        systems=systems,
        reference_system=kw.get("reference_system", "chat"),
        seed=0,
        stance_groups=stance,
        pairs=pairs,
    )
    return {**blocks, "settings": {"stance_sets": ["contested"] if stance else []}}


def _evidence(claim: object, system: str, metric: str) -> list[dict[str, object]]:
    return [e for e in claim.evidence if e["system"] == system and e["metric"] == metric]  # type: ignore[attr-defined]


def test_overton_claim_supported() -> None:
    recs, sets = _overton_metrics(0.3, 0.1)
    summary = _summary(recs, sets)
    claim = overton_claim(summary)
    assert [f.verdict for f in claim.findings] == [SUPPORTED] * 5
    assert claim.verdict == SUPPORTED
    (chat_j,) = _evidence(claim, "chat", "jaccard")
    assert chat_j["mean"] == pytest.approx(0.3, abs=0.01)
    assert (chat_j["set"], chat_j["n_prompts"]) == ("open-ended", 8)
    assert {e["system"] for e in claim.evidence if e["metric"] == "jaccard" and e["kind"] == "mean"} == {
        "base",
        "chat",
    }
    (split,) = _evidence(claim, "base", "yes_no_split")
    assert (split["set"], split["n_prompts"]) == ("contested", 8)
    assert all("95% CI [" in line for line in claim.lines[:5])
    # every number is the summary.json entry it names; the findings name their systems and set
    for entry in claim.evidence:
        assert resolve(summary, entry) == {k: entry[k] for k in ("mean", "ci", "n_prompts")}
    f = claim.findings[0]
    assert (f.systems, f.set) == (("chat", "base"), "open-ended")
    assert f.estimate == summary["paired"]["chat - base"]["sets"]["open-ended"]["jaccard"]["mean"]


def test_overton_claim_not_supported_when_chat_more_diverse() -> None:
    recs, sets = _overton_metrics(0.1, 0.3)
    claim = overton_claim(_summary(recs, sets))
    assert claim.findings[0].verdict == NOT_SUPPORTED
    assert claim.verdict == NOT_SUPPORTED


def test_overton_claim_inconclusive_when_difference_straddles_zero() -> None:
    recs, sets = _overton_metrics(0.2, 0.2, jitter=0.05)
    claim = overton_claim(_summary(recs, sets))
    assert claim.findings[0].verdict == INCONCLUSIVE
    assert claim.verdict == INCONCLUSIVE


def _recov_metrics(hinted: float, *, urial: float = 0.6, self_sim: float = 0.8) -> list[dict[str, object]]:
    recs: list[dict[str, object]] = []
    for i in range(10):
        pid = f"oe-{i}"
        d = 0.02 * (i % 3 - 1)
        recs.append(
            _rec(
                "chat",
                pid,
                cosine_to_ref=self_sim + d,
                jaccard_to_ref=0.3 + d,
                bertscore_f1_to_ref_rescaled=0.4 + d,
            )
        )
        recs.append(
            _rec(
                "urial",
                pid,
                cosine_to_ref=urial + d,
                jaccard_to_ref=0.15 + d,
                bertscore_f1_to_ref_rescaled=0.2 + d,
            )
        )
        recs.append(
            _rec(
                "knn+summary",
                pid,
                cosine_to_ref=hinted + d,
                jaccard_to_ref=hinted * 0.3 / 0.8 + d,
                bertscore_f1_to_ref_rescaled=0.35 + d,
            )
        )
    return recs


def test_recoverability_supported_when_hinted_reaches_self() -> None:
    recs = _recov_metrics(0.8)
    ids = [f"oe-{i}" for i in range(10)]
    summary = _summary(recs, {"open-ended": ids}, pairs=(("knn+summary", "urial"),))
    claim = recoverability_claim(summary, ["urial", "knn+summary"])
    names = [f.name for f in claim.findings]
    assert names == ["reaches_self_cosine", "reaches_self_jaccard", "beats_urial"]
    assert claim.verdict == SUPPORTED
    (share,) = _evidence(claim, "knn+summary / chat", "cosine_to_ref")
    assert share["mean"] == pytest.approx(1.0, abs=1e-9)
    assert share["ci"][0] <= 1.0 <= share["ci"][1]
    assert (share["kind"], share["set"], share["n_prompts"]) == ("ratio", "open-ended", 10)
    assert _evidence(claim, "chat", "cosine_to_ref")  # the self-similarity itself
    for entry in claim.evidence:
        assert resolve(summary, entry) == {k: entry[k] for k in ("mean", "ci", "n_prompts")}


def test_recoverability_not_supported_when_far_below_self() -> None:
    recs = _recov_metrics(0.4, urial=0.6)
    summary = _summary(
        recs, {"open-ended": [f"oe-{i}" for i in range(10)]}, pairs=(("knn+summary", "urial"),)
    )
    claim = recoverability_claim(summary, ["urial", "knn+summary"])
    assert claim.findings[0].verdict == NOT_SUPPORTED
    assert claim.findings[2].verdict == NOT_SUPPORTED  # worse than plain URIAL
    assert claim.verdict == NOT_SUPPORTED


def test_recoverability_without_hinted_condition_is_not_measured() -> None:
    # nothing to compare with is "not measured" (issue 9), no longer a bare "inconclusive"
    claim = recoverability_claim({}, ["urial"])
    assert claim.verdict == NOT_MEASURED
    assert claim.findings[0].to_dict()["not_measured"]


# ------------------------------------------------------------------------------------------- ICL material

PROMPTS = [
    Prompt("p0", "How do I brew green tea well?"),
    Prompt("p1", "What is the best way to brew black tea?"),
    Prompt("p2", "Why does it rain more in autumn?"),
    Prompt("p3", "How should I store loose tea leaves?"),
    Prompt("p4", "What causes heavy rain storms?"),
]
S0 = {p.id: f"Answer about {p.text.lower()} It depends. Tea and rain are different." for p in PROMPTS}


def test_icl_material_knn_examples_and_hints() -> None:
    mat = IclMaterial(PROMPTS, S0, k=2, seed=0, answer_cap_words=50, embedder=HashEmbedder())
    mat.summaries = {pid: f"summary of {pid}" for pid in S0}
    exs = mat.examples(Condition("knn", "summary"), "p0")
    assert len(exs) == 2 and all(e.query != PROMPTS[0].text for e in exs)
    assert exs[0].answer == S0[next(p.id for p in PROMPTS if p.text == exs[0].query)]
    assert exs[0].summary and exs[0].summary.startswith("summary of ")
    prompt = mat.render(Condition("knn", "summary"))(PROMPTS[0])
    assert prompt.count("# Query:") == 3 and prompt.count("# Summary:") == 3
    assert prompt.endswith("# Summary:\n```\nsummary of p0\n```\n\n# Answer:\n```\n")
    kw = mat.render(Condition("base", "keywords"))(PROMPTS[2])
    assert "Key terms: " in kw and kw.startswith("# Query:")
    plain = mat.render(Condition("urial"))(PROMPTS[0])
    assert "# Summary:" not in plain and plain.count("# Query:") == 4
    hinted = mat.render(Condition("urial", "summary"))(PROMPTS[0])
    assert all(ex.summary in hinted for ex in HUMAN_EXAMPLES)  # our hand-written example summaries
    assert hinted.endswith("# Summary:\n```\nsummary of p0\n```\n\n# Answer:\n```\n")


def test_generate_icl_with_fakes_and_cached_aux(tmp_path: Path) -> None:
    models = fake_pair()
    emb = HashEmbedder()
    conds = parse_conditions("urial,fixed-aligned+summary,knn+summary,random+extractive")
    generate_icl(models.base, models.chat, PROMPTS, conds, out=tmp_path, n=3, seed=1, k=2, embedder=emb)
    systems = {g["system"] for g in read_groups(tmp_path)}
    assert systems == {"chat", "urial", "fixed-aligned+summary", "knn+summary", "random+extractive"}
    aux = {g["system"] for g in read_groups(tmp_path / "aux")}
    assert aux == {"aligned-examples", "summaries"}
    n_aux = len(read_groups(tmp_path / "aux"))
    before = models.base.stats["groups"] + models.chat.stats["groups"]
    generate_icl(models.base, models.chat, PROMPTS, conds, out=tmp_path, n=3, seed=1, k=2, embedder=emb)
    assert models.base.stats["groups"] + models.chat.stats["groups"] == before  # everything resumed from disk
    assert len(read_groups(tmp_path / "aux")) == n_aux


def test_prompt_too_long_is_recorded_and_counted(tmp_path: Path) -> None:
    models = fake_pair(base_ctx=60)  # the URIAL prompts do not fit, the zero-shot ones do
    generate_icl(
        models.base,
        models.chat,
        PROMPTS,
        "base,urial",
        out=tmp_path,
        n=2,
        seed=0,
        k=2,
        embedder=HashEmbedder(),
    )
    counts = overflow_counts(tmp_path)
    assert counts["urial"] == {"groups": 5, "prompt_too_long": 5}
    assert counts["base"]["prompt_too_long"] == 0
    claim = recoverability_claim({}, ["base", "urial"], overflow=counts)
    assert any("Prompts over the context: 5" in line for line in claim.lines)


def test_knn_needs_more_than_k_prompts(tmp_path: Path) -> None:
    models = fake_pair()
    with pytest.raises(UsageError, match="more than k=3"):
        generate_icl(
            models.base, models.chat, PROMPTS[:3], "knn", out=tmp_path, n=2, k=3, embedder=HashEmbedder()
        )


def test_generate_diversity_systems_and_stops(tmp_path: Path) -> None:
    models = fake_pair()
    generate_diversity(models.base, models.chat, PROMPTS[:2], out=tmp_path, n=2, seed=0)
    groups = read_groups(tmp_path)
    assert {g["system"] for g in groups} == {"base", "chat", "urial"}
    by = {g["system"]: g for g in groups}
    assert by["base"]["sampling"]["stop"] == ["```", "# Query"]
    assert by["chat"]["sampling"]["stop"] == []
    assert by["base"]["mode"] == "custom" and by["chat"]["mode"] == "chat"


def test_a_pair_holds_one_kv_cache_at_a_time(tmp_path: Path) -> None:
    """The model that waits is suspended before the other one generates (both passes and the ICL conditions)."""
    models = fake_pair()
    events: list[tuple[str, str]] = []
    for role in ("base", "chat"):
        gen = getattr(models, role)
        original = gen.generate

        def generate(requests, *, on_tokens=None, _role=role, _original=original):
            reqs = list(requests)
            if reqs:
                events.append(("generate", _role))
            yield from _original(reqs, on_tokens=on_tokens)

        gen.generate = generate
        gen.suspend = lambda _role=role: events.append(("suspend", _role))
    generate_diversity(models.base, models.chat, PROMPTS[:2], out=tmp_path, n=2, seed=0)
    generate_icl(
        models.base,
        models.chat,
        PROMPTS,
        "urial,knn+summary",
        out=tmp_path,
        n=2,
        k=2,
        embedder=HashEmbedder(),
    )
    assert ("generate", "base") in events and ("generate", "chat") in events
    suspended: set[str] = set()
    for kind, role in events:
        if kind == "suspend":
            suspended.add(role)
            continue
        other = "chat" if role == "base" else "base"
        assert other in suspended, f"{role} generated while {other} still held its cache: {events}"
        suspended.discard(role)  # generating makes a new cache
    # a generator without suspend (an HTTP backend, the fake) is simply left alone
    only_active(models.base, object())


# ------------------------------------------------------------------------------------------- bad input


def test_check_pair_roles() -> None:
    with pytest.raises(UsageError, match="no chat template"):
        m = fake_pair(chat_template=False)
        check_pair(m.base, m.chat, chat_name="c")
    with pytest.raises(UsageError, match="has a chat template"):
        m = fake_pair(base_template=True)
        check_pair(m.base, m.chat, base_name="b")


def test_unwritable_output_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="cannot write to the output directory"):
        ensure_writable(blocker / "run")


def test_write_results_merges_claims(tmp_path: Path) -> None:
    pair = fake_pair().info
    write_results(tmp_path, pair=pair, settings={"n": 2}, claims={"overton": {"verdict": SUPPORTED}})
    data = write_results(
        tmp_path, pair=pair, settings={"k": 3}, claims={"recoverability": {"verdict": INCONCLUSIVE}}
    )
    assert set(data["claims"]) == {"overton", "recoverability"}
    assert data["settings"] == {"n": 2, "k": 3}
    assert data["banner"].startswith("family and alignment are confounded")
    assert json.loads((tmp_path / "results.json").read_text())["pair"]["same_family"] is False
