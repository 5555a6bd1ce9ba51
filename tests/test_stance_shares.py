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


def test_posteriors_by_bayes_rule():
    rates = ss.confusion_rates(YES_TO_BOTH, prior=0.0)
    post = ss.posteriors(rates, [0.5, 0.0, 0.5, 0.0])
    # P(true yes | pred both) = 0.2 * 0.5 / (0.2 * 0.5 + 1.0 * 0.5) = 1/6
    assert post[0, 2] == pytest.approx(1 / 6)
    assert post[2, 2] == pytest.approx(5 / 6)
    assert post[0, 0] == pytest.approx(1.0)


def test_split_probability_by_hand():
    post = ss.posteriors(ss.confusion_rates(SWAP, prior=0.0), [0.5, 0.5, 0.0, 0.0])
    # predicted (yes, no): true split = P(yes, no) + P(no, yes) = 0.9 * 0.9 + 0.1 * 0.1
    assert ss.split_probability([0, 1], post) == pytest.approx(0.82)
    # predicted (yes, yes): split = 0.9 * 0.1 + 0.1 * 0.9
    assert ss.split_probability([0, 0], post) == pytest.approx(0.18)


def test_corrected_estimates_by_hand():
    groups = [["yes", "yes", "both", "both", "both"], ["yes", "yes", "both", "both", "both"]]
    est = ss.corrected_estimates(groups, YES_TO_BOTH, prior=0.0)
    assert est["raw"]["both"] == pytest.approx(0.6)
    assert est["corrected"]["both"] == pytest.approx(0.5)
    assert est["corrected"]["yes"] == pytest.approx(0.5)
    assert est["raw_split"] == 0.0 and est["corrected_split"] == pytest.approx(0.0)
    assert est["n_prompts"] == 2

    est = ss.corrected_estimates([["yes", "no"], ["yes", "yes"]], SWAP, prior=0.0)
    assert est["raw_split"] == 0.5
    # true shares: predicted (0.75, 0.25) = C^T x -> x = (0.8125, 0.1875); posteriors then give per prompt
    # P(split) = 1 - prod(1 - P_yes) - prod(1 - P_no) + prod(1 - P_yes - P_no)
    x = np.linalg.solve(ss.confusion_rates(SWAP, prior=0.0)[:2, :2].T, [0.75, 0.25])
    assert est["corrected"]["yes"] == pytest.approx(x[0])
    py = 0.9 * x[0] / (0.9 * x[0] + 0.1 * x[1])  # P(true yes | pred yes)
    pn = 0.9 * x[1] / (0.1 * x[0] + 0.9 * x[1])  # P(true no | pred no)
    p_yn = py * pn + (1 - py) * (1 - pn)
    p_yy = 2 * py * (1 - py)
    assert est["corrected_split"] == pytest.approx((p_yn + p_yy) / 2)


def test_identity_confusion_changes_nothing():
    groups = [["yes", "no", "both"], ["no", "no", "other"], ["both"]]
    est = ss.corrected_estimates(groups, np.eye(4) * 1e6, prior=0.0)
    for lab in ss.LABELS:
        assert est["corrected"][lab] == pytest.approx(est["raw"][lab], abs=1e-9)
    assert est["corrected_split"] == pytest.approx(est["raw_split"], abs=1e-9)


def test_ci_grows_with_classifier_uncertainty_and_is_seeded():
    rng = np.random.default_rng(3)
    groups = [list(rng.choice(["yes", "no", "both"], size=5)) for _ in range(40)]
    sure = ss.stance_share_estimates(groups, SWAP * 100, n_boot=300, seed=1)
    unsure = ss.stance_share_estimates(groups, SWAP / 10, n_boot=300, seed=1)
    again = ss.stance_share_estimates(groups, SWAP * 100, n_boot=300, seed=1)
    assert sure == again
    for key in ("both_share", "yes_no_split"):
        lo, hi = sure[key]["ci"]
        assert lo <= sure[key]["mean"] <= hi
        assert sure[key]["n_prompts"] == 40
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
        ss.corrected_estimates(groups, counts)
