"""Figures for a run: learning curves, confusion matrix, a grid of test predictions; and the
class-by-class heatmap, the one both a run and the compare report draw their matrices with."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: works on a machine with no screen

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from fmnist import CLASS_NAMES  # noqa: E402
from fmnist.rundir import atomic_write_bytes  # noqa: E402


def plot_curves(rows: Sequence[dict[str, float]], title: str) -> Figure:
    """Loss and accuracy per epoch, train solid and validation dashed."""
    epochs = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, [r[f"train_{metric}"] for r in rows], "o-", label="train")
        ax.plot(epochs, [r[f"val_{metric}"] for r in rows], "s--", label="validation")
        ax.set(xlabel="epoch", ylabel=metric, title=metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def heatmap(
    ax: plt.Axes,
    values: np.ndarray,
    title: str,
    hide_zeros: bool = False,
    annot_size: float | None = None,
    **style: Any,
) -> None:
    """The project's one class-by-class heatmap (rows true, columns predicted), each cell annotated
    with its count: whole counts as integers, mean counts with one decimal; zeros can be left blank
    so a difference matrix shows only where two models differ. `style`: seaborn's colour options."""
    values = np.asarray(values)
    text = np.vectorize(lambda v: f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}")(values)
    if hide_zeros:
        text[values == 0] = ""
    sns.heatmap(
        values,
        annot=text,
        fmt="",
        xticklabels=CLASS_NAMES,
        yticklabels=CLASS_NAMES,
        square=True,
        ax=ax,
        annot_kws=None if annot_size is None else {"size": annot_size},
        **style,
    )
    ax.set(xlabel="predicted", ylabel="true", title=title)
    ax.tick_params(axis="x", rotation=45)


def plot_confusion(cm: np.ndarray, title: str, ax: plt.Axes | None = None, vmax: float | None = None) -> Figure:
    """A run's confusion matrix: counts on a blue scale from 0, with class names."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(8.5, 7))
    else:
        fig = ax.figure
    heatmap(ax, cm, title, cmap="Blues", vmin=0, vmax=vmax, cbar=True)
    fig.tight_layout()
    return fig


def plot_prediction_grid(
    images: np.ndarray, labels: np.ndarray, predictions: np.ndarray, title: str, n: int = 25
) -> Figure:
    """The first `n` test images with predicted and true class; mistakes in red."""
    n = min(n, len(images))
    cols = 5
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.1, rows * 2.3), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i], cmap="gray_r")
        ok = predictions[i] == labels[i]
        ax.set_title(
            f"{CLASS_NAMES[predictions[i]]}\n(true: {CLASS_NAMES[labels[i]]})",
            fontsize=8,
            color="black" if ok else "red",
        )
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def figure_png(fig: Figure, dpi: int = 100) -> tuple[bytes, int, int]:
    """PNG bytes and pixel size (for TensorBoard), closing the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    width, height = (int(round(v)) for v in fig.get_size_inches() * dpi)
    plt.close(fig)
    return buf.getvalue(), width, height


def save_figure(fig: Figure, path: Path, dpi: int = 100) -> bytes:
    """Writes the figure atomically and returns its PNG bytes."""
    png, _, _ = figure_png(fig, dpi)
    atomic_write_bytes(path, png)
    return png
