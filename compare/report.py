"""One side-by-side report of Keras and Lightning runs: the verdict first, then its evidence.

`build_report` reads finished run directories (both backends, one or more seeds each), refuses
sets that cannot be compared (one backend only, mixed configs, different test sets), and writes
`summary.json` (every number), `report.md`, a self-contained `report.html` and four figures.

Everything derived from predictions (accuracy, loss, confusion matrices, per-class scores) is
recomputed here from each run's saved logits with the same numpy code for both backends, so the
comparison cannot be skewed by how either framework computes its own metrics. The markdown and
the HTML are rendered from one list of blocks, so they always say the same thing.

No deep-learning framework is imported: a report needs only numpy, scipy and matplotlib.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compare.stats import format_p, mcnemar, prediction_agreement, tost_equivalence
from fmnist import BACKEND_NAMES, CLASS_NAMES, IMAGE_SHAPE
from fmnist.config import Config, config_to_dict, load_config
from fmnist.errors import FmnistError, RunDirError
from fmnist.metrics import confusion_matrix, cross_entropy, per_class_scores
from fmnist.rundir import (
    CONFIG_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    RESULT_FILES,
    TEST_METRICS_FILE,
    atomic_write_text,
    is_artifact,
    read_json,
    read_metrics,
    read_predictions,
    write_json,
)

LABELS = {"keras": "Keras", "lightning": "Lightning"}
COLORS = {"keras": "#E66100", "lightning": "#5D3A9B"}  # orange / purple: apart for colour-blind readers
CURVE_METRICS = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")
FIGURES = {
    "curves": "curves.png",
    "confusion": "confusion_matrices.png",
    "per_class": "per_class.png",
    "disagreements": "disagreements.png",
}
MAX_DISAGREEMENTS = 24
RUNS_DIR = "runs"  # where `fmnist compare` trains, inside its --out folder
#: What a compare report folder holds: all `--out` may already hold (a report is replaced by the new one).
REPORT_ARTIFACTS = ("report.md", "report.html", "summary.json", *FIGURES.values(), RUNS_DIR)


# ---------------------------------------------------------------------------------------------
# Loading and checking runs


@dataclass(frozen=True)
class Run:
    """One finished run directory, with everything the report reads from it."""

    path: Path
    backend: str
    config: Config
    test: dict[str, Any]
    history: list[dict[str, float]]
    logits: np.ndarray
    labels: np.ndarray

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(axis=1)

    @property
    def correct(self) -> np.ndarray:
        return self.predictions == self.labels


def load_run(path: Path) -> Run:
    """Read a run directory; a missing or foreign file is a one-line FmnistError, not a traceback."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"{path} is not a run directory")
    for name in RESULT_FILES:
        if not (path / name).is_file():
            raise RunDirError(f"{path / name} not found: is {path} a finished run directory?")
    test = read_json(path / TEST_METRICS_FILE)
    if test.get("backend") not in BACKEND_NAMES:
        raise RunDirError(f"{path / TEST_METRICS_FILE}: backend {test.get('backend')!r} is not one of {BACKEND_NAMES}")
    logits, labels = read_predictions(path / PREDICTIONS_FILE)
    return Run(
        path, test["backend"], load_config(path / CONFIG_FILE), test, read_metrics(path / METRICS_FILE), logits, labels
    )


def _flat(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Dotted keys and leaf values of a nested config, so a mismatch can be named exactly."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _flat(inner, f"{prefix}.{key}" if prefix else key)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _flat(inner, f"{prefix}[{i}]")
    else:
        yield prefix, value


def _config_difference(a: Config, b: Config) -> str | None:
    """The first config key (seed aside) where two runs differ, as 'key (x vs y)'."""
    fa, fb = dict(_flat(config_to_dict(a))), dict(_flat(config_to_dict(b)))
    for key in sorted(set(fa) | set(fb)):
        if key != "seed" and fa.get(key) != fb.get(key):
            return f"{key} ({fa.get(key)!r} vs {fb.get(key)!r})"
    return None


def check_comparable(runs: Sequence[Run]) -> None:
    """Refuse run sets whose comparison would mean nothing, naming the runs and the reason."""
    first = runs[0]
    for run in runs[1:]:
        diff = _config_difference(first.config, run.config)
        if diff:
            raise FmnistError(
                f"runs mix configs: {first.path} and {run.path} differ at {diff}; compare runs of one config only"
            )
        if len(run.labels) != len(first.labels):
            raise FmnistError(
                f"runs were tested on different test-set sizes: {first.path} has"
                f" {len(first.labels)} images, {run.path} {len(run.labels)}"
            )
        if not np.array_equal(run.labels, first.labels):
            raise FmnistError(f"runs were tested on different images: {first.path} and {run.path} have other labels")
    present = {r.backend for r in runs}
    if present != set(BACKEND_NAMES):
        raise FmnistError(f"a comparison needs runs of both backends (keras and lightning); got only {sorted(present)}")
    seen: dict[tuple[str, int], Path] = {}
    for run in runs:
        key = (run.backend, run.seed)
        if key in seen:
            raise FmnistError(f"two {run.backend} runs with seed {run.seed}: {seen[key]} and {run.path}; keep one")
        seen[key] = run.path


def group_runs(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs per backend, sorted by seed."""
    return {b: sorted((r for r in runs if r.backend == b), key=lambda r: r.seed) for b in BACKEND_NAMES}


# ---------------------------------------------------------------------------------------------
# Numbers


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


def _backend_summary(runs: list[Run], aggregate: str) -> dict[str, Any]:
    """Every number the report shows for one backend."""
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


def _per_seed(groups: dict[str, list[Run]]) -> list[dict[str, Any]]:
    """Image-by-image comparison of the two backends on each seed both ran."""
    keras, lightning = ({r.seed: r for r in groups[b]} for b in BACKEND_NAMES)
    rows = []
    for seed in sorted(set(keras) & set(lightning)):
        k, l = keras[seed], lightning[seed]
        m = mcnemar(k.correct, l.correct)
        rows.append(
            {
                "seed": seed,
                "keras_accuracy": float(k.correct.mean()),
                "lightning_accuracy": float(l.correct.mean()),
                "prediction_agreement": prediction_agreement(k.predictions, l.predictions),
                "both_right": m["both_right"],
                "both_wrong": m["both_wrong"],
                "only_keras_right": m["only_a"],
                "only_lightning_right": m["only_b"],
                "mcnemar_p": m["p_value"],
            }
        )
    return rows


def _disagreement_indices(k: Run, l: Run) -> list[int]:
    """Up to 24 images one backend gets right and the other wrong, half from each side when possible."""
    only_k = np.flatnonzero(k.correct & ~l.correct).tolist()
    only_l = np.flatnonzero(~k.correct & l.correct).tolist()
    half = MAX_DISAGREEMENTS // 2
    take_k = min(len(only_k), max(half, MAX_DISAGREEMENTS - len(only_l)))
    take_l = min(len(only_l), MAX_DISAGREEMENTS - take_k)
    return sorted(only_k[:take_k] + only_l[:take_l])


def summarize(groups: dict[str, list[Run]]) -> dict[str, Any]:
    """The whole report as plain numbers: what summary.json holds and the text is rendered from."""
    config = groups["keras"][0].config
    aggregate = "sum" if len(groups["keras"]) == len(groups["lightning"]) else "mean"
    backends = {b: _backend_summary(groups[b], aggregate) for b in BACKEND_NAMES}
    per_seed = _per_seed(groups)
    return {
        "config": config.name,
        "generated": dt.datetime.now().isoformat(timespec="seconds"),
        "epochs": config.train.epochs,
        "test_images": int(len(groups["keras"][0].labels)),
        "margin": config.compare.equivalence_margin,
        "alpha": config.compare.alpha,
        "equivalence": tost_equivalence(
            backends["keras"]["test_accuracy"]["values"],
            backends["lightning"]["test_accuracy"]["values"],
            config.compare.equivalence_margin,
            config.compare.alpha,
        ),
        "confusion_aggregate": aggregate,
        "backends": backends,
        "per_seed": per_seed,
        "mean_prediction_agreement": _stat([r["prediction_agreement"] for r in per_seed])["mean"],
    }


# ---------------------------------------------------------------------------------------------
# Figures (matplotlib is imported here, so loading and checking runs stays light)


def _plt():
    from fmnist import plots  # noqa: F401  (selects the Agg backend before pyplot loads)
    import matplotlib.pyplot as plt

    return plt


def plot_curves(summary: dict[str, Any]):
    """2x2 learning curves, both backends on the same axes: mean over seeds, min-max band."""
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5), sharex=True)
    for ax, metric in zip(axes.flat, CURVE_METRICS):
        for b in BACKEND_NAMES:
            c = summary["backends"][b]["curves"]
            scale = 100 if "accuracy" in metric else 1
            mean, low, high = (np.array(c[metric][k]) * scale for k in ("mean", "min", "max"))
            n = len(summary["backends"][b]["seeds"])
            ax.plot(c["epoch"], mean, "o-", ms=3, color=COLORS[b], label=f"{LABELS[b]} ({n} seeds)")
            ax.fill_between(c["epoch"], low, high, color=COLORS[b], alpha=0.2, lw=0)
        ax.set(
            title=metric.replace("_", " ").replace("val", "validation"),
            xlabel="epoch",
            ylabel="accuracy (%)" if "accuracy" in metric else "cross-entropy",
        )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{summary['config']}: learning curves, mean over seeds (band: min–max)")
    fig.tight_layout()
    return fig


def _heatmap(ax, cm: np.ndarray, title: str, hide_zeros: bool = False, **kwargs: Any) -> None:
    """Annotated heatmap of counts (whole or mean); zeros can be left blank so differences stand out."""
    import seaborn as sns

    text = np.vectorize(lambda v: f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}")(cm)
    if hide_zeros:
        text[cm == 0] = ""
    sns.heatmap(
        cm,
        annot=text,
        fmt="",
        xticklabels=CLASS_NAMES,
        yticklabels=CLASS_NAMES,
        square=True,
        ax=ax,
        annot_kws={"size": 8},
        **kwargs,
    )
    ax.set(xlabel="predicted", ylabel="true", title=title)
    ax.tick_params(axis="x", rotation=45)


def plot_confusions(summary: dict[str, Any]):
    """Both confusion matrices on one colour scale, and Lightning − Keras on a diverging one."""
    plt = _plt()
    cms = {b: np.array(summary["backends"][b]["confusion_matrix"], dtype=np.float64) for b in BACKEND_NAMES}
    vmax = max(cm.max() for cm in cms.values())
    diff = cms["lightning"] - cms["keras"]
    span = max(1.0, float(np.abs(diff).max()))
    how = "summed" if summary["confusion_aggregate"] == "sum" else "mean"
    fig, axes = plt.subplots(1, 3, figsize=(24, 7.5))
    for ax, b in zip(axes, BACKEND_NAMES):
        _heatmap(
            ax,
            cms[b],
            f"{LABELS[b]} ({how} over {len(summary['backends'][b]['seeds'])} seeds)",
            cmap="Blues",
            vmin=0,
            vmax=vmax,
        )
    _heatmap(
        axes[2],
        diff,
        "Lightning − Keras (red: Lightning more often; blank: same)",
        hide_zeros=True,
        cmap="RdBu_r",
        center=0,
        vmin=-span,
        vmax=span,
    )
    fig.tight_layout()
    return fig


def plot_per_class(summary: dict[str, Any]):
    """Grouped bars per class for precision, recall and F1 (mean over seeds, min-max as error bars)."""
    plt = _plt()
    fig, axes = plt.subplots(3, 1, figsize=(12, 10), sharex=True)
    x, width = np.arange(len(CLASS_NAMES)), 0.38
    for ax, metric in zip(axes, ("precision", "recall", "f1")):
        lowest = 1.0
        for i, b in enumerate(BACKEND_NAMES):
            pc = summary["backends"][b]["per_class"]
            mean = np.array([pc[n][metric]["mean"] for n in CLASS_NAMES]) * 100
            low, high = (np.array([pc[n][metric][k] for n in CLASS_NAMES]) * 100 for k in ("min", "max"))
            spread = np.clip([mean - low, high - mean], 0, None)  # float rounding can dip below 0
            ax.bar(x + (i - 0.5) * width, mean, width, yerr=spread, capsize=2, color=COLORS[b], label=LABELS[b])
            lowest = min(lowest, mean.min() / 100)
        ax.set(ylabel=f"{'F1' if metric == 'f1' else metric} (%)", ylim=(max(0.0, lowest - 0.1) * 100, 100))
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(x, CLASS_NAMES, rotation=30)
    axes[0].legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncols=2, frameon=False)
    fig.suptitle(f"{summary['config']}: per-class scores, mean over seeds (error bars: lowest to highest seed)")
    fig.tight_layout()
    return fig


def plot_disagreements(
    images: np.ndarray, labels: np.ndarray, preds: dict[str, np.ndarray], indices: list[int], seed: int
):
    """The test images one backend gets right and the other wrong: true label, both predictions."""
    plt = _plt()
    cols = min(6, len(indices))
    rows = -(-len(indices) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.2, rows * 2.9 + 0.5), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, indices):
        ax.imshow(images[i], cmap="gray_r")
        marks = {b: "✓" if preds[b][i] == labels[i] else "✗" for b in BACKEND_NAMES}
        ax.set_title(
            f"#{i} true: {CLASS_NAMES[labels[i]]}\n"
            + "\n".join(f"{LABELS[b]}: {CLASS_NAMES[preds[b][i]]} {marks[b]}" for b in BACKEND_NAMES),
            fontsize=8,
        )
    fig.suptitle(f"Seed {seed}: images one backend gets right and the other wrong")
    return fig


# ---------------------------------------------------------------------------------------------
# Text: one list of blocks, rendered as markdown and as HTML


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.2f}"


def _mean_pm(s: dict[str, Any], scale: float = 1.0, fmt: str = ".2f") -> str:
    """'91.62 ± 0.12', or just the mean with one seed; 'n/a' when the runs did not record it."""
    if s["mean"] is None:
        return "n/a"
    text = f"{s['mean'] * scale:,{fmt}}"
    return text + (f" ± {s['std'] * scale:,{fmt}}" if s["std"] is not None else "")


def _seeds_text(summary: dict[str, Any]) -> str:
    seeds = {b: summary["backends"][b]["seeds"] for b in BACKEND_NAMES}
    if seeds["keras"] == seeds["lightning"]:
        return f"seeds {', '.join(map(str, seeds['keras']))}"
    return "; ".join(f"{LABELS[b]} seeds {', '.join(map(str, s))}" for b, s in seeds.items())


def _verdict_blocks(summary: dict[str, Any]) -> list[tuple]:
    eq = summary["equivalence"]
    state = {True: "equivalent", False: "different", None: "none"}[eq["equivalent"]]
    blocks: list[tuple] = [
        ("h2", "Verdict"),
        ("verdict", eq["verdict"], state),
        (
            "p",
            f"Two one-sided Welch t-tests (TOST) on the per-seed test accuracies, margin"
            f" ±{summary['margin'] * 100:.2f} points, alpha {summary['alpha']:g};"
            " differences are Keras − Lightning.",
        ),
    ]
    rows = summary["per_seed"]
    if rows:
        significant = sum(r["mcnemar_p"] < summary["alpha"] for r in rows)
        blocks.append(
            (
                "p",
                f"On the same seed the backends give the same class to"
                f" {_pct(summary['mean_prediction_agreement'])}% of test images on average; McNemar finds"
                f" a difference in which images they get wrong on {significant} of {len(rows)} seeds"
                f" (p < {summary['alpha']:g}).",
            )
        )
    return blocks


def _accuracy_blocks(summary: dict[str, Any]) -> list[tuple]:
    headers = [
        "Backend",
        "Seeds",
        "Test accuracy (%)",
        "Test loss",
        "Macro F1 (%)",
        "Parameters",
        "Train time (s)",
        "Train images/s",
    ]
    rows = []
    for b in BACKEND_NAMES:
        s = summary["backends"][b]
        params = s["num_params"]
        rows.append(
            [
                LABELS[b],
                str(len(s["seeds"])),
                _mean_pm(s["test_accuracy"], 100),
                _mean_pm(s["test_loss"], 1, ".4f"),
                _mean_pm(s["macro_f1"], 100),
                f"{params:,}" if isinstance(params, int) else str(params),
                _mean_pm(s["train_seconds"], 1, ".1f"),
                _mean_pm(s["train_images_per_second"], 1, ".0f"),
            ]
        )
    same = summary["backends"]["keras"]["num_params"] == summary["backends"]["lightning"]["num_params"]
    note = (
        "Both backends build a model with the same number of parameters."
        if same
        else "The parameter counts differ: the two backends did not build the same architecture."
    )
    return [
        ("h2", "Accuracy"),
        ("p", "Mean ± standard deviation over seeds, on the same test images."),
        ("table", headers, rows),
        ("p", note),
    ]


def _per_seed_blocks(summary: dict[str, Any]) -> list[tuple]:
    blocks: list[tuple] = [("h2", "Per seed")]
    if not summary["per_seed"]:
        return blocks + [("p", "No seed was run by both backends, so no image-by-image comparison is possible.")]
    headers = [
        "Seed",
        "Keras acc (%)",
        "Lightning acc (%)",
        "Keras − Lightning (points)",
        "Same prediction (%)",
        "Only Keras right",
        "Only Lightning right",
        "McNemar p",
    ]
    rows = [
        [
            str(r["seed"]),
            _pct(r["keras_accuracy"]),
            _pct(r["lightning_accuracy"]),
            f"{(r['keras_accuracy'] - r['lightning_accuracy']) * 100:+.2f}",
            _pct(r["prediction_agreement"]),
            str(r["only_keras_right"]),
            str(r["only_lightning_right"]),
            format_p(r["mcnemar_p"]).lstrip("= "),
        ]
        for r in summary["per_seed"]
    ]
    paired = {r["seed"] for r in summary["per_seed"]}
    unpaired = sorted(s for b in BACKEND_NAMES for s in summary["backends"][b]["seeds"] if s not in paired)
    blocks.append(("table", headers, rows))
    if unpaired:
        blocks.append(
            (
                "p",
                f"Seeds run by one backend only (in the verdict, not in this table): "
                f"{', '.join(map(str, sorted(set(unpaired))))}.",
            )
        )
    return blocks


def _figure_blocks(summary: dict[str, Any]) -> list[tuple]:
    how = "summed" if summary["confusion_aggregate"] == "sum" else "averaged"
    top = {b: summary["backends"][b]["top_confusions"] for b in BACKEND_NAMES}
    rows = [
        [str(i + 1)] + [f"{t['true']} → {t['predicted']} ({t['count']:g})" for t in (top[b][i] for b in BACKEND_NAMES)]
        for i in range(len(top["keras"]))
    ]
    return [
        ("h2", "Learning curves"),
        ("img", FIGURES["curves"], "Learning curves of both backends"),
        ("p", "Lines: mean over seeds; bands: lowest to highest seed. Validation is the fixed held-out split."),
        ("h2", "Confusion matrices"),
        ("img", FIGURES["confusion"], "Confusion matrices and their difference"),
        (
            "p",
            f"Counts {how} over seeds, rows true class, columns predicted; both on one colour scale."
            " Right: Lightning − Keras.",
        ),
        ("p", "Most confused class pairs (true → predicted, count):"),
        ("table", ["Rank", "Keras", "Lightning"], rows),
    ]


def _per_class_blocks(summary: dict[str, Any]) -> list[tuple]:
    pcs = {b: summary["backends"][b]["per_class"] for b in BACKEND_NAMES}
    headers = (
        ["Class"]
        + [f"{LABELS[b]} {m}" for b in BACKEND_NAMES for m in ("P", "R", "F1")]
        + ["F1 Keras − Lightning (points)"]
    )
    rows = [
        [name]
        + [_pct(pcs[b][name][m]["mean"]) for b in BACKEND_NAMES for m in ("precision", "recall", "f1")]
        + [f"{(pcs['keras'][name]['f1']['mean'] - pcs['lightning'][name]['f1']['mean']) * 100:+.2f}"]
        for name in CLASS_NAMES
    ]
    return [
        ("h2", "Per class"),
        ("img", FIGURES["per_class"], "Per-class precision, recall and F1"),
        ("p", "Precision (P), recall (R) and F1 in %, mean over seeds."),
        ("table", headers, rows),
    ]


def _disagreement_blocks(summary: dict[str, Any]) -> list[tuple]:
    d = summary.get("disagreements")
    blocks: list[tuple] = [("h2", "Where they disagree")]
    if d is None:
        return blocks + [("p", "No seed was run by both backends, so there are no paired disagreements to show.")]
    text = (
        f"Seed {d['seed']}: {d['count']} test images are right in one backend and wrong in the other"
        f" (only Keras right: {d['only_keras_right']}, only Lightning right: {d['only_lightning_right']})."
    )
    if d["count"] == 0:
        return blocks + [("p", text + " There is nothing to show.")]
    if not d["drawn"]:
        return blocks + [("p", text + " The grid is not drawn: the test images were not given to the report.")]
    return blocks + [
        ("p", text + f" Shown: {len(d['shown'])}, in test-set order (✓ right, ✗ wrong)."),
        ("img", FIGURES["disagreements"], "Test images the backends disagree on"),
    ]


def report_blocks(summary: dict[str, Any]) -> list[tuple]:
    """The report top to bottom: title, verdict, evidence, how to read it."""
    title = f"Keras vs Lightning on Fashion-MNIST: {summary['config']}"
    meta = (
        f"Config {summary['config']} · {_seeds_text(summary)} · {summary['epochs']} epochs ·"
        f" {summary['test_images']:,} test images · {summary['generated'][:10]}"
    )
    how_to_read = [
        "TOST (two one-sided tests): the backends count as equivalent only if the confidence interval of the"
        " difference of their mean accuracies lies entirely inside ±margin; a small p means equivalence is shown.",
        "McNemar: on one seed, tests whether the images only one backend gets right split evenly between the two;"
        " a large p means neither backend is systematically better on those images.",
        "Same prediction: the share of test images given the same class by both, right or wrong.",
    ]
    return (
        [("h1", title), ("p", meta)]
        + _verdict_blocks(summary)
        + _accuracy_blocks(summary)
        + _per_seed_blocks(summary)
        + _figure_blocks(summary)
        + _per_class_blocks(summary)
        + _disagreement_blocks(summary)
        + [("h2", "How to read this"), ("ul", how_to_read)]
    )


def render_markdown(blocks: list[tuple]) -> str:
    """GitHub-flavoured markdown; images are referenced by file name, next to report.md."""
    out = []
    for kind, *args in blocks:
        if kind in ("h1", "h2"):
            out.append(f"{'#' * int(kind[1])} {args[0]}")
        elif kind == "p":
            out.append(args[0])
        elif kind == "verdict":
            out.append(f"**{args[0]}**")
        elif kind == "img":
            out.append(f"![{args[1]}]({args[0]})")
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in args[0]))
        elif kind == "table":
            cells = lambda row: "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"  # noqa: E731
            out.append("\n".join([cells(args[0]), "|" + "---|" * len(args[0])] + [cells(r) for r in args[1]]))
    return "\n\n".join(out) + "\n"


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; max-width: 1200px;
       margin: 2em auto; padding: 0 1em; line-height: 1.5; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; } th { background: #f3f3f3; }
td:not(:first-child) { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; display: block; margin: 0.8em 0; }
.verdict { font-size: 1.1em; font-weight: 600; padding: 0.8em 1em; border-left: 6px solid #888; background: #f6f6f6; }
.verdict.equivalent { border-color: #2e7d32; background: #edf7ed; }
.verdict.different { border-color: #c62828; background: #fdecea; }
"""


def render_html(blocks: list[tuple], images: dict[str, bytes]) -> str:
    """One self-contained page: CSS inline, every figure a base64 data URI."""
    e = html.escape
    body = []
    for kind, *args in blocks:
        if kind in ("h1", "h2", "p"):
            body.append(f"<{kind}>{e(args[0])}</{kind}>")
        elif kind == "verdict":
            body.append(f'<p class="verdict {args[1]}">{e(args[0])}</p>')
        elif kind == "img":
            data = base64.b64encode(images[args[0]]).decode("ascii")
            body.append(f'<img src="data:image/png;base64,{data}" alt="{e(args[1])}">')
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in args[0]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{e(h)}</th>" for h in args[0])
            rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in args[1])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    title = e(blocks[0][1]) if blocks and blocks[0][0] == "h1" else "Report"
    return (
        f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n'
        f"<style>{CSS}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


# ---------------------------------------------------------------------------------------------
# Entry point


def _check_images(test_images: np.ndarray | None, n: int) -> np.ndarray | None:
    """The first n test images (predictions cover the first n in official order), or an error."""
    if test_images is None:
        return None
    images = np.asarray(test_images)
    if images.ndim != 3 or tuple(images.shape[1:]) != IMAGE_SHAPE or len(images) < n:
        raise FmnistError(
            f"test images must have shape [N>={n}, 28, 28] to match the runs' {n} predictions, got {list(images.shape)}"
        )
    return images[:n]


def _plain(value: Any) -> Any:
    """numpy scalars and tuples to JSON types, so summary.json and the returned dict are the same."""
    return json.loads(json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def _disagreements(groups: dict[str, list[Run]], images: np.ndarray | None) -> tuple[dict[str, Any] | None, Any]:
    """Summary entry and figure (or None) for the first seed both backends ran."""
    common = sorted({r.seed for r in groups["keras"]} & {r.seed for r in groups["lightning"]})
    if not common:
        return None, None
    k, l = (next(r for r in groups[b] if r.seed == common[0]) for b in BACKEND_NAMES)
    shown = _disagreement_indices(k, l)
    entry = {
        "seed": common[0],
        "count": int((k.correct != l.correct).sum()),
        "only_keras_right": int((k.correct & ~l.correct).sum()),
        "only_lightning_right": int((~k.correct & l.correct).sum()),
        "shown": shown,
        "drawn": images is not None and bool(shown),
    }
    fig = (
        plot_disagreements(images, k.labels, {"keras": k.predictions, "lightning": l.predictions}, shown, common[0])
        if entry["drawn"]
        else None
    )
    return entry, fig


def check_report_dir(out_dir: Path) -> None:
    """Refuse an `--out` folder holding anything but a compare report (`REPORT_ARTIFACTS`): the
    report's files would land among someone's files, and replace any of theirs of the same name."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RunDirError(f"--out {out_dir} exists and is not a folder")
    if not out_dir.is_dir():
        return
    foreign = sorted(c.name for c in out_dir.iterdir() if not is_artifact(c.name, REPORT_ARTIFACTS))
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise RunDirError(
            f"--out {out_dir} holds files that are not a compare report ({shown}); refusing to write"
            " into it: choose another --out"
        )


def build_report(runs: Sequence[Path], out_dir: Path, test_images: np.ndarray | None = None) -> dict[str, Any]:
    """Compare Keras and Lightning run directories; write summary.json, report.md/.html and figures.

    `test_images` ([N, 28, 28] uint8, the test set in official order) enables the disagreement grid.
    Returns the summary (the content of summary.json).
    """
    if not runs:
        raise FmnistError("no run directories given: pass the Keras and Lightning runs to compare")
    loaded = [load_run(Path(p)) for p in runs]
    check_comparable(loaded)
    images = _check_images(test_images, len(loaded[0].labels))
    groups = group_runs(loaded)
    summary = summarize(groups)
    summary["disagreements"], grid = _disagreements(groups, images)
    out_dir = Path(out_dir)
    check_report_dir(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot create report folder {out_dir}: {exc.strerror or exc}") from None
    from fmnist.plots import save_figure

    figures = {
        "curves": plot_curves(summary),
        "confusion": plot_confusions(summary),
        "per_class": plot_per_class(summary),
        "disagreements": grid,
    }
    pngs = {FIGURES[key]: save_figure(fig, out_dir / FIGURES[key]) for key, fig in figures.items() if fig is not None}
    summary["figures"] = sorted(pngs)
    summary = _plain(summary)
    write_json(out_dir / "summary.json", summary)
    blocks = report_blocks(summary)
    atomic_write_text(out_dir / "report.md", render_markdown(blocks))
    atomic_write_text(out_dir / "report.html", render_html(blocks, pngs))
    return summary
