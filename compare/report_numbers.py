"""Every number a compare report shows, as plain values: what summary.json holds and the text and
figures are drawn from.

Everything derived from predictions (accuracy, loss, confusion matrices, per-class scores) is
recomputed here from each run's saved logits with the same numpy code for every engine, so the
comparison cannot be skewed by how a framework computes its own metrics.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np

from compare.report_runs import LABELS, Run, engine_pairs, paired_runs
from compare.stats import mcnemar, prediction_agreement, tost_equivalence
from fmnist import CLASS_NAMES
from fmnist.metrics import confusion_matrix, cross_entropy, per_class_scores

CURVE_METRICS = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")
MAX_DISAGREEMENTS = 24


def _stat(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean and sample std over seeds (std None with one seed), with the values themselves."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {"values": [], "mean": None, "std": None, "min": None, "max": None}
    arr = np.array(vals)
    return {
        "values": vals,
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if len(arr) > 1 else None,
        "min": float(arr.min()),
        "max": float(arr.max()),
    }


def top_confusions(cm: np.ndarray, k: int = 3) -> list[dict[str, Any]]:
    """The k largest off-diagonal cells: which true class is most often taken for which."""
    off = np.asarray(cm, dtype=np.float64).copy()
    np.fill_diagonal(off, -np.inf)
    order = np.argsort(off, axis=None, kind="stable")[::-1][:k]
    return [
        {"true": CLASS_NAMES[i], "predicted": CLASS_NAMES[j], "count": _num(cm[i][j])}
        for i, j in (np.unravel_index(o, off.shape) for o in order)
    ]


def _num(x: Any) -> int | float:
    """A plain int when the value is whole (summed counts), else a float (mean counts)."""
    return int(x) if float(x).is_integer() else float(x)


def _confusion(runs: list[Run], aggregate: str) -> np.ndarray:
    stack = np.stack([confusion_matrix(r.labels, r.predictions) for r in runs])
    return stack.sum(axis=0) if aggregate == "sum" else stack.mean(axis=0)


def _per_class(runs: list[Run]) -> dict[str, dict[str, dict[str, Any]]]:
    """Precision, recall and F1 per class, as mean/std over seeds."""
    scores = [per_class_scores(confusion_matrix(r.labels, r.predictions)) for r in runs]
    return {
        name: {m: _stat([s[name][m] for s in scores]) for m in ("precision", "recall", "f1")} for name in CLASS_NAMES
    }


def _curves(runs: list[Run]) -> dict[str, Any]:
    """Per-epoch mean, min and max over seeds, on the epochs every seed finished."""
    n = min(len(r.history) for r in runs)
    out: dict[str, Any] = {"epoch": [int(row["epoch"]) for row in runs[0].history[:n]]}
    for metric in CURVE_METRICS:
        arr = np.array([[row[metric] for row in r.history[:n]] for r in runs], dtype=np.float64)
        out[metric] = {"mean": arr.mean(0).tolist(), "min": arr.min(0).tolist(), "max": arr.max(0).tolist()}
    return out


def _engine_summary(runs: list[Run], aggregate: str) -> dict[str, Any]:
    """Every number the report shows for one engine."""
    cm = _confusion(runs, aggregate)
    params = sorted({r.test.get("num_params") for r in runs}, key=str)
    return {
        "seeds": [r.seed for r in runs],
        "runs": [str(r.path) for r in runs],
        "test_accuracy": _stat([r.correct.mean() for r in runs]),
        "test_loss": _stat([cross_entropy(r.logits, r.labels) for r in runs]),
        "macro_f1": _stat(
            [
                np.mean([s["f1"] for s in per_class_scores(confusion_matrix(r.labels, r.predictions)).values()])
                for r in runs
            ]
        ),
        "num_params": params[0] if len(params) == 1 else params,
        "train_seconds": _stat([r.test.get("train_seconds") for r in runs]),
        "train_images_per_second": _stat([r.test.get("train_images_per_second") for r in runs]),
        "confusion_matrix": [[_num(x) for x in row] for row in cm],
        "top_confusions": top_confusions(cm),
        "per_class": _per_class(runs),
        "curves": _curves(runs),
        "versions": runs[0].test.get("versions", {}),
    }


def _per_seed(groups: dict[str, list[Run]], a: str, b: str) -> list[dict[str, Any]]:
    """Image-by-image comparison of engines a and b on each seed both ran."""
    runs_a, runs_b = ({r.seed: r for r in groups[e]} for e in (a, b))
    rows = []
    for seed in sorted(set(runs_a) & set(runs_b)):
        x, y = runs_a[seed], runs_b[seed]
        m = mcnemar(x.correct, y.correct)
        rows.append(
            {
                "seed": seed,
                f"{a}_accuracy": float(x.correct.mean()),
                f"{b}_accuracy": float(y.correct.mean()),
                "prediction_agreement": prediction_agreement(x.predictions, y.predictions),
                "both_right": m["both_right"],
                "both_wrong": m["both_wrong"],
                f"only_{a}_right": m["only_a"],
                f"only_{b}_right": m["only_b"],
                "mcnemar_p": m["p_value"],
            }
        )
    return rows


def _disagreement_indices(k: Run, l: Run) -> list[int]:
    """Up to 24 images one engine gets right and the other wrong, half from each side when possible."""
    only_k = np.flatnonzero(k.correct & ~l.correct).tolist()
    only_l = np.flatnonzero(~k.correct & l.correct).tolist()
    half = MAX_DISAGREEMENTS // 2
    take_k = min(len(only_k), max(half, MAX_DISAGREEMENTS - len(only_l)))
    take_l = min(len(only_l), MAX_DISAGREEMENTS - take_k)
    return sorted(only_k[:take_k] + only_l[:take_l])


def disagreements(groups: dict[str, list[Run]], images_given: bool) -> dict[str, Any] | None:
    """The images the lead pair of engines disagrees on, for the first seed both ran (None: they
    share no seed); `drawn` says whether the report draws them (it can only with the test images)."""
    a, b = engine_pairs(groups)[0]
    pair = paired_runs(groups, a, b)
    if pair is None:
        return None
    x, y = pair
    shown = _disagreement_indices(x, y)
    return {
        "seed": x.seed,
        "engines": [a, b],
        "count": int((x.correct != y.correct).sum()),
        f"only_{a}_right": int((x.correct & ~y.correct).sum()),
        f"only_{b}_right": int((~x.correct & y.correct).sum()),
        "shown": shown,
        "drawn": images_given and bool(shown),
    }


def _pair(groups: dict[str, list[Run]], engines: dict[str, Any], a: str, b: str, config: Any) -> dict[str, Any]:
    """One pair of engines: the equivalence verdict over seeds (TOST, a - b) and the per-seed
    image-by-image comparison (McNemar)."""
    per_seed = _per_seed(groups, a, b)
    return {
        "engines": [a, b],
        "equivalence": tost_equivalence(
            engines[a]["test_accuracy"]["values"],
            engines[b]["test_accuracy"]["values"],
            config.compare.equivalence_margin,
            config.compare.alpha,
            labels=(LABELS[a], LABELS[b]),
        ),
        "per_seed": per_seed,
        "mean_prediction_agreement": _stat([r["prediction_agreement"] for r in per_seed])["mean"],
    }


def summarize(groups: dict[str, list[Run]]) -> dict[str, Any]:
    """The whole report as plain numbers: what summary.json holds and the text is rendered from.
    Every pair of engines has its verdict (`pairs`); the lead pair's (the first: keras against
    lightning when both ran) is also at the top level, where a two-engine report has it."""
    first = next(iter(groups.values()))
    config = first[0].config
    aggregate = "sum" if len({len(runs) for runs in groups.values()}) == 1 else "mean"
    per_engine = {e: _engine_summary(runs, aggregate) for e, runs in groups.items()}
    pairs = [_pair(groups, per_engine, a, b, config) for a, b in engine_pairs(groups)]
    lead = pairs[0]
    return {
        "config": config.name,
        "generated": dt.datetime.now().isoformat(timespec="seconds"),
        "epochs": config.train.epochs,
        "precision": config.train.precision,  # what the runs trained in (compare.report_runs.load_run)
        "test_images": int(len(first[0].labels)),
        "margin": config.compare.equivalence_margin,
        "alpha": config.compare.alpha,
        "engines": list(groups),
        "equivalence": lead["equivalence"],
        "confusion_aggregate": aggregate,
        "per_engine": per_engine,
        "per_seed": lead["per_seed"],
        "mean_prediction_agreement": lead["mean_prediction_agreement"],
        "pairs": pairs,
    }
