"""Time to accuracy: wall seconds for each backend to reach a test accuracy (`fmnist benchmark
--time-to-accuracy 0.91`), one process per backend: `python -m benchmarks.time_to_accuracy SPEC.json OUT.json`.

Each worker trains as `fmnist train` does (the config's network, optimizer, per-epoch schedule,
batch order and seed; the project's own data pipeline), without validation, and measures the
test set after every epoch, stopping at the first epoch that reaches the target. The clock of
the training excludes those test passes (they are not part of training); the process wall time,
measured by the parent, includes everything: interpreter start, framework import, data loading,
training and the test passes.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks import REPO  # noqa: E402


class _Progress:
    """Per-epoch bookkeeping shared by both backends."""

    def __init__(self, target: float, test_images: np.ndarray, test_labels: np.ndarray) -> None:
        self.target, self.images, self.labels = target, test_images, test_labels
        self.accuracies: list[float] = []
        self.train_seconds: list[float] = []
        self.eval_seconds = 0.0
        self.epoch_start = 0.0
        self.train_total = 0.0
        self.reached_at: float | None = None  # perf_counter when the target was first measured

    def start_epoch(self) -> None:
        self.epoch_start = time.perf_counter()

    def end_epoch(self, predict) -> bool:
        """Closes the epoch's training clock, measures the test set; True when the target is reached."""
        self.train_total += time.perf_counter() - self.epoch_start
        self.train_seconds.append(self.train_total)
        began = time.perf_counter()
        logits = predict(self.images)
        acc = float(np.mean(np.argmax(logits, axis=1) == self.labels))
        self.eval_seconds += time.perf_counter() - began
        self.accuracies.append(acc)
        print(
            f"[time-to-accuracy] epoch {len(self.accuracies)}: test accuracy {acc:.2%},"
            f" training {self.train_total:.1f} s",
            file=sys.stderr,
            flush=True,
        )
        if acc >= self.target and self.reached_at is None:
            self.reached_at = time.perf_counter()
        return acc >= self.target


def _keras(config, splits, progress: _Progress) -> None:
    import keras_model  # noqa: F401  (TensorFlow's settings before it loads)
    import keras

    from keras_model.backend import compile_model, seed_everything
    from keras_model.callbacks import ScheduledLearningRate
    from fmnist.splits import to_float_nhwc
    from keras_model.data import TrainBatches
    from keras_model.model import build_model

    seed_everything(config)
    model = compile_model(build_model(config), config)
    t = config.train
    data = TrainBatches(splits.train, t.batch_size, config.seed, t.epochs, augment=config.data.augment)

    def predict(images):
        # predict_on_batch, not model.predict: each predict() inside fit leaves a tf.data pipeline
        # whose teardown at the end of fit costs seconds each (measured when this was written).
        x, size = to_float_nhwc(images), t.eval_batch_size
        return np.concatenate(
            [np.asarray(model.predict_on_batch(x[i : i + size]), dtype=np.float32) for i in range(0, len(x), size)]
        )

    class Watch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            progress.start_epoch()

        def on_epoch_end(self, epoch, logs=None):
            if progress.end_epoch(predict):
                self.model.stop_training = True

    model.fit(
        data,
        epochs=t.epochs,
        steps_per_epoch=data.batches_per_epoch,
        shuffle=False,
        verbose=0,
        callbacks=[ScheduledLearningRate(t, data.batches_per_epoch), Watch()],
    )


def _lightning(config, splits, progress: _Progress) -> None:
    import lightning as L
    import torch

    from lightning_model.backend import configure_torch
    from lightning_model.data import FashionMNISTDataModule
    from lightning_model.module import FashionClassifier

    configure_torch(config)
    module = FashionClassifier.from_config(config)
    datamodule = FashionMNISTDataModule(config, splits=splits)
    test_x = torch.from_numpy(splits.test.images).unsqueeze(1).float()

    @torch.inference_mode()
    def predict(_images):
        module.eval()
        out = torch.cat([module(x) for x in test_x.split(config.train.eval_batch_size)]).numpy()
        module.train()
        return out

    class Watch(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            progress.start_epoch()

        def on_train_epoch_end(self, trainer, pl_module):
            if progress.end_epoch(predict):
                trainer.should_stop = True

    trainer = L.Trainer(
        max_epochs=config.train.epochs,
        accelerator="auto",
        devices=1,
        deterministic=config.train.deterministic,
        precision="bf16-mixed" if config.train.precision == "bf16-mixed" else "32-true",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        use_distributed_sampler=False,
        callbacks=[Watch()],
    )
    trainer.fit(module, datamodule=datamodule)


def run(spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"backend": spec["backend"], "target": spec["target"]}
    try:
        if spec["backend"] == "lightning":
            import torch  # noqa: F401
        else:
            import keras  # noqa: F401
        import_seconds = time.perf_counter() - _T0
        from fmnist.config import load_config, with_overrides
        from fmnist.datasets import load_fashion_mnist
        from fmnist.splits import make_splits

        config = with_overrides(load_config(spec["config"]), {"train.epochs": spec["max_epochs"]})  # None: the config's
        began = time.perf_counter()
        splits = make_splits(load_fashion_mnist(spec.get("data_dir")), config)
        data_seconds = time.perf_counter() - began
        progress = _Progress(spec["target"], splits.test.images, splits.test.labels.astype(np.int64))
        (_lightning if spec["backend"] == "lightning" else _keras)(config, splits, progress)
        returned = time.perf_counter()
        reached = bool(progress.accuracies) and progress.accuracies[-1] >= spec["target"]
        out.update(
            {
                "status": "ok",
                "reached": reached,
                "epochs": len(progress.accuracies),
                "max_epochs": config.train.epochs,
                "test_accuracy_per_epoch": progress.accuracies,
                "train_seconds_per_epoch_cumulative": progress.train_seconds,
                "train_seconds_to_target": progress.train_seconds[-1] if reached else None,
                "import_seconds": import_seconds,
                "data_seconds": data_seconds,
                "test_eval_seconds": progress.eval_seconds,
                # From this module's first line to the test pass that reached the target: imports, data
                # loading, model building, training and the test passes; not the framework's teardown.
                "seconds_to_target": progress.reached_at - _T0 if reached else None,
                "teardown_seconds": returned - progress.reached_at if reached else None,
            }
        )
    except Exception as exc:
        out.update({"status": "error", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
    return out


def run_time_to_accuracy(
    backends: list[str],
    config: Path,
    target: float,
    max_epochs: int | None,
    data_dir: str | None,
    device: str,
    log=print,
) -> list[dict[str, Any]]:
    rows = []
    for backend in backends:
        spec = {
            "backend": backend,
            "target": target,
            "max_epochs": max_epochs,
            "config": str(config),
            "data_dir": data_dir,
            "device": device,
        }
        budget = f"at most {max_epochs} epochs" if max_epochs else "the config's epochs at most"
        log(f"[benchmark] time to {target:.2%} test accuracy: {backend} ({budget})")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        if device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        with tempfile.TemporaryDirectory(prefix="fmnist-time-to-accuracy-") as tmp:
            spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
            spec_path.write_text(json.dumps(spec))
            began = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.time_to_accuracy", str(spec_path), str(out_path)],
                env=env,
                cwd=REPO,
                stdout=subprocess.DEVNULL,
            )
            wall = time.perf_counter() - began
            row = (
                json.loads(out_path.read_text())
                if out_path.exists()
                else {
                    "backend": backend,
                    "target": target,
                    "status": "error",
                    "error": f"worker exited with code {proc.returncode}",
                }
            )
        row["wall_seconds"] = wall
        if row.get("status") == "ok":
            to_target = f"{row['seconds_to_target']:.1f} s to target, " if row["reached"] else ""
            log(
                f"[benchmark] {backend}: {'reached' if row['reached'] else 'did not reach'} {target:.2%} in"
                f" {row['epochs']} epochs: {to_target}training {row['train_seconds_per_epoch_cumulative'][-1]:.1f} s,"
                f" process wall {wall:.1f} s"
            )
        else:
            log(f"[benchmark] {backend}: error: {row.get('error')}")
        rows.append(row)
    return rows


if __name__ == "__main__":
    spec_file, out_file = sys.argv[1:3]
    Path(out_file).write_text(json.dumps(run(json.loads(Path(spec_file).read_text()))))
