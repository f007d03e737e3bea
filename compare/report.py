"""One side-by-side report of runs of two or more engines (Keras and Lightning, or Keras on
several engines too): the verdict first, then its evidence.

`build_report` reads finished run directories (two engines or more, one or more seeds each), refuses
sets that cannot be compared (one engine only, mixed configs, different test sets), and writes
`summary.json` (every number), `report.md`, a self-contained `report.html` and four figures.
Its parts: the runs (compare.report_runs), the numbers (report_numbers), the figures
(report_figures), what the text says (report_text) and its markdown and HTML (report_render).

No deep-learning framework is imported: a report needs only numpy, scipy and matplotlib.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from compare.report_figures import FIGURES, plot_confusions, plot_curves, plot_disagreements, plot_per_class
from compare.report_numbers import disagreements, summarize
from compare.report_render import render_html, render_markdown
from compare.report_runs import Run, check_comparable, group_runs, load_run, paired_runs
from compare.report_text import report_blocks
from fmnist import IMAGE_SHAPE
from fmnist.errors import FmnistError, RunDirError
from fmnist.rundir import atomic_write_text, is_artifact, write_json

RUNS_DIR = "runs"  # where `fmnist compare` trains, inside its --out folder
LOGS_DIR = "logs"  # each training's console output while it runs (then moved into its run directory)
#: What a compare report folder holds: all `--out` may already hold (a report is replaced by the new one).
REPORT_ARTIFACTS = ("report.md", "report.html", "summary.json", *FIGURES.values(), RUNS_DIR, LOGS_DIR)


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


def _disagreement_grid(groups: dict[str, list[Run]], images: np.ndarray | None, entry: dict[str, Any] | None) -> Any:
    """The grid of the images the lead pair of engines disagrees on (summary entry `disagreements`), or None
    when that entry says it is not drawn."""
    if entry is None or not entry["drawn"] or images is None:
        return None
    a, b = entry["engines"]
    pair = paired_runs(groups, a, b)
    if pair is None:
        return None
    x, y = pair
    return plot_disagreements(images, x.labels, {a: x.predictions, b: y.predictions}, entry["shown"], entry["seed"])


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


def build_report(
    runs: Sequence[Path],
    out_dir: Path,
    test_images: np.ndarray | None = None,
    test_labels: np.ndarray | None = None,
) -> dict[str, Any]:
    """Compare run directories of two engines or more; write summary.json, report.md/.html and figures.

    `test_images` ([N, 28, 28] uint8, the test set in official order) enables the disagreement grid;
    `test_labels` (the same order) are what runs whose predictions keep only a digest of their
    labels were scored against: a run's result files hold no copy of the data.
    Returns the summary (the content of summary.json).
    """
    if not runs:
        raise FmnistError("no run directories given: pass the runs to compare (say a Keras and a Lightning run)")
    loaded = [load_run(Path(p), test_labels) for p in runs]
    check_comparable(loaded)
    images = _check_images(test_images, len(loaded[0].labels))
    groups = group_runs(loaded)
    summary = summarize(groups)
    summary["disagreements"] = disagreements(groups, images_given=images is not None)
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
        "disagreements": _disagreement_grid(groups, images, summary["disagreements"]),
    }
    pngs = {FIGURES[key]: save_figure(fig, out_dir / FIGURES[key]) for key, fig in figures.items() if fig is not None}
    summary["figures"] = sorted(pngs)
    summary = _plain(summary)
    write_json(out_dir / "summary.json", summary)
    blocks = report_blocks(summary)
    atomic_write_text(out_dir / "report.md", render_markdown(blocks))
    atomic_write_text(out_dir / "report.html", render_html(blocks, pngs))
    return summary
