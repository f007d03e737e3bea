"""`fmnist predict` on run directories of both engines: exact on Fashion-MNIST-style PNGs,
robust on synthetic product photos, one line per bad input, and no code run from a checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fmnist import CLASS_NAMES
from fmnist_cli.main import main
from fmnist.datasets import load_fashion_mnist
from fmnist.predicting import predict_files
from fmnist.synthetic_photos import write_photos

MIN_SYNTHETIC_AGREEMENT = 0.90  # the project's bar: the class of the original 28x28 image
SYNTHETIC_PHOTOS = 300


@pytest.fixture(scope="module")
def test_images(real_data_dir) -> np.ndarray:
    return load_fashion_mnist(str(real_data_dir)).test_images


def _save_pngs(images: np.ndarray, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, x in enumerate(images):
        Image.fromarray(x).save(folder / f"test-{i:04d}.png")
    return folder


@pytest.mark.parametrize("engine", ["keras", "lightning"])
def test_test_images_as_png_give_evaluates_logits(engine, request, test_images, tmp_path):
    from fmnist import rundir
    from fmnist.config import load_config
    from fmnist.training import load_training

    run_dir = request.getfixturevalue(f"{engine}_run")
    images = test_images[:200]
    result = predict_files(run_dir, [_save_pngs(images, tmp_path / "pngs")])
    assert not result.failures and all(p.conversion == "pass-through" for p in result.predictions)
    logits = np.stack([p.logits for p in result.predictions])
    # what `fmnist evaluate` computes: the engine's predict on the raw test images
    batch = load_config(run_dir / rundir.CONFIG_FILE).train.eval_batch_size
    np.testing.assert_array_equal(logits, load_training(engine).predict(run_dir, images, batch))
    trained = rundir.read_logits(run_dir / rundir.PREDICTIONS_FILE)  # the run's own test logits
    np.testing.assert_allclose(logits, trained[:200], atol=1e-5)
    assert [p.class_name for p in result.predictions] == [CLASS_NAMES[k] for k in trained[:200].argmax(1)]


def test_synthetic_photos_keep_the_class_of_their_original(keras_run, test_images, tmp_path, capsys):
    from fmnist import rundir

    trained = rundir.read_logits(keras_run / rundir.PREDICTIONS_FILE)
    write_photos(test_images[:SYNTHETIC_PHOTOS], tmp_path / "photos", seed=0)
    assert main(["predict", str(keras_run), str(tmp_path / "photos"), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == SYNTHETIC_PHOTOS and {r["input"] for r in rows} == {"converted"}
    expected = [CLASS_NAMES[k] for k in trained[:SYNTHETIC_PHOTOS].argmax(1)]
    agreement = np.mean([r["class"] == e for r, e in zip(rows, expected)])
    assert agreement >= MIN_SYNTHETIC_AGREEMENT, f"only {agreement:.1%} of synthetic photos keep their class"


def test_table_json_top_k_and_show_input(lightning_run, test_images, tmp_path, capsys):
    folder = _save_pngs(test_images[:3], tmp_path / "pngs")
    seen = tmp_path / "seen"
    assert main(["predict", str(lightning_run), str(folder), "--top-k", "2", "--show-input", str(seen)]) == 0
    out = capsys.readouterr().out
    assert "probability" in out and "test-0000.png" in out and "pass-through" in out
    assert (
        main(
            [
                "predict",
                str(lightning_run),
                str(folder / "test-0001.png"),
                str(folder / "test-0002.png"),
                "--json",
                "--top-k",
                "20",
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(r["file"]).name for r in rows] == ["test-0001.png", "test-0002.png"]
    for row in rows:
        assert set(row) == {"file", "class", "probability", "top_k", "input"}
        assert len(row["top_k"]) == 10 and row["top_k"][0] == {"class": row["class"], "probability": row["probability"]}
        assert abs(sum(k["probability"] for k in row["top_k"]) - 1) < 1e-4
    assert main(["predict", str(lightning_run / "model.ckpt"), str(folder / "test-0000.png"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["file"].endswith("test-0000.png")  # a run's model file: its run
    for i in range(3):  # the 28x28 images the network saw, one per picture
        np.testing.assert_array_equal(np.asarray(Image.open(seen / f"test-{i:04d}.png")), test_images[i])


def test_bad_inputs_fail_one_line_each_and_the_good_ones_are_predicted(keras_run, test_images, tmp_path, capsys):
    from fmnist import pictures

    folder = _save_pngs(test_images[:2], tmp_path / "mixed")
    (folder / "notes.png").write_text("not a picture")
    Image.fromarray(test_images[0]).resize((300, 300)).convert("RGB").save(folder / "whole.jpg")
    data = (folder / "whole.jpg").read_bytes()
    (folder / "whole.jpg").unlink()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 3])
    side = int(pictures.MAX_PIXELS**0.5) + 100
    Image.new("1", (side, side), 1).save(folder / "huge.png")
    (tmp_path / "empty").mkdir()
    code = main(["predict", str(keras_run), str(folder), str(tmp_path / "empty"), "--json"])
    captured = capsys.readouterr()
    assert code == 1
    errors = [line for line in captured.err.splitlines() if line.startswith("fmnist: error: ")]
    assert len(errors) == 4, captured.err
    for name, words in (
        ("notes.png", "not a picture"),
        ("cut.jpg", "truncated"),
        ("huge.png", "too large"),
        ("empty", "no pictures"),
    ):
        assert any(name in line and words in line for line in errors), (name, errors)
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert sorted(Path(r["file"]).name for r in rows if "class" in r) == ["test-0000.png", "test-0001.png"]
    assert len([r for r in rows if "error" in r]) == 4


def test_a_run_directory_without_a_model_is_refused_in_one_line(keras_run, test_images, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(keras_run, run)
    (run / "model.keras").unlink()
    png = _save_pngs(test_images[:1], tmp_path / "pngs") / "test-0000.png"
    assert main(["predict", str(run), str(png)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no model" in err[0]
    assert main(["predict", str(tmp_path / "nowhere"), str(png)]) == 2
    assert "no such run directory" in capsys.readouterr().err


class _Payload:
    """Unpickling this touches a file: the proof that loading ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_planted_in_a_checkpoint_is_refused_and_never_runs(lightning_run, test_images, tmp_path, capsys):
    import torch

    run = tmp_path / "run"
    shutil.copytree(lightning_run, run)
    marker = tmp_path / "payload-ran"
    checkpoint = torch.load(run / "model.ckpt", map_location="cpu", weights_only=True)
    checkpoint["hyper_parameters"]["payload"] = _Payload(marker)
    torch.save(checkpoint, run / "model.ckpt")
    png = _save_pngs(test_images[:1], tmp_path / "pngs") / "test-0000.png"
    code = main(["predict", str(run), str(png)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("fmnist: error: ") and "model.ckpt" in err[0], err
    assert not marker.exists(), "loading the checkpoint ran the planted code"


def test_a_keras_model_with_python_code_is_refused_in_one_line(keras_run, test_images, tmp_path, capsys):
    import keras

    run = tmp_path / "run"
    shutil.copytree(keras_run, run)
    marker = tmp_path / "lambda-ran"
    touch = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    planted = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Lambda(lambda x: eval(touch) or x)])
    planted.save(run / "model.keras")
    marker.unlink(missing_ok=True)  # building the model ran the lambda once; loading must not
    png = _save_pngs(test_images[:1], tmp_path / "pngs") / "test-0000.png"
    code = main(["predict", str(run), str(png)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "model.keras" in err[0], err
    assert not marker.exists(), "loading the .keras file ran its Python code"


def test_the_readme_figure_is_drawn_from_a_run(keras_run, real_data_dir, tmp_path):
    from fmnist.predict_figure import SHOWN, write_figure

    result = write_figure(keras_run, tmp_path / "figure.png", str(real_data_dir))
    assert len(result.predictions) == SHOWN and not result.failures
    assert Image.open(tmp_path / "figure.png").size[0] > 600


def test_a_keras_run_then_a_lightning_run_in_one_process(keras_run, lightning_run, test_images, tmp_path):
    """TensorFlow first, then torch, in one process segfaulted on the model's first call: the
    second engine now predicts in a process of its own (fmnist.engines.clash), with the same logits."""
    import subprocess
    import sys

    pngs = _save_pngs(test_images[:20], tmp_path / "pngs")
    code = (
        "import json, sys\n"
        "from fmnist.predicting import predict_files\n"
        "out = {}\n"
        "for run in sys.argv[2:]:\n"
        "    result = predict_files(run, [sys.argv[1]])\n"
        "    assert not result.failures\n"
        "    out[run] = [p.logits.tolist() for p in result.predictions]\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(pngs), str(keras_run), str(lightning_run)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    for run in (keras_run, lightning_run):
        direct = np.stack([p.logits for p in predict_files(run, [pngs]).predictions])
        np.testing.assert_allclose(np.array(found[str(run)]), direct, atol=1e-6)
