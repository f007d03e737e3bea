"""`fmnist benchmark-inference` runs end to end on a tiny input and writes its JSON and Markdown."""

from __future__ import annotations

import json

import pytest

from fmnist_cli.main import main

pytest.importorskip("onnxruntime")


def test_benchmark_inference_writes_its_tables(keras_run, real_data_dir, tmp_path, capsys):
    out = tmp_path / "results"
    assert (
        main(
            [
                "benchmark-inference",
                str(keras_run),
                "--out",
                str(out),
                "--latency-runs",
                "5",
                "--batches",
                "2",
                "--photos",
                "12",
                "--data-dir",
                str(real_data_dir),
            ]
        )
        == 0
    )
    result = json.loads((out / "inference.json").read_text())
    (entry,) = result["runs"]
    assert entry["engine"] == "keras" and entry["export_check"]["passed"]
    assert set(entry["runners"]) == {"onnxruntime", "keras: model(x)", "keras: predict_on_batch"}
    for figures in entry["runners"].values():
        assert 0 < figures["batch1_p50_ms"] <= figures["batch1_p99_ms"] and figures["batch256_images_per_s"] > 0
    for how in ("run directory", "onnx"):
        predict = entry["predict"][how]
        assert predict["photos"] == 12 and predict["images_per_s"] > 0
        assert set(predict["phases_s"]) == {"open", "decode", "convert", "model", "other"}
    table = (out / "inference.md").read_text()
    assert "batch-1 p50" in table and "synthetic JPEG photos" in table
    assert sorted(p.name for p in out.iterdir()) == [
        "inference.json",
        "inference.md",
        f"keras-{keras_run.name}.export.json",
    ]
    assert main(["benchmark-inference", str(keras_run), "--out", str(out)]) == 2  # results are never replaced
    assert "already holds" in capsys.readouterr().err
