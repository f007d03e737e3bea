"""The torch network written to ONNX by torch's own exporter (`torch.onnx.export`, its default
dynamo path, which needs onnxscript), and a run's network as torch users call it: what every
torch engine's export capability (`fmnist.capabilities.Export`) is built on.

The export takes the same input as the Keras export, NHWC [N, 28, 28, 1] raw pixels: a thin
module permutes to the network's NCHW first, and the exporter records that permute in the graph.
The export is float32: the network's parameters are float32 in every precision (bf16-mixed only
autocasts the compute), and the exported graph has no autocast.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fmnist import IMAGE_SHAPE
from fmnist.config import Config
from fmnist.onnx_model import BATCH_DIM, INPUT_NAME, OUTPUT_NAME
from torch_blocks.network import build_network, load_shared_weights

#: Beyond torch: onnxscript runs under torch.onnx.export's dynamo path (`fmnist.capabilities.Export.needs`).
NEEDS = ("onnx", "onnxruntime", "onnxscript")

EXAMPLE_BATCH = 2  # the traced example; the batch dimension is exported as dynamic
# The exporter's registry says, on every export, that torchvision's operators are skipped: not ours.
logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)


class PixelsNHWC(nn.Module):
    """The network behind the export contract: [N, 28, 28, 1] in, logits out."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.network(pixels.permute(0, 3, 1, 2))


def shared_weights(network: nn.Module) -> dict[str, np.ndarray]:
    """A network's weights in the shared layout (`fmnist.weight_layout`): its state dict, numpy."""
    return {k: v.detach().cpu().numpy().copy() for k, v in network.state_dict().items()}


def float32_model(config: Config, weights: dict[str, np.ndarray]) -> PixelsNHWC:
    """The config's network with these weights, float32, in eval mode, behind the NHWC input."""
    return PixelsNHWC(load_shared_weights(build_network(config), weights, "float32")).eval()


def export_onnx(config: Config, weights: dict[str, np.ndarray], path: Path) -> None:
    """torch's exporter, input `pixels` (NHWC) with a dynamic batch, output `logits`."""
    model = float32_model(config, weights)
    example = torch.zeros(EXAMPLE_BATCH, *IMAGE_SHAPE, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals
        # external_data=False: the weights inside the one file (torch writes a `<file>.data` beside
        # it otherwise, which a renamed export would leave behind, pointing nowhere).
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"pixels": {0: torch.export.Dim(BATCH_DIM)}},
            verbose=False,
            external_data=False,
        )


def inference_runners(network: nn.Module, threads: int) -> dict[str, Callable[[np.ndarray], Any]]:
    """A run's network, float32, called as torch users call it, on NHWC float32 pixels."""
    model = PixelsNHWC(network.float().to(memory_format=torch.contiguous_format)).eval()
    torch.set_num_threads(threads)

    def forward(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    return {"torch: inference_mode forward": forward}


def export_versions() -> dict[str, str]:
    """torch's and its exporter's versions."""
    import onnxscript

    return {"torch": torch.__version__, "onnxscript": onnxscript.__version__}
