"""score_input on small hand-written responses files (fast, with a deterministic fake embedder)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from overtonlite.errors import DataError, UsageError
from overtonlite.scoring import RECORD_KEYS, is_yes_no_question, score_input
from overtonlite.scoring.inputs import clean_text


class HashEmbedder:
    """Bag-of-words hashing embedder: same words -> same vector; token states = one vector per word."""

    name = "hash-test"
    dim = 32

    def __init__(self) -> None:
        self.calls: list[str] = []

    def _word(self, w: str) -> np.ndarray:
        seed = int(hashlib.sha256(w.lower().encode()).hexdigest()[:8], 16)
        return np.random.default_rng(seed).normal(size=self.dim)

    def _tokens(self, text: str) -> np.ndarray:
        words = text.split()
        return (
            np.stack([self._word(w) for w in words]).astype(np.float32) if words else np.zeros((0, self.dim))
        )

    def _vec(self, text: str) -> np.ndarray:
        t = self._tokens(text)
        v = t.sum(axis=0) if len(t) else np.ones(self.dim)
        return (v / np.linalg.norm(v)).astype(np.float32)

    def embed(self, texts):
        self.calls.extend(texts)
        return np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def embed_with_tokens(self, texts):
        return self.embed(texts), [self._tokens(t) for t in texts]

    def count_tokens(self, texts):
        return [len(t.split()) for t in texts]

    def describe(self):
        return {"name": self.name}


OPEN = [
    (
        "p1",
        "Give me tips for keeping basil alive indoors.",
        {
            "base": [
                "Water it.```",
                "Basil likes sun and water.",
                "I am not sure, maybe buy a new plant.",
                "Sun.",
                "Keep it warm.",
            ],
            "chat": [
                "Basil needs six hours of sun. Water when the soil is dry. Pinch the flowers.",
                "Give basil bright light. Water when the top soil is dry.",
                "Place basil in a sunny window. Water it regularly. Pinch off flowers.",
                "Basil needs sun. Keep the soil moist but not wet.",
                "Use a pot with drainage. Put it in the sun.",
            ],
        },
    ),
    (
        "p2",
        "How do I start learning to draw?",
        {
            "base": [
                "Draw every day.",
                "Buy a pencil.",
                "",
                "Copy pictures you like.",
                "Take a class at the library.",
            ],
            "chat": ["Start with simple shapes. Practice daily. Study light and shadow."] * 5,
        },
    ),
    (
        "p3",
        "Describe a good breakfast for a long hike.",
        {
            "base": [
                "Oats.",
                "Eggs and toast with coffee.",
                "A banana and nuts.",
                "Pancakes!",
                "Porridge with honey.",
            ],
            "chat": [
                "Oatmeal with nuts and fruit gives lasting energy. Add eggs for protein.",
                "Eat oats, eggs and a banana. Drink water.",
                "A bowl of porridge with berries and nuts, plus an egg.",
                "Whole grain toast with peanut butter and a banana.",
                "Oats, yogurt and fruit; bring water.",
            ],
        },
    ),
]


def write_responses(path: Path, *, with_prompt: bool = True, dict_samples: bool = False) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for system in ("base", "chat"):
            for pid, prompt, samples in OPEN:
                ss = samples[system]
                if dict_samples:
                    ss = [
                        {
                            "text": t,
                            "n_tokens": len(t.split()),
                            "finish_reason": "length" if i == 0 else "stop",
                        }
                        for i, t in enumerate(ss)
                    ]
                rec = {"system": system, "prompt_id": pid, "samples": ss}
                if with_prompt:
                    rec["prompt"] = prompt
                f.write(json.dumps(rec) + "\n")
        f.write(
            json.dumps({"system": "chat", "prompt_id": "p4", "samples": [], "error": "prompt_too_long"})
            + "\n"
        )
    return path


def read_metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_clean_text_strips_fence():
    assert clean_text("  hi there\n```  ") == "hi there"
    assert clean_text("```") == ""
    assert clean_text("a ``` b") == "a ``` b"


def test_yes_no_detection():
    assert is_yes_no_question("Is coffee bad for you?")
    assert is_yes_no_question("should cities ban cars?")
    assert not is_yes_no_question("How do I cook rice?")
    assert not is_yes_no_question("Is this a question")
    assert not is_yes_no_question(None)


def test_score_small_file(tmp_path):
    src = write_responses(tmp_path / "responses.jsonl")
    emb = HashEmbedder()
    s = score_input(src, out=tmp_path / "out", embedder=emb)
    recs = read_metrics(tmp_path / "out")
    assert [(r["system"], r["prompt_id"]) for r in recs] == [
        (s_, p) for s_ in ("base", "chat") for p in ("p1", "p2", "p3")
    ]
    for r in recs:
        assert set(RECORD_KEYS) <= set(r)
        assert r["n"] == 5 and len(r["words"]) == 5 and len(r["relevance"]) == 5
        assert r["stance"] is None and r["coverage"] is None and r["missing"] is None
    chat_p2 = recs[4]
    assert chat_p2["jaccard"] == pytest.approx(1.0)
    assert chat_p2["cosine"] == pytest.approx(1.0, abs=1e-5)
    assert chat_p2["vendi"] == pytest.approx(1.0, abs=1e-4)
    base_p1 = recs[0]
    assert base_p1["words"] == [2, 5, 9, 1, 3]  # the trailing fence is not a word
    base_p2 = recs[1]
    assert base_p2["relevance"][2] is None and base_p2["quality_pass"][2] is False  # the empty sample
    assert base_p2["empty_rate"] == pytest.approx(0.2)
    assert base_p1["tokens_mean"] == pytest.approx(np.mean([2, 5, 9, 1, 3]))  # fake tokenizer = words
    assert s.errors == [{"system": "chat", "prompt_id": "p4", "error": "prompt_too_long"}]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(summary["systems"]) == {"base", "chat"}
    assert summary["schema_version"] == 2
    j = summary["systems"]["chat"]["sets"]["all"]["jaccard"]
    assert j["mean"] == pytest.approx(np.mean([r["jaccard"] for r in recs[3:]]))
    assert j["ci"][0] <= j["mean"] <= j["ci"][1]
    assert j["n_prompts"] == 3
    assert "chat - base" in summary["paired"]
    assert summary["paired"]["chat - base"]["sets"]["all"]["jaccard"]["n_prompts"] == 3
    assert summary["settings"]["stance_scored"] is False
    # every distinct text embedded once
    assert len(emb.calls) == len(set(emb.calls))


def test_idempotent(tmp_path):
    src = write_responses(tmp_path / "r.jsonl", dict_samples=True)
    score_input(src, out=tmp_path / "a", embedder=HashEmbedder(), reference_system="chat")
    score_input(src, out=tmp_path / "b", embedder=HashEmbedder(), reference_system="chat")
    for name in ("metrics.jsonl", "summary.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.parametrize("ref", [None, "chat"])
def test_text_metrics_worker_gives_the_records_of_the_main_thread(tmp_path, monkeypatch, ref):
    from overtonlite.scoring import group

    src = write_responses(tmp_path / "r.jsonl", dict_samples=True)
    score_input(src, out=tmp_path / "worker", embedder=HashEmbedder(), reference_system=ref)
    seen: list[int] = []
    real = group._text_worker

    def nothing_but_warm(groups, lowercase, out, stop):
        real([], lowercase, out, stop)  # tools only: every text_part is computed by score_group
        seen.append(len(out))

    monkeypatch.setattr(group, "_text_worker", nothing_but_warm)
    score_input(src, out=tmp_path / "main", embedder=HashEmbedder(), reference_system=ref)
    assert seen == [0]
    for name in ("metrics.jsonl", "summary.json"):
        assert (tmp_path / "worker" / name).read_bytes() == (tmp_path / "main" / name).read_bytes()


def test_a_failed_embedding_stops_the_text_metrics_worker(tmp_path, monkeypatch):
    from overtonlite.scoring import group

    src = write_responses(tmp_path / "r.jsonl")
    done: list[int] = []
    real = group._text_worker

    def slow_worker(groups, lowercase, out, stop):
        stop.wait(5)  # the embedding fails meanwhile: the worker must see the stop before its first group
        real(groups, lowercase, out, stop)
        done.append(len(out))

    class Broken(HashEmbedder):
        def embed(self, texts):
            raise RuntimeError("embedder exploded")

    monkeypatch.setattr(group, "_text_worker", slow_worker)
    with pytest.raises(RuntimeError, match="exploded"):
        score_input(src, out=tmp_path / "o", embedder=Broken())
    assert done == [0]


def test_reference_system_metrics(tmp_path):
    src = write_responses(tmp_path / "r.jsonl", dict_samples=True)
    s = score_input(src, out=tmp_path / "o", embedder=HashEmbedder(), reference_system="chat")
    recs = {(r["system"], r["prompt_id"]): r for r in read_metrics(tmp_path / "o")}
    self_p2 = recs[("chat", "p2")]  # identical samples: the self-baseline is perfect
    assert self_p2["coverage"] == [None, 1.0, 1.0, 1.0, 1.0]
    assert self_p2["missing"] == [None, 1, 1, 1, 1]
    assert self_p2["cosine_to_ref"] == pytest.approx(1.0, abs=1e-5)
    assert self_p2["jaccard_to_ref"] == pytest.approx(1.0)
    assert self_p2["bertscore_f1_to_ref"] == pytest.approx(1.0, abs=1e-5)
    assert self_p2["bertscore_f1_to_ref_rescaled"] == pytest.approx(1.0, abs=1e-4)
    base_p1 = recs[("base", "p1")]
    assert len(base_p1["coverage"]) == 5 and all(0.0 <= c <= 1.0 for c in base_p1["coverage"])
    assert all(m in (1, 2, 3, 4, 5) for m in base_p1["missing"])
    assert base_p1["truncation_rate"] == pytest.approx(0.2)
    assert s.settings["bertscore"]["baseline_source"].startswith("built-in neutral")
    assert "base - chat" in s.paired and "cosine_to_ref" in s.paired["base - chat"]["sets"]["all"]
    assert "cosine_to_ref" in s.ratios["base / chat"]["sets"]["all"]


def test_unknown_reference_system(tmp_path):
    src = write_responses(tmp_path / "r.jsonl")
    with pytest.raises(UsageError, match="nope"):
        score_input(src, out=tmp_path / "o", embedder=HashEmbedder(), reference_system="nope")


def test_prompt_unknown_gives_null_relevance(tmp_path):
    src = write_responses(tmp_path / "r.jsonl", with_prompt=False)
    score_input(src, out=tmp_path / "o", embedder=HashEmbedder())
    for r in read_metrics(tmp_path / "o"):
        assert r["relevance"] is None and r["relevance_mean"] is None
        assert isinstance(r["quality_pass"], list)


def test_stance_auto_for_yes_no_questions(tmp_path):
    src = tmp_path / "c.jsonl"
    rows = [
        {
            "system": "m",
            "prompt_id": "q1",
            "prompt": "Is walking good for health?",
            "samples": [
                "Yes, walking helps the heart.",
                "No, not really.",
                "Yes.",
                "It depends on many things.",
                "Yes and no: it helps, but it is not enough alone.",
            ],
        },
        {
            "system": "m",
            "prompt_id": "q2",
            "prompt": "Should schools start later?",
            "samples": ["Yes.", "Yes, teens need sleep.", "No.", "Perhaps.", "Yes, studies say so."],
        },
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = score_input(src, out=tmp_path / "o", embedder=HashEmbedder())
    assert s.settings["stance_scored"] is True
    for r in read_metrics(tmp_path / "o"):
        assert len(r["stance"]) == 5 and set(r["stance"]) <= {"yes", "no", "both", "other"}
        assert isinstance(r["yes_no_split"], bool)
    s2 = score_input(src, out=tmp_path / "o2", embedder=HashEmbedder(), stance=False)
    assert s2.settings["stance_scored"] is False


@pytest.mark.parametrize(
    "line, reason",
    [
        ("{not json", "invalid JSON"),
        ('{"system": "a", "samples": ["x"]}', "prompt_id"),
        ('{"system": "a", "prompt_id": 1, "samples": [3]}', "samples"),
    ],
)
def test_malformed_file_names_file_and_line(tmp_path, line, reason):
    src = tmp_path / "bad.jsonl"
    src.write_text(json.dumps({"system": "a", "prompt_id": 0, "samples": ["fine"]}) + "\n" + line + "\n")
    with pytest.raises(DataError, match=rf"bad.jsonl:2: .*{reason}"):
        score_input(src, out=tmp_path / "o", embedder=HashEmbedder())


def test_single_sample_and_unicode(tmp_path):
    src = tmp_path / "u.jsonl"
    src.write_text(
        json.dumps({"system": "a", "prompt_id": 0, "prompt": "¿Qué?", "samples": ["日本 🙂 émoji"]}) + "\n"
    )
    score_input(src, out=tmp_path / "o", embedder=HashEmbedder(), reference_system="a")
    (r,) = read_metrics(tmp_path / "o")
    assert r["jaccard"] is None and r["cosine"] is None and r["vendi"] == pytest.approx(1.0)
    assert r["coverage"] == [None] and r["cosine_to_ref"] is None  # the reference has no other sample


@pytest.mark.realmodel
def test_real_embedder_reference_subset(tmp_path, reference_dir, minilm_dir):
    from overtonlite.backends.onnx import OnnxEmbedder

    lines = (reference_dir / "lima-oe" / "responses.jsonl").read_text(encoding="utf-8").splitlines()
    keep = [
        ln
        for ln in lines
        if json.loads(ln)["system"] in ("llama-2-base", "llama-2-chat") and json.loads(ln)["prompt_id"] < 3
    ]
    src = tmp_path / "subset.jsonl"
    src.write_text("\n".join(keep) + "\n", encoding="utf-8")
    emb = OnnxEmbedder(minilm_dir, name="all-minilm-l6-v2")
    s = score_input(src, out=tmp_path / "o", embedder=emb, reference_system="llama-2-chat")
    base, chat = s.systems["llama-2-base"]["sets"]["all"], s.systems["llama-2-chat"]["sets"]["all"]
    # the paper's direction of effect: chat samples are lexically and semantically more alike than base samples
    assert chat["jaccard"]["mean"] > base["jaccard"]["mean"]
    assert chat["cosine"]["mean"] > base["cosine"]["mean"]
    # chat resamples are closer to chat sample 0 than base samples are
    assert chat["cosine_to_ref"]["mean"] > base["cosine_to_ref"]["mean"]
    assert chat["coverage"]["mean"] > base["coverage"]["mean"]


def test_long_texts_score_without_error(tmp_path):
    long_a = "Rivers carry sediment to the sea. " * 400
    long_b = "Mountains slowly erode under rain and wind. " * 400
    src = tmp_path / "long.jsonl"
    src.write_text(
        json.dumps(
            {
                "system": "s",
                "prompt_id": 0,
                "prompt": "Tell me about geology.",
                "samples": [long_a, long_b, long_a],
            }
        )
        + "\n"
    )
    score_input(src, out=tmp_path / "o", embedder=HashEmbedder(), reference_system="s")
    (r,) = read_metrics(tmp_path / "o")
    assert r["words"] == [2400, 2800, 2400]
    assert 0.0 < r["jaccard"] < 1.0 and r["coverage"][2] == 1.0


_texts = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60), min_size=1, max_size=4
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(groups=st.lists(_texts, min_size=1, max_size=3), use_ref=st.booleans())
def test_property_any_texts_give_documented_values(tmp_path, groups, use_ref):
    src = tmp_path / "h.jsonl"
    rows = [
        {"system": sys_, "prompt_id": i, "prompt": "Why is the sky blue?", "samples": g}
        for i, g in enumerate(groups)
        for sys_ in ("x", "y")
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    score_input(
        src,
        out=tmp_path / "o",
        embedder=HashEmbedder(),
        reference_system="x" if use_ref else None,
        stance=False,
    )
    for r in read_metrics(tmp_path / "o"):
        assert set(RECORD_KEYS) <= set(r)
        for key in ("jaccard", "cosine", "vendi", "cosine_to_ref", "bertscore_f1_to_ref", "coverage_union"):
            v = r[key]
            assert v is None or (isinstance(v, float) and math.isfinite(v))
        if r["vendi"] is not None:
            assert 1.0 - 1e-6 <= r["vendi"] <= r["n"] + 1e-6
        assert all(isinstance(p, bool) for p in r["quality_pass"])
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    for system in summary["systems"].values():
        for metrics in system["sets"].values():
            for entry in metrics.values():
                assert entry["mean"] is None or math.isfinite(entry["mean"])


def test_stance_auto_follows_the_prompt_set_of_each_group(tmp_path: Path) -> None:
    """A run mixing open-ended and contested prompts gets stance labels on the contested groups only."""
    rows = [
        {
            "system": "chat",
            "prompt_id": "oe-1",
            "set": "open-ended",
            "prompt": "Describe a calm morning routine.",
            "samples": ["Wake early and stretch.", "Make tea and read a little."],
        },
        {
            "system": "chat",
            "prompt_id": "cq-1",
            "set": "contested",
            "prompt": "Is coffee good for you?",
            "samples": ["Yes, in moderation it is.", "No, it is not good for you."],
        },
    ]
    src = tmp_path / "mixed.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    score_input(src, out=tmp_path / "o", embedder=HashEmbedder())
    recs = {r["prompt_id"]: r for r in read_metrics(tmp_path / "o")}
    assert recs["oe-1"]["stance"] is None and recs["oe-1"]["yes_no_split"] is None
    assert recs["cq-1"]["stance"] == ["yes", "no"] and recs["cq-1"]["yes_no_split"] is True
    # summary.json: stance values exist for the contested set only (not for open-ended, not mixed into "all")
    sets = json.loads((tmp_path / "o" / "summary.json").read_text())["systems"]["chat"]["sets"]
    assert set(sets) == {"open-ended", "contested", "all"}
    assert sets["contested"]["yes_no_split"] == {"mean": 1.0, "ci": None, "n_prompts": 1}
    assert sets["contested"]["stance_yes_share"]["mean"] == 0.5
    for name in ("open-ended", "all"):
        assert not [k for k in sets[name] if k.startswith("stance_") or k == "yes_no_split"]
    assert sets["open-ended"]["jaccard"]["n_prompts"] == 1 and sets["all"]["jaccard"]["n_prompts"] == 2
    forced = tmp_path / "forced"
    score_input(src, out=forced, embedder=HashEmbedder(), stance=True)
    assert all(r["stance"] is not None for r in read_metrics(forced))
    forced_sets = json.loads((forced / "summary.json").read_text())["systems"]["chat"]["sets"]
    assert forced_sets["all"]["stance_both_share"]["n_prompts"] == 2


def test_embedder_calibration_sets_thresholds(tmp_path):
    from overtonlite.metrics import coverage
    from overtonlite.registry import Calibration

    src = write_responses(tmp_path / "r.jsonl", dict_samples=True)
    plain = score_input(src, out=tmp_path / "a", embedder=HashEmbedder(), reference_system="chat")
    assert plain.settings["calibration"].startswith("defaults")
    assert plain.settings["tau"] == coverage.DEFAULT_TAU
    assert plain.settings["missing_cuts"] == list(coverage.MISSING_CUTS)

    emb = HashEmbedder()
    # cut points so high that only full coverage maps to 1-4: every partly covered sample becomes a 5
    emb.calibration = Calibration(
        coverage_tau=0.9, missing_cuts=(1.0, 1.0, 1.0, 1.0), quality_threshold=0.5, coverage_rho=0.3
    )
    cal = score_input(src, out=tmp_path / "b", embedder=emb, reference_system="chat")
    assert cal.settings["calibration"] == f"embedder {emb.name}"
    assert (cal.settings["tau"], cal.settings["quality_threshold"]) == (0.9, 0.5)
    assert cal.settings["missing_cuts"] == [1.0, 1.0, 1.0, 1.0]
    seen = set()
    for rec in read_metrics(tmp_path / "b"):
        for c, m in zip(rec["coverage"], rec["missing"], strict=True):
            if c is not None:
                assert m == (1 if c >= 1.0 else 5)
                seen.add(m)
    assert seen == {1, 5}
    # explicit arguments still win over the calibration
    over = score_input(src, out=tmp_path / "c", embedder=emb, reference_system="chat", tau=0.3)
    assert over.settings["tau"] == 0.3
