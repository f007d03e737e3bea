"""The equivalence and McNemar tests on inputs whose answers are known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from compare.stats import mcnemar, prediction_agreement, tost_equivalence, welch

A, B = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0]  # means 2.5 and 4, variances 5/3 and 4


def test_welch_by_hand_and_against_scipy():
    diff, se, df = welch(np.array(A), np.array(B))
    # se^2 = (5/3)/4 + 4/3 = 7/4; df = (7/4)^2 / ((5/12)^2/3 + (4/3)^2/2) = 1323/409
    assert diff == pytest.approx(-1.5)
    assert se == pytest.approx(math.sqrt(7 / 4))
    assert df == pytest.approx(1323 / 409)
    ref = sps.ttest_ind(A, B, equal_var=False)
    assert diff / se == pytest.approx(ref.statistic)
    assert df == pytest.approx(ref.df)


def test_tost_matches_two_shifted_one_sided_welch_tests():
    margin, alpha = 0.5, 0.05
    r = tost_equivalence(A, B, margin, alpha)
    lower = sps.ttest_ind(np.array(A) + margin, B, equal_var=False, alternative="greater").pvalue
    upper = sps.ttest_ind(np.array(A) - margin, B, equal_var=False, alternative="less").pvalue
    assert r["p_lower"] == pytest.approx(lower)
    assert r["p_upper"] == pytest.approx(upper)
    assert r["p_value"] == pytest.approx(max(lower, upper))
    half = sps.t.ppf(0.95, 1323 / 409) * math.sqrt(7 / 4)
    assert r["ci"] == pytest.approx([-1.5 - half, -1.5 + half])
    assert r["ci_level"] == pytest.approx(0.90)
    assert (r["n_a"], r["n_b"]) == (4, 3)
    assert r["equivalent"] is False


def test_clearly_equivalent_pair():
    keras, lightning = [0.9160, 0.9165, 0.9158], [0.9155, 0.9162, 0.9150]
    r = tost_equivalence(keras, lightning, margin=0.005)
    assert r["equivalent"] is True
    assert r["p_value"] < 0.05
    assert -0.005 < r["ci"][0] < r["ci"][1] < 0.005
    v = r["verdict"]
    assert v.startswith("Equivalent within ±0.50 points: Keras 91.61% ± 0.04, Lightning 91.56% ± 0.06")
    assert "(mean ± std over 3 seeds)" in v and "difference +0.05 points" in v and "90% CI [" in v
    assert "TOST p " in v


def test_clearly_not_equivalent_pair_two_points_apart():
    r = tost_equivalence([0.910, 0.912, 0.908], [0.890, 0.892, 0.888], margin=0.005)
    assert r["diff"] == pytest.approx(0.02)
    assert r["equivalent"] is False
    assert r["p_value"] > 0.5
    assert r["verdict"].startswith("Not equivalent")
    assert "difference +2.00 points" in r["verdict"]


def test_overlapping_but_wide_interval_is_inconclusive():
    r = tost_equivalence([0.90, 0.92, 0.91], [0.905, 0.915, 0.925], margin=0.005)
    assert r["equivalent"] is False
    assert r["verdict"].startswith("Not shown equivalent")


def test_one_seed_per_engine_makes_no_claim_but_gives_numbers():
    r = tost_equivalence([0.9162], [0.9155], margin=0.005)
    assert r["equivalent"] is None and r["p_value"] is None and r["ci"] is None
    assert r["diff"] == pytest.approx(0.0007)
    assert "no equivalence claim is possible with one seed per engine" in r["verdict"].lower()
    assert "Keras 91.62%" in r["verdict"] and "Lightning 91.55%" in r["verdict"]
    assert "+0.07 points" in r["verdict"]


def test_zero_variance_on_both_sides_makes_no_claim():
    r = tost_equivalence([0.9, 0.9], [0.9, 0.9], margin=0.005)
    assert r["equivalent"] is None
    assert "zero variance" in r["verdict"]


def test_mcnemar_balanced_discordance_gives_p_one():
    a = np.array([1, 1, 0, 0, 1, 0], bool)
    b = np.array([1, 0, 1, 0, 0, 1], bool)
    r = mcnemar(a, b)
    assert (r["both_right"], r["both_wrong"], r["only_a"], r["only_b"]) == (1, 1, 2, 2)
    assert r["p_value"] == pytest.approx(1.0)


def test_mcnemar_ten_to_zero():
    a = np.array([True] * 10 + [True] * 5 + [False] * 3)
    b = np.array([False] * 10 + [True] * 5 + [False] * 3)
    r = mcnemar(a, b)
    assert (r["only_a"], r["only_b"], r["both_right"], r["both_wrong"]) == (10, 0, 5, 3)
    assert r["p_value"] == pytest.approx(2 * 0.5**10)


def test_mcnemar_without_discordance():
    r = mcnemar(np.ones(4, bool), np.ones(4, bool))
    assert r["p_value"] == 1.0 and r["only_a"] == r["only_b"] == 0


def test_prediction_agreement_counts_same_class_even_when_both_wrong():
    labels = np.array([0, 1, 2, 3])
    pa, pb = np.array([0, 5, 5, 3]), np.array([0, 5, 6, 4])
    assert prediction_agreement(pa, pb) == pytest.approx(0.5)
    # correctness agrees on 3 of 4 images (image 2: both wrong, different classes)
    assert ((pa == labels) == (pb == labels)).mean() == pytest.approx(0.75)
    with pytest.raises(ValueError):
        prediction_agreement(pa, pb[:3])
