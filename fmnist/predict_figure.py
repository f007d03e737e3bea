"""The README's `fmnist predict` figure: synthetic product photos, the 28x28 image the network saw
for each, and its answer. Run as `python -m fmnist.predict_figure MODEL OUT.png` (MODEL: a run
directory or an .onnx file)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from fmnist import CLASS_NAMES
from fmnist.datasets import load_fashion_mnist
from fmnist.plots import plt, save_figure
from fmnist.predicting import PredictResult, predict_files
from fmnist.synthetic_photos import write_photos

SHOWN = 6
FIRST_TEST_IMAGE = 0  # the first test image of each of SHOWN different classes


def pick(labels: np.ndarray, n: int = SHOWN) -> list[int]:
    """Indices of the first test images of n different classes, in test-set order."""
    seen: dict[int, int] = {}
    for i, label in enumerate(labels[FIRST_TEST_IMAGE:], start=FIRST_TEST_IMAGE):
        seen.setdefault(int(label), i)
        if len(seen) == n:
            break
    return sorted(seen.values())


def plot(photos: list[Path], result: PredictResult, truth: list[str], title: str) -> Figure:
    """Row 1: the synthetic photos; row 2: what the network saw, with its answer and the truth."""
    by_file = {p.file: p for p in result.predictions}
    fig, axes = plt.subplots(2, len(photos), figsize=(2.2 * len(photos), 5.0), squeeze=False)
    for col, (path, true) in enumerate(zip(photos, truth)):
        with Image.open(path) as photo:
            axes[0, col].imshow(photo.convert("RGB"))
            axes[0, col].set_title(f"synthetic photo\n{photo.width}x{photo.height}", fontsize=8)
        p = by_file[path]
        axes[1, col].imshow(p.pixels, cmap="gray", vmin=0, vmax=255)
        ok = p.class_name == true
        axes[1, col].set_title(
            f"{p.class_name} {p.probability:.0%}\n(true: {true})", fontsize=8, color="black" if ok else "red"
        )
        for ax in axes[:, col]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[1, 0].set_ylabel("28x28 input", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def write_figure(model: Path, out: Path, data_dir: str | None = None) -> PredictResult:
    data = load_fashion_mnist(data_dir)
    chosen = pick(data.test_labels)
    with tempfile.TemporaryDirectory() as tmp:
        photos = write_photos(data.test_images[chosen], Path(tmp), seed=0)
        result = predict_files(model, photos)
        fig = plot(
            photos,
            result,
            [CLASS_NAMES[data.test_labels[i]] for i in chosen],
            f"fmnist predict on synthetic photos made from test images {', '.join(map(str, chosen))}",
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        save_figure(fig, out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    result = write_figure(args.model, args.out, args.data_dir)
    print(f"{args.out}: {', '.join(p.class_name for p in result.predictions)}")


if __name__ == "__main__":
    main()
