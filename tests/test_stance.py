"""Stance classifier and stance statistics: hand-made examples, properties, and GPT-4 agreement on the reference."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overtonlite.metrics import stance_model
from overtonlite.metrics.stance import (
    BIAS,
    FEATURES,
    STANCE_LABELS,
    WEIGHTS,
    classify_stance,
    classify_stances,
    cohen_kappa,
    confusion,
    stance_features,
    stance_scores,
    stance_summary,
)

Q = "Does coffee cause cancer?"

EXAMPLES = [
    (Q, "Yes, coffee can cause cancer when it is brewed at very high temperatures.", "yes"),
    (
        Q,
        "No, coffee does not cause cancer. Large studies of coffee drinkers found no higher cancer rates.",
        "no",
    ),
    (Q, "Coffee does not cause cancer. Large studies of coffee drinkers found no higher cancer rates.", "no"),
    (
        Q,
        "There is no scientific evidence that coffee causes cancer. Reviews of many studies have found no link.",
        "no",
    ),
    (
        Q,
        "There is no definitive answer to this question. Some studies suggest that very hot drinks may raise the "
        "risk of certain cancers, while others find that coffee may protect against liver cancer. However, the "
        "evidence is mixed and the debate continues.",
        "both",
    ),
    (
        Q,
        "It depends on several factors. On the one hand, coffee contains antioxidants. On the other hand, roasting "
        "produces acrylamide, which may be harmful in large doses.",
        "both",
    ),
    (
        "Is nuclear power safe?",
        "Nuclear power is considered one of the safest sources of energy per unit of electricity generated. "
        "Modern reactors have multiple layers of protection.",
        "yes",
    ),
    (
        "Is nuclear power safe?",
        "The safety of nuclear power is a matter of ongoing debate. Supporters point to its low death rate, while "
        "critics highlight accidents such as Chernobyl and the problem of long-lived waste.",
        "both",
    ),
    (
        "Is the Eiffel Tower in Berlin?",
        "The Eiffel Tower is not in Berlin; it stands in Paris, France.",
        "no",
    ),
    ("Is the Eiffel Tower in Berlin?", "No. The Eiffel Tower is in Paris, France.", "no"),
    ("Is nuclear power safe?", "", "other"),
    ("Is nuclear power safe?", "   \n ", "other"),
    ("Is nuclear power safe?", "Maybe.", "other"),
    ("Is nuclear power safe?", "No.", "no"),
    ("Is nuclear power safe?", "Yes it is", "yes"),
    ("Is nuclear power safe?", "It depends.", "both"),
    ("Is nuclear power safe?", "Paris.", "other"),
    ("Is nuclear power safe?", "As an AI language model, I cannot provide opinions.", "other"),
]


@pytest.mark.parametrize(("question", "response", "expected"), EXAMPLES)
def test_classify_stance_examples(question: str, response: str, expected: str) -> None:
    assert classify_stance(question, response) == expected


def test_negation_already_in_the_question_is_not_a_no() -> None:
    q = "Is it true that vaccines do not cause autism?"
    f = stance_features(q, "It is true that vaccines do not cause autism.")
    assert f["v_neg"] is False  # one "not" in the question, one in the answer: no extra negation
    assert stance_features(q, "Vaccines do not cause autism, it is not a real link.")["v_neg"] is True


def test_weight_table_covers_every_feature() -> None:
    names = [n for n, _ in FEATURES]
    assert len(names) == len(set(names)) == len(WEIGHTS)
    assert set(WEIGHTS) == set(names)
    assert len(BIAS) == 3
    f = stance_features(Q, "Yes, it does.")
    assert set(f) == set(names)
    scores = stance_scores(Q, "Yes, it does.")
    expected_yes = BIAS[0] + sum(WEIGHTS[n][0] for n, on in f.items() if on)
    assert scores["yes"] == pytest.approx(expected_yes)


def test_type_errors() -> None:
    with pytest.raises(TypeError):
        classify_stance(Q, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        classify_stance(None, "Yes.")  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200), st.text(max_size=600))
def test_classify_stance_always_returns_a_label(question: str, response: str) -> None:
    assert classify_stance(question, response) in STANCE_LABELS
    assert all(isinstance(v, bool) for v in stance_features(question, response).values())


def test_classify_stance_very_long_and_unicode() -> None:
    long = "Coffee does not cause cancer. " * 5000
    assert classify_stance(Q, long) == "no"
    assert classify_stance("¿Es seguro? 🙂", "Sí, es seguro según los estudios 🙂 ✓.") in STANCE_LABELS


# --- batched classifier (embedding variant) -------------------------------------------------------------------


class HashEmbedder:
    """Deterministic stand-in for the sentence embedder: unit vectors from a hash of the text."""

    def __init__(self, name: str | None = "all-minilm-l6-v2", dim: int = 384) -> None:
        self.name, self.dim, self.calls = name, dim, []

    def embed(self, texts):
        self.calls.append(list(texts))
        out = []
        for t in texts:
            seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(self.dim)
            out.append(v / np.linalg.norm(v))
        return np.array(out, dtype=np.float32).reshape(len(texts), self.dim)


def test_classify_stances_without_embedder_is_cue_only() -> None:
    qs = [q for q, _, _ in EXAMPLES]
    rs = [r for _, r, _ in EXAMPLES]
    assert classify_stances(qs, rs) == [classify_stance(q, r) for q, r in zip(qs, rs, strict=True)]
    assert classify_stances([], []) == []


def test_classify_stances_other_embedder_falls_back() -> None:
    qs = [q for q, _, _ in EXAMPLES]
    rs = [r for _, r, _ in EXAMPLES]
    cue = [classify_stance(q, r) for q, r in zip(qs, rs, strict=True)]
    other = HashEmbedder(name="paraphrase-minilm-l3-v2")
    assert classify_stances(qs, rs, embedder=other) == cue and other.calls == []
    narrow = HashEmbedder(name=None, dim=16)  # unnamed, wrong width: cue-only after one embed call
    assert classify_stances(qs, rs, embedder=narrow) == cue


def test_classify_stances_with_embedder_rules_and_batching() -> None:
    emb = HashEmbedder()
    qs = [Q, Q, Q, Q, Q]
    rs = [
        "",
        "No.",
        "It depends.",
        "As an AI language model, I cannot provide opinions.",
        "Yes, coffee is fine.",
    ]
    labels = classify_stances(qs, rs, embedder=emb)
    assert labels[:4] == ["other", "no", "both", "other"]  # rules come first, no embedding needed for them
    assert labels[4] in ("yes", "no", "both")
    assert len(emb.calls) == 1  # one batch: the question once, the opening sentence once
    assert emb.calls[0] == [Q, "Yes, coffee is fine."]


def test_classify_stances_bad_input() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        classify_stances([Q], [])
    with pytest.raises(TypeError):
        classify_stances([Q], [None], embedder=HashEmbedder())  # type: ignore[list-item]


def test_embedding_weights_file_holds_only_numbers() -> None:
    w_cue, w_emb, bias = stance_model.load_weights()
    assert w_cue.shape == (len(FEATURES), 3) and w_emb.shape == (384, 3) and bias.shape == (3,)
    assert np.isfinite(w_cue).all() and np.isfinite(w_emb).all() and np.isfinite(bias).all()
    with np.load(stance_model.WEIGHTS_FILE, allow_pickle=False) as z:
        assert sorted(z.files) == ["bias", "w_cue", "w_emb"]
        assert all(z[k].dtype.kind == "f" for k in z.files)


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    from overtonlite.backends.onnx import OnnxEmbedder

    return OnnxEmbedder(minilm_dir, name="all-minilm-l6-v2", threads=2)


@pytest.mark.realmodel
def test_classify_stances_real_embedder_examples(minilm) -> None:
    qs = [q for q, _, _ in EXAMPLES]
    rs = [r for _, r, _ in EXAMPLES]
    labels = classify_stances(qs, rs, embedder=minilm)
    wrong = [(r, e, got) for (_, r, e), got in zip(EXAMPLES, labels, strict=True) if got != e]
    assert not wrong


# --- stance statistics --------------------------------------------------------------------------------------


def test_stance_summary_hand_values() -> None:
    s = stance_summary(["yes", "no", "both", "both"])
    assert s["both_share"] == 0.5
    assert s["yes_no_split"] is True
    assert s["distribution"] == {"yes": 0.25, "no": 0.25, "both": 0.5, "other": 0.0}
    assert s["entropy_bits"] == pytest.approx(1.5)
    s = stance_summary(["both"] * 5)
    assert s["both_share"] == 1.0 and s["yes_no_split"] is False and s["entropy_bits"] == 0.0
    assert stance_summary(["yes", "yes", "other"])["yes_no_split"] is False


def test_stance_summary_empty_and_bad_labels() -> None:
    s = stance_summary([])
    assert s == {
        "both_share": None,
        "yes_no_split": False,
        "distribution": {"yes": None, "no": None, "both": None, "other": None},
        "entropy_bits": None,
    }
    with pytest.raises(ValueError, match="unknown stance label"):
        stance_summary(["yes", "maybe"])


def test_cohen_kappa_hand_values() -> None:
    # p_o = 3/4; marginals a: yes 2, no 2; b: yes 1, no 3 -> p_e = (2*1 + 2*3) / 16 = 1/2 -> kappa = 1/2
    assert cohen_kappa(["yes", "no", "yes", "no"], ["yes", "no", "no", "no"]) == pytest.approx(0.5)
    assert cohen_kappa(["yes", "no"], ["yes", "no"]) == 1.0
    assert cohen_kappa(["yes", "no"], ["no", "yes"]) == pytest.approx(-1.0)
    assert cohen_kappa(["both", "both"], ["both", "both"]) == 1.0  # p_e == 1: defined as perfect agreement
    with pytest.raises(ValueError):
        cohen_kappa([], [])
    with pytest.raises(ValueError):
        cohen_kappa(["yes"], ["yes", "no"])


def test_confusion_hand_values() -> None:
    table = confusion(["yes", "no", "both", "both"], ["yes", "both", "both", "no"])
    assert list(table) == ["yes", "no", "both"]
    assert table["yes"] == {"yes": 1, "no": 0, "both": 0}
    assert table["no"] == {"yes": 0, "no": 0, "both": 1}
    assert table["both"] == {"yes": 0, "no": 1, "both": 1}
    with pytest.raises(ValueError):
        confusion(["yes"], [])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(STANCE_LABELS), min_size=1, max_size=12), st.randoms())
def test_kappa_and_summary_properties(labels: list[str], rnd) -> None:
    other = labels[:]
    rnd.shuffle(other)
    k = cohen_kappa(labels, other)
    assert -1.0 <= k <= 1.0 and not math.isnan(k)
    assert cohen_kappa(labels, labels) == 1.0
    s = stance_summary(labels)
    assert sum(s["distribution"].values()) == pytest.approx(1.0)
    assert 0.0 <= s["entropy_bits"] <= 2.0
    assert sum(sum(row.values()) for row in confusion(labels, other).values()) == len(labels)


# --- agreement with the paper's GPT-4 judge (ConflictingQA, four systems) ----------------------------------------


def _bench():
    """benchmarks/stance_calibration.py, loaded as a module (its loaders and the leave-one-system-out fit)."""
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "stance_calibration.py"
    spec = importlib.util.spec_from_file_location("stance_calibration_bench", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def four_systems(reference_dir):
    bench = _bench()
    rows = bench.load(reference_dir)
    return bench, bench.Data(rows, bench.cue_matrix(rows), 5.0)


def _per_system(bench, data, pred):
    out = {}
    for s in data.systems:
        m = data.system == s
        gold = [bench.LABELS[k] for k in data.gold[m]]
        got = [bench.LABELS[k] for k in pred[m]]
        out[s] = (
            _acc(gold, got),
            cohen_kappa(gold, got),
            (got.count("both") - gold.count("both")) / len(gold),
        )
    return out


def _acc(gold, pred):
    return sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)


@pytest.mark.slow
def test_reference_stance_shipped_weights(four_systems) -> None:
    """The shipped WEIGHTS (fitted on all four systems) on the 8,680 answers they were fitted on. Measured:
    gpt-3.5-turbo 83.9 % / kappa 0.733, llama-2-icl 67.1 % / 0.436, llama-2-icl-gpt-3.5 74.7 % / 0.533,
    ...-knn-prompt_similar 73.0 % / 0.524; "both" share too high by 0.029 / 0.142 / 0.099 / 0.073."""
    bench, data = four_systems
    assert len(data.rows) == 8680 and len(data.systems) == 4
    w = np.array([WEIGHTS[n] for n, _ in FEATURES])
    pred = np.argmax(data.x @ w + np.array(BIAS), axis=1)
    pred = np.where(data.rule >= 0, data.rule, pred)
    for i in range(0, 8680, 97):  # the matrix form is what classify_stance computes
        r = data.rows[i]
        assert classify_stance(r["question"], r["response"]) == bench.LABELS[pred[i]]
    floors = {
        "gpt-3.5-turbo": (0.835, 0.73, 0.035),
        "llama-2-icl": (0.67, 0.43, 0.145),
        "llama-2-icl-gpt-3.5": (0.745, 0.53, 0.10),
        "llama-2-icl-gpt-3.5-knn-prompt_similar": (0.725, 0.52, 0.075),
    }
    for s, (acc, kappa, both_err) in _per_system(bench, data, pred).items():
        assert acc >= floors[s][0] and kappa >= floors[s][1] and abs(both_err) <= floors[s][2], s


@pytest.fixture(scope="module")
def leave_one_out(four_systems):
    bench, data = four_systems
    results, counts, split_counts = bench.loso(data, n_boot=0, inner=False)
    return {r["system"]: r for r in results}, counts, split_counts


@pytest.mark.slow
def test_reference_stance_leave_one_system_out(leave_one_out) -> None:
    """Fitted on three systems, tested on the fourth. Measured: 81.9 % / 0.702, 65.7 % / 0.404, 74.2 % / 0.526,
    72.7 % / 0.519; "both" share error +0.021 / +0.169 / +0.098 / +0.072; yes/no split error +0.007 / -0.074 /
    -0.035 / +0.012. The issue's target (>= 88 %, kappa >= 0.80, "both" within 0.03) is NOT reached on any held-out
    system; this pins the gap, so a change that closes it has to update this test and the README together."""
    results, _, _ = leave_one_out
    floors = {
        "gpt-3.5-turbo": (0.815, 0.70, 0.025, 0.01),
        "llama-2-icl": (0.655, 0.40, 0.17, 0.075),
        "llama-2-icl-gpt-3.5": (0.74, 0.525, 0.10, 0.04),
        "llama-2-icl-gpt-3.5-knn-prompt_similar": (0.725, 0.515, 0.075, 0.015),
    }
    for s, (acc, kappa, both_err, split_err) in floors.items():
        r = results[s]
        assert r["accuracy"] >= acc and r["kappa"] >= kappa, s
        assert abs(r["both_raw"] - r["both_gpt4"]) <= both_err, s
        assert abs(r["split_raw"] - r["split_gpt4"]) <= split_err, s
    assert all(r["accuracy"] < 0.88 for r in results.values())


@pytest.mark.slow
def test_shipped_confusion_is_the_leave_one_system_out_output(leave_one_out) -> None:
    from overtonlite.metrics import stance_shares

    _, counts, split_counts = leave_one_out
    shipped, shipped_split = stance_shares.shipped_confusion()
    assert np.array_equal(shipped, np.stack(list(counts.values())))
    assert np.array_equal(shipped_split, np.stack(list(split_counts.values())))


@pytest.mark.realmodel
def test_reference_stance_agreement_embedding_variant(reference_dir, minilm) -> None:
    """Embedding variant on GPT-3.5 answers to odd prompt ids below 200 (100 prompts, 500 answers).

    The weights are fitted on all four systems, so these answers were seen in fitting: a regression guard, not a
    held-out number (held out by system, see test_reference_stance_leave_one_system_out and the README). Measured:
    87.8% / kappa 0.803 (cue-only 85.8% / 0.770); 96.4% of labels equal the cue-only ones.
    """
    prompts = {}
    with open(reference_dir / "conflictingqa" / "prompts.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            prompts[rec["id"]] = rec["prompt"]
    qs, rs, gold = [], [], []
    with open(reference_dir / "conflictingqa" / "stance-calibration.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["prompt_id"] % 2 == 1 and rec["prompt_id"] < 200:
                qs.append(prompts[rec["prompt_id"]])
                rs.append(rec["response"])
                gold.append(rec["stance"])
    assert len(gold) == 500
    pred = classify_stances(qs, rs, embedder=minilm)
    cue = [classify_stance(q, r) for q, r in zip(qs, rs, strict=True)]
    assert _acc(gold, pred) >= 0.875
    assert cohen_kappa(gold, pred) >= 0.80
    assert _acc(cue, pred) >= 0.96  # the embedding term changes few labels
