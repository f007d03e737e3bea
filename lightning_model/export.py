"""A Lightning run's network to ONNX with torch's own exporter (`torch.onnx.export`, its default
dynamo path, which needs onnxscript), and the float32 reference it is checked against.

The export takes the same input as the Keras export, NHWC [N, 28, 28, 1] raw pixels: a thin
module permutes to the network's NCHW first, and the exporter records that permute in the graph.
The export is float32: the network's parameters are float32 in every precision (bf16-mixed only
autocasts the compute), and outside a Trainer there is no autocast, so the loaded network run
as it is is the float32 reference.
"""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fmnist import IMAGE_SHAPE
from fmnist.onnx_model import BATCH_DIM, INPUT_NAME, OUTPUT_NAME
from lightning_model.backend import load_module

REFERENCE = "the torch network of the run's checkpoint, float32 weights, eval mode, no autocast"
PREDICT_BATCH = 500
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


def float32_model(run_dir: Path) -> PixelsNHWC:
    """The run's network (loaded by the backend's loader), float32, in eval mode."""
    module = load_module(run_dir)
    network = module.network.to(dtype=torch.float32, memory_format=torch.contiguous_format)
    return PixelsNHWC(network).eval()


def export_onnx(model: PixelsNHWC, path: Path) -> None:
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


@torch.inference_mode()
def logits(model: PixelsNHWC, images: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """The model's logits for raw [N, 28, 28] pixels, in float32 or float64 (a float64 copy)."""
    if dtype != "float32":
        model = copy.deepcopy(model).to(getattr(torch, dtype))
    x = torch.from_numpy(np.asarray(images, dtype=dtype).reshape(-1, *IMAGE_SHAPE, 1))
    return torch.cat([model(x[i : i + PREDICT_BATCH]) for i in range(0, len(x), PREDICT_BATCH)]).double().numpy()


def versions() -> dict[str, str]:
    import lightning
    import onnxscript

    return {"torch": torch.__version__, "lightning": lightning.__version__, "onnxscript": onnxscript.__version__}
