"""Statistics that turn "both engines look alike" into a claim with a number on it.

Two questions, two tests:

* Over seeds, are the engines' mean test accuracies the same within a margin? A plain t-test
  cannot say so (failing to find a difference is not evidence of none), so `tost_equivalence`
  runs two one-sided Welch t-tests (TOST) against -margin and +margin: equivalence is claimed
  only when both reject, i.e. the (1 - 2 alpha) confidence interval lies inside +/- margin.
* On one seed, do the two models make errors on the same images? `mcnemar` tests whether the
  images only one engine gets right split evenly, and `prediction_agreement` counts how often
  they predict the same class at all (which correctness alone cannot tell).

numpy and scipy.stats only: the report runs without any deep-learning framework.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats


def _mean_std(values: np.ndarray) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof=1, as the t-test uses); no std from one value."""
    return float(values.mean()), (float(values.std(ddof=1)) if len(values) > 1 else None)


def welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Difference of means, its standard error and the Welch–Satterthwaite degrees of freedom.

    Welch rather than pooled variance: nothing says both frameworks vary as much from seed to seed.
    """
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = float(np.sqrt(va + vb))
    df = float((va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)))
    return float(a.mean() - b.mean()), se, df


def _points(x: float, sign: bool = False) -> str:
    """A fraction as percentage points, e.g. 0.0007 -> '+0.07'."""
    return f"{x * 100:{'+' if sign else ''}.2f}"


def format_p(p: float) -> str:
    """p-values readable at a glance: three decimals, or '< 0.001'."""
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def _describe(values: np.ndarray, label: str) -> str:
    mean, std = _mean_std(values)
    return f"{label} {mean * 100:.2f}%" + (f" ± {std * 100:.2f}" if std is not None else "")


def _numbers(a: np.ndarray, b: np.ndarray, labels: tuple[str, str]) -> str:
    """'Keras 91.62% ± 0.12, Lightning 91.55% ± 0.09 (mean ± std over 3 seeds)'."""
    na, nb = len(a), len(b)
    if na == 1 and nb == 1:
        over = "one seed each"
    else:
        over = f"mean ± std over {na} seeds" if na == nb else f"mean ± std over {na} and {nb} seeds"
    return f"{_describe(a, labels[0])}, {_describe(b, labels[1])} ({over})"


def _no_test_reason(a: np.ndarray, b: np.ndarray, labels: tuple[str, str]) -> str | None:
    """Why no t-test can be run, or None when one can."""
    if len(a) < 2 and len(b) < 2:
        return "with one seed per engine"
    for values, label in ((a, labels[0]), (b, labels[1])):
        if len(values) < 2:
            return f"with one seed for {label} (at least two per engine are needed)"
    if a.var() == 0 and b.var() == 0:
        return "when every seed of each engine gives the same accuracy (zero variance: no error estimate)"
    return None


def tost_equivalence(
    a: Sequence[float],
    b: Sequence[float],
    margin: float,
    alpha: float = 0.05,
    labels: tuple[str, str] = ("Keras", "Lightning"),
) -> dict[str, Any]:
    """TOST on mean(a) - mean(b) (fractions, e.g. test accuracies) against +/- margin.

    `p_lower` tests H0: diff <= -margin, `p_upper` H0: diff >= +margin; `p_value` is the larger,
    and `equivalent` is `p_value < alpha` (the same as the 1 - 2 alpha CI inside +/- margin).
    With too few seeds or no variance there is no test: the statistics are None, `equivalent`
    is None and the verdict says why, still giving the numbers.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("tost_equivalence needs at least one value per side")
    level = 1 - 2 * alpha
    result: dict[str, Any] = {
        "diff": float(a.mean() - b.mean()),
        "se": None,
        "df": None,
        "ci": None,
        "ci_level": level,
        "p_lower": None,
        "p_upper": None,
        "p_value": None,
        "equivalent": None,
        "margin": margin,
        "alpha": alpha,
        "n_a": len(a),
        "n_b": len(b),
        "mean_a": _mean_std(a)[0],
        "std_a": _mean_std(a)[1],
        "mean_b": _mean_std(b)[0],
        "std_b": _mean_std(b)[1],
    }
    numbers, within = _numbers(a, b, labels), f"±{_points(margin)} points"
    reason = _no_test_reason(a, b, labels)
    if reason is not None:
        result["verdict"] = (
            f"No equivalence claim is possible {reason}: {numbers}, "
            f"difference {_points(result['diff'], True)} points (margin {within})."
        )
        return result
    diff, se, df = welch(a, b)
    p_lower = float(stats.t.sf((diff + margin) / se, df))
    p_upper = float(stats.t.cdf((diff - margin) / se, df))
    half = float(stats.t.ppf(1 - alpha, df)) * se
    result.update(
        se=se,
        df=df,
        ci=[diff - half, diff + half],
        p_lower=p_lower,
        p_upper=p_upper,
        p_value=max(p_lower, p_upper),
        equivalent=bool(max(p_lower, p_upper) < alpha),
    )
    result["verdict"] = _verdict(result, numbers, within)
    return result


def _verdict(r: dict[str, Any], numbers: str, within: str) -> str:
    """One sentence: the claim first, then every number behind it."""
    low, high = r["ci"]
    if r["equivalent"]:
        claim = f"Equivalent within {within}"
    elif low > r["margin"] or high < -r["margin"]:
        claim = f"Not equivalent: the difference lies outside {within}"
    else:
        claim = f"Not shown equivalent within {within} (inconclusive: more seeds would narrow the interval)"
    return (
        f"{claim}: {numbers}, difference {_points(r['diff'], True)} points, "
        f"{r['ci_level'] * 100:g}% CI [{_points(low, True)}, {_points(high, True)}],"
        f" TOST p {format_p(r['p_value'])}."
    )


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, Any]:
    """Exact McNemar test: do the images only one model gets right split 50/50 between them?

    Only the discordant images carry information; under H0 each is equally likely to favour
    either side, so their split is Binomial(only_a + only_b, 0.5), tested two-sided.
    """
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"mcnemar needs two 1-D arrays of one length, got shapes {a.shape} and {b.shape}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    discordant = only_a + only_b
    p = float(stats.binomtest(only_a, discordant, 0.5).pvalue) if discordant else 1.0
    return {
        "both_right": int((a & b).sum()),
        "both_wrong": int((~a & ~b).sum()),
        "only_a": only_a,
        "only_b": only_b,
        "n": int(len(a)),
        "p_value": min(p, 1.0),
    }


def prediction_agreement(pred_a: np.ndarray, pred_b: np.ndarray) -> float:
    """Fraction of images given the same class by both: two models can be wrong differently."""
    a, b = np.asarray(pred_a), np.asarray(pred_b)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(
            f"prediction_agreement needs two non-empty 1-D arrays of one length, got {a.shape} and {b.shape}"
        )
    return float((a == b).mean())
