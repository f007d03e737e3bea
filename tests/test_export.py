"""`fmnist export`: both engines to one ONNX contract, each file checked on all 10,000 test images
against the framework's float32 model; a planted wrong weight fails the check; weights
transferred Keras -> torch give the same ONNX logits; onnxruntime inference needs no framework."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fmnist import CLASS_NAMES
from fmnist_cli.main import main
from fmnist.datasets import load_fashion_mnist

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def test_images(real_data_dir) -> np.ndarray:
    return load_fashion_mnist(str(real_data_dir)).test_images


@pytest.fixture(scope="module")
def exports(keras_run, lightning_run, real_data_dir, tmp_path_factory) -> dict[str, Path]:
    """Each tiny run exported once with `fmnist export` (exit 0 asserted)."""
    out = {}
    for engine, run in (("keras", keras_run), ("lightning", lightning_run)):
        path = tmp_path_factory.mktemp(f"export-{engine}") / "model.onnx"
        assert main(["export", str(run), "--out", str(path), "--data-dir", str(real_data_dir)]) == 0
        out[engine] = path
    return out


@pytest.mark.parametrize("engine", ["keras", "lightning"])
def test_export_contract_metadata_and_check(engine, exports, request, test_images):
    from fmnist.onnx_model import OnnxModel

    path = exports[engine]
    assert sorted(p.name for p in path.parent.iterdir()) == ["export.json", "model.onnx"]  # one file, no side data
    report = json.loads((path.parent / "export.json").read_text())
    check = report["check"]
    assert report["passed"] and report["engine"] == engine and report["export_precision"] == "float32"
    assert "float32" in report["reference"] and report["sha256"]
    assert check["images"] == 10_000 and check["identical_predictions"] == 10_000
    assert check["max_abs_logit_diff"] <= check["allowed"] == max(1e-5, 2 * check["framework_float32_rounding"])
    model = onnx.load(str(path))
    dims = lambda value: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]  # noqa: E731
    assert [(i.name, dims(i)) for i in model.graph.input] == [("pixels", ["batch", 28, 28, 1])]
    assert [(o.name, dims(o)) for o in model.graph.output] == [("logits", ["batch", 10])]
    meta = {p.key: p.value for p in model.metadata_props}
    run_dir = request.getfixturevalue(f"{engine}_run")
    assert json.loads(meta["class_names"]) == list(CLASS_NAMES)
    assert meta["config"] == (run_dir / "config.yaml").read_text()
    assert float(meta["test_accuracy"]) == json.loads((run_dir / "test_metrics.json").read_text())["test_accuracy"]
    runner = OnnxModel(path)
    for n in (1, 7, 300):  # dynamic batch
        assert runner.session.run(None, {"pixels": test_images[:n, ..., None].astype(np.float32)})[0].shape == (n, 10)


def test_predict_on_an_onnx_file_matches_the_run(exports, keras_run, test_images, tmp_path, capsys):
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(20):
        Image.fromarray(test_images[i]).save(folder / f"test-{i:02d}.png")
    outputs = []
    for model in (keras_run, exports["keras"]):
        assert main(["predict", str(model), str(folder), "--json", "--top-k", "10"]) == 0
        outputs.append([json.loads(line) for line in capsys.readouterr().out.splitlines()])
    for from_run, from_onnx in zip(*outputs):
        assert from_run["class"] == from_onnx["class"]
        assert abs(from_run["probability"] - from_onnx["probability"]) < 1e-4


def _plant_wrong_weight(path: Path, out: Path) -> None:
    """One element of the largest weight tensor changed by 0.05: a small, real corruption."""
    from onnx import numpy_helper

    model = onnx.load(str(path))
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    values = numpy_helper.to_array(init).copy()
    values.flat[0] += 0.05
    init.CopyFrom(numpy_helper.from_array(values, init.name))
    onnx.save(model, str(out))


def test_a_planted_wrong_weight_fails_the_check(exports, keras_run, real_data_dir, tmp_path, capsys):
    run_dir = keras_run  # the check is one function for both engines; Keras' is the quicker reference
    planted = tmp_path / "planted.onnx"
    _plant_wrong_weight(exports["keras"], planted)
    code = main(["export", str(run_dir), "--check", str(planted), "--data-dir", str(real_data_dir)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("fmnist:")]
    assert code == 1 and len(err) == 1 and "export check failed" in err[0], err
    report = json.loads((tmp_path / "export.json").read_text())
    assert not report["passed"] and report["check"]["max_abs_logit_diff"] > report["check"]["allowed"]


def test_a_failed_export_leaves_no_model_file(keras_run, real_data_dir, tmp_path, monkeypatch, capsys):
    import export.check as export_check

    finalize = export_check.finalize

    def finalize_then_corrupt(path, metadata):
        result = finalize(path, metadata)
        _plant_wrong_weight(path, path)
        return result

    monkeypatch.setattr(export_check, "finalize", finalize_then_corrupt)
    out = tmp_path / "model.onnx"
    assert main(["export", str(keras_run), "--out", str(out), "--data-dir", str(real_data_dir)]) == 1
    assert "export check failed" in capsys.readouterr().err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["export.json"]
    assert json.loads((tmp_path / "export.json").read_text())["onnx"] is None


def test_export_never_downloads_and_names_the_file_it_needs(keras_run, tmp_path, monkeypatch, capsys):
    import fmnist.download

    monkeypatch.setattr(fmnist.download, "download_file", lambda *a, **k: pytest.fail("tried to download"))
    empty = tmp_path / "no-data"
    empty.mkdir()
    out = tmp_path / "model.onnx"
    assert main(["export", str(keras_run), "--out", str(out), "--data-dir", str(empty)]) == 2  # a usage error
    err = capsys.readouterr().err
    assert "t10k-images-idx3-ubyte.gz" in err and str(empty) in err, err
    assert not out.exists() and list(tmp_path.iterdir()) == [empty]


def test_a_bf16_run_exports_from_its_float32_weights(keras_run, real_data_dir, tmp_path):
    import keras

    from export.check import export_run
    from fmnist.config import load_config, save_config, with_overrides
    from keras_model.training import load_model
    from keras_model.model import build_model

    run = tmp_path / "bf16"
    shutil.copytree(keras_run, run)
    config = with_overrides(load_config(run / "config.yaml"), {"train.precision": "bf16-mixed"})
    save_config(config, run / "config.yaml")
    mixed = build_model(config)
    mixed.set_weights(load_model(keras_run).get_weights())
    mixed.save(run / "model.keras")
    # Keras documents its ONNX export for the float32 policy only
    assert "mixed_bfloat16" in {layer.dtype_policy.name for layer in load_model(run).layers}
    result = export_run(run, data_dir=str(real_data_dir))
    assert result["passed"] and result["run_precision"] == "bf16-mixed" and result["export_precision"] == "float32"
    assert keras.config.dtype_policy().name == "float32"


def test_transferred_weights_give_the_same_onnx_logits(keras_run, test_images, tmp_path):
    from export.check import export_engine, float32_config, transferred_onnx_parity

    weights = export_engine("keras").export.run_weights(keras_run)  # trained: batch-norm statistics too
    result = transferred_onnx_parity(float32_config(keras_run), weights, test_images[:2000], tmp_path)
    assert result["passed"], result
    assert result["identical_predictions"] == 2000 and result["max_abs_logit_diff"] <= result["allowed"]
    metas = [{p.key: p.value for p in onnx.load(result["files"][b]).metadata_props} for b in ("keras", "lightning")]
    assert [m["engine"] for m in metas] == ["keras", "lightning"]


BLOCKER = textwrap.dedent("""
    import sys

    FRAMEWORKS = {"tensorflow", "torch", "keras", "lightning", "jax", "tf2onnx", "onnxscript", "torchmetrics"}

    class Blocked:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in FRAMEWORKS:
                raise ImportError(f"{name} is blocked in this test")

    sys.meta_path.insert(0, Blocked())
    for name in FRAMEWORKS:
        try:
            __import__(name)
        except ImportError:
            pass
        else:
            raise SystemExit(f"{name} could still be imported")
    from fmnist_cli.main import main

    code = main(sys.argv[1:])
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in FRAMEWORKS)
    print("LOADED", loaded, file=sys.stderr)
    raise SystemExit(code if not loaded else 99)
""")


def test_onnx_inference_runs_where_tensorflow_and_torch_cannot_be_imported(exports, test_images, tmp_path):
    from fmnist.onnx_model import OnnxModel

    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(10):
        Image.fromarray(test_images[i]).save(folder / f"test-{i}.png")
    expected = OnnxModel(exports["lightning"]).logits(test_images[:10]).argmax(1)
    done = subprocess.run(
        [sys.executable, "-c", BLOCKER, "predict", str(exports["lightning"]), str(folder), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "LOADED []" in done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["class"] for r in rows] == [CLASS_NAMES[k] for k in expected]
