"""The compare report's figures, drawn from the summary's numbers: learning curves, confusion
matrices (with the core's heatmap, fmnist.plots), per-class scores and the disagreement grid.

matplotlib is imported inside the functions, so loading and checking runs stays light.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from compare.report_numbers import CURVE_METRICS
from compare.report_runs import COLOURS, LABELS
from fmnist import CLASS_NAMES

FIGURES = {
    "curves": "curves.png",
    "confusion": "confusion_matrices.png",
    "per_class": "per_class.png",
    "disagreements": "disagreements.png",
}


def _plt():
    from fmnist import plots  # noqa: F401  (selects the Agg backend before pyplot loads)
    import matplotlib.pyplot as plt

    return plt


def plot_curves(summary: dict[str, Any]):
    """2x2 learning curves, every engine on the same axes: mean over seeds, min-max band."""
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5), sharex=True)
    for ax, metric in zip(axes.flat, CURVE_METRICS):
        for b in summary["engines"]:
            c = summary["per_engine"][b]["curves"]
            scale = 100 if "accuracy" in metric else 1
            mean, low, high = (np.array(c[metric][k]) * scale for k in ("mean", "min", "max"))
            n = len(summary["per_engine"][b]["seeds"])
            ax.plot(c["epoch"], mean, "o-", ms=3, color=COLOURS[b], label=f"{LABELS[b]} ({n} seeds)")
            ax.fill_between(c["epoch"], low, high, color=COLOURS[b], alpha=0.2, lw=0)
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


def plot_confusions(summary: dict[str, Any]):
    """Every engine's confusion matrix on one colour scale, and the lead pair's difference (b - a)
    on a diverging one; three panels a row."""
    plt = _plt()
    from fmnist.plots import heatmap

    engines = summary["engines"]
    a, b = summary["pairs"][0]["engines"]
    cms = {e: np.array(summary["per_engine"][e]["confusion_matrix"], dtype=np.float64) for e in engines}
    vmax = max(cm.max() for cm in cms.values())
    diff = cms[b] - cms[a]
    span = max(1.0, float(np.abs(diff).max()))
    how = "summed" if summary["confusion_aggregate"] == "sum" else "mean"
    panels = len(engines) + 1
    cols = min(3, panels)
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(8 * cols, 7.5 * rows), squeeze=False)
    for ax in axes.flat[panels:]:
        ax.axis("off")
    for ax, e in zip(axes.flat, engines):
        heatmap(
            ax,
            cms[e],
            f"{LABELS[e]} ({how} over {len(summary['per_engine'][e]['seeds'])} seeds)",
            annot_size=8,
            cmap="Blues",
            vmin=0,
            vmax=vmax,
        )
    heatmap(
        axes.flat[len(engines)],
        diff,
        f"{LABELS[b]} − {LABELS[a]} (red: {LABELS[b]} more often; blank: same)",
        hide_zeros=True,
        annot_size=8,
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
    engines = summary["engines"]
    x, width = np.arange(len(CLASS_NAMES)), 0.76 / len(engines)
    for ax, metric in zip(axes, ("precision", "recall", "f1")):
        lowest = 1.0
        for i, b in enumerate(engines):
            pc = summary["per_engine"][b]["per_class"]
            mean = np.array([pc[n][metric]["mean"] for n in CLASS_NAMES]) * 100
            low, high = (np.array([pc[n][metric][k] for n in CLASS_NAMES]) * 100 for k in ("min", "max"))
            spread = np.clip([mean - low, high - mean], 0, None)  # float rounding can dip below 0
            ax.bar(
                x + (i - (len(engines) - 1) / 2) * width,
                mean,
                width,
                yerr=spread,
                capsize=2,
                color=COLOURS[b],
                label=LABELS[b],
            )
            lowest = min(lowest, mean.min() / 100)
        ax.set(ylabel=f"{'F1' if metric == 'f1' else metric} (%)", ylim=(max(0.0, lowest - 0.1) * 100, 100))
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(x, CLASS_NAMES, rotation=30)
    axes[0].legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncols=len(engines), frameon=False)
    fig.suptitle(f"{summary['config']}: per-class scores, mean over seeds (error bars: lowest to highest seed)")
    fig.tight_layout()
    return fig


def plot_disagreements(
    images: np.ndarray, labels: np.ndarray, preds: dict[str, np.ndarray], indices: list[int], seed: int
):
    """The test images one of two engines gets right and the other wrong: true label, both
    predictions (`preds`: engine -> predicted classes, the two in order)."""
    plt = _plt()
    cols = min(6, len(indices))
    rows = -(-len(indices) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.2, rows * 2.9 + 0.5), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, indices):
        ax.imshow(images[i], cmap="gray_r")
        marks = {b: "✓" if preds[b][i] == labels[i] else "✗" for b in preds}
        ax.set_title(
            f"#{i} true: {CLASS_NAMES[labels[i]]}\n"
            + "\n".join(f"{LABELS[b]}: {CLASS_NAMES[preds[b][i]]} {marks[b]}" for b in preds),
            fontsize=8,
        )
    fig.suptitle(f"Seed {seed}: images one of {' and '.join(LABELS[b] for b in preds)} gets right, the other wrong")
    return fig
