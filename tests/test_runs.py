"""Reading a finished run from Python (`fmnist.runs.open_run`): what `fmnist train` wrote, read
back, and the model used through its engine or loaded by its framework."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from fmnist import rundir
from fmnist.datasets import load_fashion_mnist
from fmnist.errors import RunDirError
from fmnist.runs import open_run


def test_a_finished_run_reads_back_with_its_model(lightning_run, real_data_dir):
    run = open_run(lightning_run)
    assert run.engine == "lightning" and run.config.name == "baseline"
    assert [row["epoch"] for row in run.history] == [1, 2]
    assert run.model_file == lightning_run / "model.ckpt" and run.model_file.is_file()
    data = load_fashion_mnist(real_data_dir, download=False)
    images, labels = data.test_images[: run.test["test_images"]], data.test_labels[: run.test["test_images"]]
    logits = run.predict(images)
    assert logits.shape == (len(images), 10)
    assert float(np.mean(logits.argmax(axis=1) == labels)) == pytest.approx(run.test["test_accuracy"])

    from lightning_model.module import FashionClassifier

    module = FashionClassifier.load_from_checkpoint(run.model_file, map_location="cpu", weights_only=True)
    assert module.config == run.config


def test_a_folder_without_a_finished_run_is_refused_in_one_line(lightning_run, tmp_path):
    with pytest.raises(RunDirError, match="holds no run of fmnist"):
        open_run(tmp_path)
    unfinished = tmp_path / "unfinished"
    shutil.copytree(lightning_run, unfinished)
    (unfinished / rundir.TEST_METRICS_FILE).unlink()
    with pytest.raises(RunDirError, match="has not finished"):
        open_run(unfinished)
    (unfinished / rundir.RUN_INFO_FILE).write_text(json.dumps({"engine": "no-such-engine"}))
    with pytest.raises(RunDirError, match="holds no run of fmnist"):
        open_run(unfinished)
