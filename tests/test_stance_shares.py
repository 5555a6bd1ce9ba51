"""Confusion-corrected stance shares and their CIs (overtonlite.metrics.stance_shares), against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from overtonlite.metrics import stance_shares as ss

# GPT-4 "yes" answers are called "both" 20 % of the time; everything else is labelled right.
YES_TO_BOTH = np.array([[80, 0, 20, 0], [0, 100, 0, 0], [0, 0, 100, 0], [0, 0, 0, 100]], dtype=float)
# yes and no are swapped 10 % of the time.
SWAP = np.array([[90, 10, 0, 0], [10, 90, 0, 0], [0, 0, 100, 0], [0, 0, 0, 100]], dtype=float)


def test_project_simplex_by_hand():
    assert ss.project_simplex([0.5, 0.5, 0, 0]).tolist() == [0.5, 0.5, 0, 0]
    # (1.125, -0.125): subtract 0.125 from both, clip the negative one -> (1, 0)
    assert np.allclose(ss.project_simplex([1.125, -0.125, 0, 0]), [1, 0, 0, 0])
    assert np.allclose(ss.project_simplex([0.6, 0.6, 0, 0]), [0.5, 0.5, 0, 0])


def test_confusion_rates_add_the_prior_to_every_cell():
    r = ss.confusion_rates(YES_TO_BOTH, prior=0.0)
    assert r[0].tolist() == [0.8, 0.0, 0.2, 0.0]
    r = ss.confusion_rates(np.zeros((4, 4)), prior=0.5)
    assert np.allclose(r, 0.25)


def test_correct_shares_undoes_a_known_confusion():
    # true 50 % yes / 50 % both -> predicted yes 0.4, both 0.6; the correction gives 0.5 / 0.5 back
    rates = ss.confusion_rates(YES_TO_BOTH, prior=0.0)
    assert np.allclose(ss.correct_shares([0.4, 0.0, 0.6, 0.0], rates), [0.5, 0.0, 0.5, 0.0])


# prompt level: 40 % of splitting prompts are seen as split (tpr), 10 % of the others (fpr)
SPLIT = np.array([[90, 10], [60, 40]], dtype=float)


def test_correct_split_rogan_gladen_by_hand():
    rates = ss.confusion_rates(SPLIT, prior=0.0)
    # (0.25 - 0.1) / (0.4 - 0.1) = 0.5
    assert ss.correct_split(0.25, rates) == pytest.approx(0.5)
    assert ss.correct_split(0.05, rates) == 0.0  # below fpr: clipped
    assert ss.correct_split(0.9, rates) == 1.0
    # an uninformative classifier (tpr <= fpr) leaves the observed rate
    assert ss.correct_split(0.3, ss.confusion_rates([[50, 50], [50, 50]], prior=0.0)) == 0.3


def test_corrected_estimates_by_hand():
    groups = [["yes", "yes", "both", "both", "both"], ["yes", "yes", "both", "both", "both"]]
    est = ss.corrected_estimates(groups, YES_TO_BOTH, SPLIT, prior=0.0)
    assert est["raw"]["both"] == pytest.approx(0.6)
    assert est["corrected"]["both"] == pytest.approx(0.5)
    assert est["corrected"]["yes"] == pytest.approx(0.5)
    assert est["raw_split"] == 0.0 and est["corrected_split"] == 0.0
    assert est["n_prompts"] == 2

    groups = [["yes", "no"], ["yes", "yes"], ["no", "both"], ["both"]]
    est = ss.corrected_estimates(groups, SWAP, SPLIT, prior=0.0)
    assert est["raw_split"] == 0.25
    assert est["corrected_split"] == pytest.approx(0.5)
    # predicted shares (mean over prompts): yes 0.375, no 0.25, both 0.375; SWAP mixes only yes and no:
    # 0.9 y + 0.1 n = 0.375, 0.1 y + 0.9 n = 0.25 -> y = 0.390625, n = 0.234375
    assert est["corrected"]["yes"] == pytest.approx(0.390625)
    assert est["corrected"]["no"] == pytest.approx(0.234375)
    assert est["corrected"]["both"] == pytest.approx(0.375)
    # a stack of per-system matrices is summed for the point estimate
    stacked = ss.corrected_estimates(groups, np.stack([SWAP, SWAP]), np.stack([SPLIT, SPLIT]), prior=0.0)
    assert stacked == est


def test_identity_confusion_changes_nothing():
    groups = [["yes", "no", "both"], ["no", "no", "other"], ["both"]]
    est = ss.corrected_estimates(groups, np.eye(4) * 1e6, np.eye(2) * 1e6, prior=0.0)
    for lab in ss.LABELS:
        assert est["corrected"][lab] == pytest.approx(est["raw"][lab], abs=1e-9)
    assert est["corrected_split"] == pytest.approx(est["raw_split"], abs=1e-9)


def test_ci_grows_with_classifier_uncertainty_and_is_seeded():
    rng = np.random.default_rng(3)
    groups = [list(rng.choice(["yes", "no", "both"], size=5)) for _ in range(40)]
    sure = ss.stance_share_estimates(groups, SWAP * 100, SPLIT * 100, n_boot=300, seed=1)
    unsure = ss.stance_share_estimates(groups, SWAP / 10, SPLIT / 10, n_boot=300, seed=1)
    again = ss.stance_share_estimates(groups, SWAP * 100, SPLIT * 100, n_boot=300, seed=1)
    assert sure == again
    for key in ("both_share", "yes_no_split"):
        lo, hi = sure[key]["ci"]
        assert lo <= sure[key]["mean"] <= hi
        assert sure[key]["n_prompts"] == 40
    # two systems whose confusion differs: the CI is wider than with either one alone
    both = ss.stance_share_estimates(
        groups, np.stack([SWAP * 100, YES_TO_BOTH * 100]), np.stack([SPLIT * 100] * 2), n_boot=300, seed=1
    )
    one = ss.stance_share_estimates(groups, SWAP * 100, SPLIT * 100, n_boot=300, seed=1)
    assert np.diff(both["shares"]["yes"]["ci"])[0] > np.diff(one["shares"]["yes"]["ci"])[0] + 0.02
    width = {
        k: v["yes_no_split"]["ci"][1] - v["yes_no_split"]["ci"][0] for k, v in (("s", sure), ("u", unsure))
    }
    assert width["u"] > width["s"] + 0.05
    assert sure["shares"]["other"]["raw"] == 0.0


@pytest.mark.parametrize(
    "groups,counts",
    [([["maybe"]], SWAP), ([["yes"]], np.ones((3, 3))), ([["yes"]], -SWAP), ([[], []], SWAP)],
)
def test_bad_input_raises(groups, counts):
    with pytest.raises(ValueError):
        ss.corrected_estimates(groups, counts, SPLIT)
    with pytest.raises(ValueError):
        ss.stance_share_estimates([["yes"]], np.stack([SWAP, SWAP]), SPLIT)  # 2 systems vs 1


def test_summary_metrics_keys_and_empty():
    groups = [["yes", "no", "both"], ["both", "both", "no"]]
    out = ss.summary_metrics(groups, seed=0, n_boot=50, counts=SWAP, split_counts=SPLIT)
    assert set(out) == {"stance_both_share_corrected", "yes_no_split_corrected"}
    point = ss.corrected_estimates(groups, SWAP, SPLIT)
    assert out["stance_both_share_corrected"]["mean"] == pytest.approx(point["corrected"]["both"])
    assert out["yes_no_split_corrected"]["n_prompts"] == 2
    assert ss.summary_metrics([[], []], seed=0, n_boot=50) == {}


def test_shipped_confusion_is_one_matrix_per_labelled_system():
    c, sc = ss.shipped_confusion()
    assert c.shape == (4, 4, 4) and sc.shape == (4, 2, 2)
    assert np.all(sc.sum(axis=(1, 2)) == 434)
    assert (c >= 0).all() and np.all(c.sum(axis=(1, 2)) == 2170)  # 434 prompts x 5 answers per system
    # out-of-system: the diagonal dominates but is far from perfect
    acc = np.trace(c, axis1=1, axis2=2) / c.sum(axis=(1, 2))
    assert np.all((acc > 0.5) & (acc < 0.95))


def test_scoring_summary_carries_the_corrected_stance_values():
    from overtonlite.scoring.agg import build_summary

    recs = [
        {"system": "a", "prompt_id": i, "set": "contested", "stance": labels}
        for i, labels in enumerate([["yes", "no", "both"], ["both", "both", "no"], ["yes", "yes", "yes"]])
    ]
    recs.append({"system": "a", "prompt_id": 9, "set": "open", "stance": None})  # no stance scored here
    out = build_summary(recs, systems=["a"], reference_system=None, seed=0, n_boot=50)
    sets = out["systems"]["a"]["sets"]
    entry = sets["contested"]["stance_both_share_corrected"]
    expected = ss.summary_metrics([r["stance"] for r in recs[:3]], seed=0, n_boot=50)
    assert entry == expected["stance_both_share_corrected"] and entry["n_prompts"] == 3
    lo, hi = entry["ci"]
    assert lo <= entry["mean"] <= hi
    assert "yes_no_split_corrected" in sets["contested"]
    assert (
        "stance_both_share_corrected" not in sets["open"] and "stance_both_share_corrected" not in sets["all"]
    )


def test_solution_outside_the_simplex_and_other_kept_as_labelled():
    # all "yes" predicted: the unconstrained solve gives yes 1.125, no -0.125; on the simplex it is yes 1.0
    est = ss.corrected_estimates([["yes"] * 5], SWAP, SPLIT, prior=0.0)
    assert est["corrected"]["yes"] == pytest.approx(1.0, abs=1e-6)
    assert est["corrected"]["no"] == pytest.approx(0.0, abs=1e-6)
    # "other" keeps its labelled share; yes / no / both are corrected among themselves in the remaining 0.5
    est = ss.corrected_estimates([["other", "yes"], ["other", "no"]], SWAP, SPLIT, prior=0.0)
    assert est["corrected"]["other"] == 0.5
    assert est["corrected"]["yes"] == pytest.approx(0.25) and est["corrected"]["no"] == pytest.approx(0.25)
    # stacks of replicates are corrected row by row
    rates = ss.confusion_rates(YES_TO_BOTH, prior=0.0)
    rows = ss.correct_shares(np.array([[0.4, 0.0, 0.6, 0.0], [0.8, 0.0, 0.2, 0.0]]), np.stack([rates, rates]))
    assert np.allclose(rows, [[0.5, 0, 0.5, 0], [1.0, 0, 0.0, 0]], atol=1e-6)
