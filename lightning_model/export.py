"""The `lightning` engine's export (`fmnist.capabilities.Export`): a run's LightningModule
network through the torch engines' shared exporter (`torch_blocks.export`: `torch.onnx.export`,
NHWC raw pixels in)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lightning_model.training import load_module
from torch_blocks import export
from torch_blocks.export import export_onnx

__all__ = ["export_onnx", "export_versions", "inference_runners", "needs", "run_weights"]

needs = export.NEEDS


def run_weights(run_dir: Path) -> dict[str, np.ndarray]:
    """The run's trained weights (its checkpoint's module), shared layout: the state dict."""
    return export.shared_weights(load_module(run_dir).network)


def inference_runners(run_dir: Path, threads: int) -> dict[str, Callable[[np.ndarray], Any]]:
    """The run's float32 network called as torch users call it, on NHWC float32 pixels."""
    return export.inference_runners(load_module(run_dir).network, threads)


def export_versions() -> dict[str, str]:
    import lightning

    return {**export.export_versions(), "lightning": lightning.__version__}
