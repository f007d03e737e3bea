"""The comparison report on tiny fake-but-valid run directories (no framework, no training)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from compare.report import build_report
from fmnist.config import load_config, save_config, with_overrides
from fmnist.errors import FmnistError
from fmnist.metrics import test_metrics as compute_test_metrics
from fmnist.rundir import MetricsCSV, write_json, write_predictions

pytestmark = pytest.mark.filterwarnings("ignore:The set_bad function:PendingDeprecationWarning")
REPO = Path(__file__).resolve().parents[1]
N = 100
LABELS = (np.arange(N) % 10).astype(np.uint8)


def _predictions(engine: str, seed: int) -> np.ndarray:
    """Right except on a few images; the engines share some mistakes and not others."""
    preds = LABELS.astype(np.int64).copy()
    shared = [3, 17, 42]  # both wrong
    own = {
        "keras": [5, 11, 60 + seed],
        "keras-jax": [5, 12, 61 + seed],
        "keras-torch": [6, 11, 62 + seed],
        "lightning": [8, 23, 31, 70 + seed],
    }[engine]
    for i in shared + own:
        preds[i] = (LABELS[i] + 1 + seed) % 10
    return preds


def make_run(root: Path, engine: str, seed: int, overrides: dict | None = None, n: int = N) -> Path:
    """A run directory as `fmnist train` leaves it, written with the project's own helpers."""
    path = root / f"{engine}-seed{seed}-{len(list(root.iterdir()))}"
    path.mkdir()
    config = with_overrides(
        load_config(REPO / "configs" / "baseline.yaml"),
        {"seed": seed, "train.epochs": 3, "data.limit_test": N, **(overrides or {})},
    )
    save_config(config, path / "config.yaml")
    logits = np.random.default_rng(seed).normal(0, 0.1, (N, 10)).astype(np.float32)
    logits[np.arange(N), _predictions(engine, seed)] += 3.0
    write_predictions(path / "test_predictions.npz", logits[:n], LABELS[:n])
    write_json(
        path / "test_metrics.json",
        {
            "engine": engine,
            "config": config.name,
            "seed": seed,
            "epochs": 3,
            "num_params": 225034,
            **compute_test_metrics(logits[:n], LABELS[:n]),
            "train_seconds": 10.0 + seed,
            "train_images_per_second": 5000.0 + 100 * seed,
            "versions": {"numpy": np.__version__},
        },
    )
    csv = MetricsCSV(path / "metrics.csv")
    for epoch in (1, 2, 3):
        shift = 0.01 * seed + (0.02 if engine == "lightning" else 0.0)
        csv.append(
            {
                "epoch": epoch,
                "train_loss": 1.0 / epoch + shift,
                "train_accuracy": 0.6 + 0.1 * epoch - shift,
                "val_loss": 1.1 / epoch + shift,
                "val_accuracy": 0.55 + 0.1 * epoch - shift,
                "lr": 1e-3,
                "seconds": 2.0,
            }
        )
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    return [make_run(root, b, s) for b in ("keras", "lightning") for s in (0, 1)]


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("report")
    images = np.random.default_rng(0).integers(0, 256, (N, 28, 28), dtype=np.uint8)
    return out, build_report(runs, out, test_images=images, test_labels=LABELS)


def test_every_file_is_written(report):
    out, _ = report
    for name in (
        "summary.json",
        "report.md",
        "report.html",
        "curves.png",
        "confusion_matrices.png",
        "per_class.png",
        "disagreements.png",
    ):
        assert (out / name).stat().st_size > 0, name
    for name in ("curves.png", "confusion_matrices.png", "per_class.png", "disagreements.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_markdown_starts_with_the_verdict(report):
    md = (report[0] / "report.md").read_text()
    lines = md.splitlines()
    assert lines[0].startswith("# ") and "baseline" in lines[0]
    assert "seeds 0, 1" in md and "3 epochs · float32 ·" in md  # the precision the runs trained in
    assert report[1]["precision"] == "float32"
    headings = [line for line in lines if line.startswith("## ")]
    assert headings[0] == "## Verdict"
    assert headings[-1] == "## How to read this"
    verdict = md.split("## Verdict", 1)[1].split("## ", 1)[0]
    assert report[1]["equivalence"]["verdict"] in verdict
    for fig in ("curves.png", "confusion_matrices.png", "per_class.png", "disagreements.png"):
        assert f"]({fig})" in md


def test_summary_numbers_match_an_independent_computation(report):
    out, summary = report
    assert json.loads((out / "summary.json").read_text()) == summary
    acc = {b: [(_predictions(b, s) == LABELS).mean() for s in (0, 1)] for b in ("keras", "lightning")}
    for b in acc:
        stat = summary["per_engine"][b]["test_accuracy"]
        assert stat["mean"] == pytest.approx(np.mean(acc[b]))
        assert stat["std"] == pytest.approx(np.std(acc[b], ddof=1))
        assert summary["per_engine"][b]["num_params"] == 225034
        assert summary["per_engine"][b]["train_seconds"]["mean"] == pytest.approx(10.5)
    agreement = [(_predictions("keras", s) == _predictions("lightning", s)).mean() for s in (0, 1)]
    assert [r["prediction_agreement"] for r in summary["per_seed"]] == pytest.approx(agreement)
    assert summary["mean_prediction_agreement"] == pytest.approx(np.mean(agreement))
    row = summary["per_seed"][0]  # seed 0: Keras alone wrong on 3 images, Lightning alone on 4
    assert (row["only_keras_right"], row["only_lightning_right"], row["both_wrong"]) == (4, 3, 3)
    assert summary["equivalence"]["diff"] == pytest.approx(np.mean(acc["keras"]) - np.mean(acc["lightning"]))
    assert summary["disagreements"]["count"] == 7 and len(summary["disagreements"]["shown"]) == 7
    cm = np.array(summary["per_engine"]["keras"]["confusion_matrix"])
    assert cm.sum() == 2 * N and np.trace(cm) == round(sum(acc["keras"]) * N)


def test_html_embeds_every_image_as_a_data_uri(report):
    page = (report[0] / "report.html").read_text()
    sources = re.findall(r'\bsrc="([^"]*)"', page)
    assert len(sources) == 4
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"\bhref=|url\(|<link|\.png\b", page)
    assert "Verdict" in page and "How to read this" in page


def test_mixed_configs_are_refused(runs, tmp_path):
    odd = make_run(tmp_path, "lightning", 2, {"train.batch_size": 64})
    with pytest.raises(FmnistError, match=r"mix configs.*train\.batch_size \(128 vs 64\)"):
        build_report([*runs, odd], tmp_path / "out", test_labels=LABELS)


def test_mixed_test_set_sizes_are_refused(runs, tmp_path):
    short = make_run(tmp_path, "lightning", 2, n=90)
    with pytest.raises(FmnistError, match="test-set sizes"):
        build_report([*runs, short], tmp_path / "out", test_labels=LABELS)


def test_one_engine_only_is_refused(runs, tmp_path):
    with pytest.raises(FmnistError, match="two engines or more"):
        build_report(runs[:2], tmp_path / "out", test_labels=LABELS)


def test_one_seed_makes_no_equivalence_claim(runs, tmp_path):
    summary = build_report([runs[0], runs[2]], tmp_path / "out", test_labels=LABELS)
    assert summary["equivalence"]["equivalent"] is None
    md = (tmp_path / "out" / "report.md").read_text()
    verdict = md.split("## Verdict", 1)[1].split("## ", 1)[0]
    assert "No equivalence claim is possible with one seed per engine" in verdict
    assert "Keras 94.00%, Lightning 93.00%" in verdict  # the numbers are still given
    assert "test images were not given" in md and not (tmp_path / "out" / "disagreements.png").exists()


def test_four_engines_make_one_report_with_a_verdict_per_pair(runs, tmp_path):
    """Keras on TensorFlow, JAX and torch beside Lightning: every engine in the tables and figures,
    every pair judged, keras against lightning leading."""
    root = tmp_path / "more"
    root.mkdir()
    more = [make_run(root, b, s) for b in ("keras-jax", "keras-torch") for s in (0, 1)]
    summary = build_report([*runs, *more], tmp_path / "out", test_labels=LABELS)
    assert summary["engines"] == ["keras", "keras-jax", "keras-torch", "lightning"]
    pairs = [tuple(p["engines"]) for p in summary["pairs"]]
    assert pairs[0] == ("keras", "lightning") and len(set(pairs)) == 6
    assert summary["equivalence"] == summary["pairs"][0]["equivalence"]
    for pair in summary["pairs"]:
        a, b = pair["engines"]
        acc = {e: summary["per_engine"][e]["test_accuracy"]["mean"] for e in (a, b)}
        assert pair["equivalence"]["diff"] == pytest.approx(acc[a] - acc[b])
        assert [r["seed"] for r in pair["per_seed"]] == [0, 1]
    md = (tmp_path / "out" / "report.md").read_text()
    assert md.startswith("# Keras vs Keras (JAX) vs Keras (torch) vs Lightning on Fashion-MNIST")
    table = md.split("### Every pair of engines", 1)[1].split("## ", 1)[0]
    assert len([line for line in table.splitlines() if line.startswith("| Keras")]) == 6
    assert "| Keras (JAX) − Keras (torch) |" in table
    for name in ("curves.png", "confusion_matrices.png", "per_class.png"):
        assert (tmp_path / "out" / name).stat().st_size > 10_000


def test_predictions_keep_a_digest_of_their_labels_and_take_them_from_the_data(runs, tmp_path):
    """A run's predictions hold no labels (they may be committed); the report takes the test set's
    own, and refuses labels other than those the logits were scored on."""
    with np.load(runs[0] / "test_predictions.npz") as data:
        assert "labels" not in data.files
    with pytest.raises(FmnistError, match="the test set is needed"):
        build_report(runs, tmp_path / "a")
    other = LABELS.copy()
    other[7] = (other[7] + 1) % 10
    with pytest.raises(FmnistError, match="other test labels"):
        build_report(runs, tmp_path / "b", test_labels=other)
    more = np.concatenate([LABELS, LABELS])  # the full test set: its first N are the runs'
    summary = build_report(runs, tmp_path / "c", test_labels=more)
    assert len(summary["per_engine"]["keras"]["test_accuracy"]["values"]) == 2


def test_predictions_written_with_their_labels_still_load(runs, tmp_path):
    """Runs from before the digest hold the labels themselves, and report without the data."""
    old = []
    for run in runs:
        copy = tmp_path / run.name
        shutil.copytree(run, copy)
        logits = np.load(run / "test_predictions.npz")["logits"]
        np.savez_compressed(copy / "test_predictions.npz", logits=logits, labels=LABELS[: len(logits)])
        old.append(copy)
    assert len(build_report(old, tmp_path / "out")["per_engine"]["lightning"]["test_accuracy"]["values"]) == 2
