"""The `pytorch` engine's export (`fmnist.capabilities.Export`): a run's model.pt network through
the torch engines' shared exporter (`torch_blocks.export`: `torch.onnx.export`, NHWC raw pixels in)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pytorch_model.checkpoint import load_model
from torch_blocks import export
from torch_blocks.export import export_onnx, export_versions
from torch_blocks.network import build_network

__all__ = ["export_onnx", "export_versions", "inference_runners", "needs", "run_weights"]

needs = export.NEEDS


def _network(run_dir: Path) -> torch.nn.Module:
    config, weights = load_model(run_dir)
    network = build_network(config)
    network.load_state_dict(weights)
    return network


def run_weights(run_dir: Path) -> dict[str, np.ndarray]:
    """The run's trained weights (model.pt), shared layout: the state dict."""
    return export.shared_weights(_network(run_dir))


def inference_runners(run_dir: Path, threads: int) -> dict[str, Callable[[np.ndarray], Any]]:
    """The run's float32 network called as torch users call it, on NHWC float32 pixels."""
    return export.inference_runners(_network(run_dir), threads)
