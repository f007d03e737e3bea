"""Training and prediction with Lightning (`fmnist.capabilities.Training`)."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torchmetrics
from torch.utils.data import DataLoader
from lightning.pytorch.utilities.model_summary import ModelSummary

from fmnist import console, rundir
from fmnist.config import Config
from fmnist.cpu_features import warn_if_emulated_bf16
from fmnist.precision import uses_bf16
from fmnist.errors import RunDirError, reason as error_reason
from fmnist.splits import DataSplits, Split
from fmnist.capabilities import TrainOutcome
from fmnist.epoch_reporter import EpochReporter
from lightning_model.callbacks import (
    AtomicLastCheckpoint,
    EarlyStoppingOnValAccuracy,
    EpochReport,
    ProgressBar,
    StopOnNonFinite,
)
from lightning_model.data import FashionMNISTDataModule
from lightning_model.module import FashionClassifier
from torch_blocks.batches import batch_loader
from torch_blocks.checkpoint import load_checkpoint
from torch_blocks.settings import numerics, training_device  # noqa: F401  (the training capability's)

# Noise that says nothing to our users: the data are in memory (no loader workers needed), two
# deprecation notices from inside Lightning and torch, and the model summary's size estimate under
# bf16-mixed (our summary file counts parameters, which are float32 in every precision).
for _message in (
    r".*does not have many workers.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
    r".*is not supported by the model summary.*",
):
    warnings.filterwarnings("ignore", message=_message)
logging.getLogger("lightning.pytorch.trainer.connectors.checkpoint_connector").setLevel(logging.WARNING)
# Lightning advertises a cloud logger on every Trainer; a tool's output is not the place.
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: "litlogger" not in record.getMessage()
)


MODEL_FILE = "model.ckpt"  # (lightning_model.engine)


def configure_torch(config: Config) -> dict[str, Any]:
    """Seeds (Lightning's `seed_everything`), then the numerics every torch engine trains with
    (`torch_blocks.settings.numerics`: TF32 as the config says, the allocator). Returns the
    allocator setting, for a benchmark to record."""
    L.seed_everything(config.seed, workers=True, verbose=False)
    return numerics(config)


def make_trainer(
    config: Config,
    run_dir: Path | None,
    callbacks: list[L.Callback] | None = None,
    distributed: bool = False,
    validate: bool = True,
) -> L.Trainer:
    """The one `Trainer` of the engine: a run's (`train`), time to accuracy's (`fit_budget`),
    the speed measurement's (`lightning_model.speed`) and prediction's differ only by these
    options. distributed: train on config.train.devices x num_nodes (DDP); otherwise one device
    (prediction, and `fmnist evaluate`, always run on one). validate: False runs no validation
    and prints nothing (time to accuracy: the epoch budget alone). run_dir None: no files."""
    t = config.train
    live = console.live() and validate  # a live bar on a terminal; otherwise fmnist.console prints each epoch
    return L.Trainer(
        max_epochs=t.epochs,
        accelerator="auto",
        devices=t.devices if distributed else 1,
        num_nodes=t.num_nodes if distributed else 1,
        strategy=strategy_for(config) if distributed else "auto",
        deterministic=t.deterministic,
        precision="bf16-mixed" if uses_bf16(t.precision) else "32-true",
        logger=False,  # fmnist.tensorboard_log writes the same tags as every engine
        enable_checkpointing=bool(callbacks) and run_dir is not None,  # training runs checkpoint every epoch
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=None if validate else 0,
        use_distributed_sampler=False,  # keep the shared batch order; BatchIndexSampler shards it
        default_root_dir=None if run_dir is None else str(run_dir),
        enable_progress_bar=live,
        callbacks=[*(callbacks or []), *([ProgressBar()] if live else [])],
    )


def strategy_for(config: Config) -> str:
    """Lightning's strategy: DDP over several devices (checked by the core's
    `fmnist.distributed.check_strategy` before training began), else Lightning's default."""
    t = config.train
    return "ddp" if t.devices * t.num_nodes > 1 else "auto"


def framework_threads() -> dict[str, int]:
    """torch's thread pools as it reports them (sized from OMP_NUM_THREADS at import: placement)."""
    return {"torch_intra_op": torch.get_num_threads(), "torch_inter_op": torch.get_num_interop_threads()}


def versions() -> dict[str, str]:
    return {"torch": torch.__version__, "lightning": L.__version__, "torchmetrics": torchmetrics.__version__}


def checkpoint_path(run_dir: Path) -> Path:
    return Path(run_dir) / rundir.CHECKPOINT_DIR / "last.ckpt"


def completed_epochs(run_dir: Path) -> int:
    """Epochs finished before an interruption, from the last checkpoint (0 if none)."""
    path = checkpoint_path(run_dir)
    if not path.exists():
        return 0
    checkpoint = load_checkpoint(path)  # weights_only: a planted payload is refused before fit reads it
    try:
        return int(checkpoint["epoch"]) + 1
    except (KeyError, TypeError, ValueError) as exc:
        raise RunDirError(f"cannot read the checkpoint {path}: no epoch counter ({error_reason(exc)})") from None


def training_callbacks(
    config: Config, run_dir: Path, report: Callable[[dict[str, float]], None] | None
) -> tuple[StopOnNonFinite, list[L.Callback]]:
    """The callbacks `fmnist train` trains with, in their order (the benchmark times the same list),
    and the non-finite-loss stop among them, which the caller asks afterwards.

    EpochReport first: a saved epoch always has its metrics row. Early stopping before the
    checkpoint (Lightning runs checkpoint callbacks last anyway): its state is saved with the
    epoch; at the end of training it puts the best epoch's weights back, so model.ckpt holds them.
    """
    nan_guard = StopOnNonFinite()
    stopper = [EarlyStoppingOnValAccuracy(config.train.early_stopping)] if config.train.early_stopping else []
    return nan_guard, [
        nan_guard,
        EpochReport(report),
        *stopper,
        AtomicLastCheckpoint(str(run_dir / rundir.CHECKPOINT_DIR)),
    ]


def train(
    config: Config, splits: DataSplits, run_dir: Path, report: EpochReporter | None, resume: bool = False
) -> TrainOutcome | None:
    """Fit, save `model.ckpt`, predict the test set. Under DDP every process runs this (the extra
    ones started by Lightning re-running the command); only global rank 0 writes and returns."""
    configure_torch(config)
    module = FashionClassifier.from_config(config)
    datamodule = FashionMNISTDataModule(config, splits=splits, first_epoch=completed_epochs(run_dir) if resume else 0)
    nan_guard, callbacks = training_callbacks(config, run_dir, report)
    trainer = make_trainer(config, run_dir, callbacks, distributed=True)
    if trainer.is_global_zero:
        warn_if_emulated_bf16(config.train.precision, on_cpu=trainer.strategy.root_device.type == "cpu")
    ckpt = checkpoint_path(run_dir) if resume and checkpoint_path(run_dir).exists() else None
    start = time.perf_counter()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
    except SystemExit:  # Lightning's own Ctrl-C handling ends in sys.exit(1)
        if trainer.interrupted:
            raise KeyboardInterrupt from None
        raise
    train_seconds = time.perf_counter() - start
    nan_guard.watch.raise_if_diverged()
    model_path = run_dir / MODEL_FILE
    if not trainer.is_global_zero:
        trainer.save_checkpoint(model_path)  # collective (a barrier); only rank 0 writes
        return None
    with rundir.atomic_path(model_path) as tmp:
        trainer.save_checkpoint(tmp)
    if trainer.world_size > 1:  # the others have left: no collective predict, one pass here
        logits = infer(module, datamodule.predict_dataloader())
    else:
        logits = torch.cat(trainer.predict(module, dataloaders=datamodule.predict_dataloader()))
    summary = str(ModelSummary(module, max_depth=-1)) + "\n\n" + repr(module.network) + "\n"
    return TrainOutcome(
        test_logits=logits.float().cpu().numpy(),
        num_params=sum(p.numel() for p in module.network.parameters() if p.requires_grad),
        summary=summary,
        train_seconds=train_seconds,
        versions=versions(),
        threads=framework_threads(),
    )


@torch.inference_mode()
def infer(module: FashionClassifier, loader: DataLoader) -> torch.Tensor:
    """Every batch once, in order, in this process (what trainer.predict does on one device)."""
    module.eval()
    return torch.cat([module(x.to(module.device)) for x, _ in loader])


def load_module(run_dir: Path) -> FashionClassifier:
    path = Path(run_dir) / MODEL_FILE
    if path.is_file():  # a damaged file, or a planted payload (weights_only), refused in one line
        load_checkpoint(path, "Lightning checkpoint")
    try:
        return FashionClassifier.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file fails deep inside torch.load
        raise RunDirError(f"cannot load the Lightning checkpoint {path}: {error_reason(exc)}") from None


def predict(run_dir: Path, images: np.ndarray, batch_size: int) -> np.ndarray:
    module = load_module(run_dir)
    configure_torch(module.config)
    trainer = make_trainer(module.config, run_dir)
    labels = np.zeros(len(images), dtype=np.uint8)  # unused by predict_step
    loader = batch_loader(Split(images, labels), batch_size)
    return torch.cat(trainer.predict(module, dataloaders=loader)).float().cpu().numpy()


def fit_budget(
    config: Config,
    splits: DataSplits,
    on_start: Callable[[], None],
    on_trained: Callable[[Callable[[], np.ndarray]], None],
) -> int:
    """The config's whole epoch budget as `train` runs it (the LightningModule, the data module's
    batch order), without validation, checkpoints or files: what a time-to-accuracy measurement
    times. on_start() just before fit; on_trained(predict) from the end-of-training hook, before
    Lightning's teardown. Returns the epochs trained."""
    configure_torch(config)
    module = FashionClassifier.from_config(config)
    datamodule = FashionMNISTDataModule(config, splits=splits)

    @torch.inference_mode()
    def test_logits(trainer: L.Trainer) -> np.ndarray:
        """In the trainer's precision (bf16 autocast under bf16-mixed), as `fmnist train`'s
        prediction of the test set and as the Keras side's predict under its mixed policy."""
        module.eval()  # on the training device still: the hook runs before Lightning's teardown
        x = torch.from_numpy(splits.test.images).unsqueeze(1).float().to(module.device)
        with trainer.precision_plugin.forward_context():
            logits = [module(b) for b in x.split(config.train.eval_batch_size)]
        return torch.cat(logits).float().cpu().numpy()

    class Trained(L.Callback):
        def on_train_end(self, trainer, pl_module):
            on_trained(lambda: test_logits(trainer))

    trainer = make_trainer(config, None, [Trained()], validate=False)
    on_start()
    trainer.fit(module, datamodule=datamodule)
    return trainer.current_epoch
