"""The beyond-the-paper keys in metrics.jsonl and summary.json (fake embedder, hand-written responses)."""

from __future__ import annotations

import json
import math

import pytest

from overtonlite.metrics import distinct, lexsuite
from overtonlite.scoring import score_input
from overtonlite.scoring.beyond import KEYS
from tests.test_scoring import OPEN, HashEmbedder, read_metrics, write_responses


def test_new_keys_in_records_and_summary(tmp_path):
    src = write_responses(tmp_path / "responses.jsonl")
    emb = HashEmbedder()
    score_input(src, out=tmp_path / "out", embedder=emb)
    recs = {(r["system"], r["prompt_id"]): r for r in read_metrics(tmp_path / "out")}
    chat_p2 = recs[("chat", "p2")]  # five identical answers
    assert chat_p2["distinct_at_n"] == 1 and chat_p2["distinct_at_n_lexical"] == 1
    # the hash embedder's relevance fails these answers (no word in common with the prompt): nothing to count
    assert not any(chat_p2["quality_pass"]) and chat_p2["distinct_at_n_filtered"] is None
    assert chat_p2["homogenization_rougel"] == 1.0
    # 10 words -> 7 distinct 4-grams, each in the 4 other answers: log(7 * 4 + 1) for every answer
    assert chat_p2["self_repetition"] == pytest.approx(math.log(29))
    base_p2 = recs[("base", "p2")]
    texts = dict((pid, s) for pid, _, s in OPEN)["p2"]["base"]
    vecs = {t: v for t, v in zip(texts, emb.embed(texts), strict=True) if t}
    assert base_p2["distinct_at_n"] == distinct.distinct_by_cosine(texts, vecs)
    kept = [t for t, ok in zip(texts, base_p2["quality_pass"], strict=True) if ok]
    assert "" not in kept
    assert base_p2["distinct_at_n_filtered"] == distinct.distinct_by_cosine(kept, vecs)
    assert base_p2["compression_ratio"] == pytest.approx(lexsuite.compression_ratio(texts))
    assert base_p2["ngram_diversity"] == pytest.approx(lexsuite.ngram_diversity(texts))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    chat = summary["systems"]["chat"]["sets"]["all"]
    for key in KEYS:
        assert chat[key]["n_prompts"] >= 1, key
    mean = chat["distinct_at_n"]["mean"]
    assert mean == pytest.approx(sum(recs[("chat", p)]["distinct_at_n"] for p in ("p1", "p2", "p3")) / 3)
    assert summary["settings"]["distinct"]["cosine_threshold"] == distinct.COSINE_THRESHOLD
    assert "not calibrated for hash-test" in summary["settings"]["distinct"]["cosine_threshold_source"]


def test_similarity_matrix_in_summary(tmp_path):
    src = write_responses(tmp_path / "responses.jsonl")
    score_input(src, out=tmp_path / "out", embedder=HashEmbedder())
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    sim = summary["similarity"]
    entry = sim["sets"]["all"]
    assert entry["systems"] == ["base", "chat"]
    # the diagonal is each system's mean within-prompt cosine, i.e. the summary's cosine mean
    for i, system in enumerate(entry["systems"]):
        cosine = summary["systems"][system]["sets"]["all"]["cosine"]["mean"]
        assert entry["matrix"][i][i] == pytest.approx(cosine, abs=1e-6)
        assert entry["n_prompts"][i][i] == 3
    assert entry["matrix"][0][1] == entry["matrix"][1][0] and entry["n_prompts"][0][1] == 3
    # chat p2 has 5 identical answers (10 pairs at cosine 1.0); p1 and p3 have 10 pairs each
    hist = entry["histograms"]["chat"]
    assert hist["n_pairs"] == 30 and sum(hist["counts"]) == 30 and hist["counts"][-1] >= 10
    assert len(sim["histogram_edges"]) == len(hist["counts"]) + 1
