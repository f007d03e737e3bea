"""`build_network(config)`: the config's network as a plain torch module taking raw pixels (NCHW).

The one torch network of the project: Lightning's module wraps it, the plain PyTorch loop trains it,
parity, export and the benchmarks build it. Layer names follow `fmnist.architecture.layer_plan`,
the same names the Keras model uses.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fmnist.architecture import LayerSpec, layer_plan, same_padding
from fmnist.config import Config


class Normalize(nn.Module):
    """x * (1/std) + (-mean/std), the same float32 operations as Keras' Rescaling layer."""

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(1.0 / std, dtype=torch.float32))
        self.register_buffer("offset", torch.tensor(-mean / std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.offset


class TFSameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's 'same' padding, which puts the odd pixel at the bottom/right.

    torch's own padding='same' refuses stride > 1, and symmetric padding would shift every
    output by half a pixel relative to Keras.
    """

    def __init__(self, *args, in_hw: tuple[int, int], **kwargs) -> None:
        super().__init__(*args, padding=0, **kwargs)
        k, s = self.kernel_size[0], self.stride[0]
        top, bottom = same_padding(in_hw[0], k, s)
        left, right = same_padding(in_hw[1], k, s)
        self.pad = (left, right, top, bottom)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pad))


class KerasBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose running variance follows Keras: the biased batch variance.

    torch updates running_var with the unbiased estimate (n / (n - 1) times larger), Keras with
    the biased one; the difference is ~1/(B*H*W) of each update, small but measurable in the
    parity check. Normalisation in training mode is the same in both (biased batch variance).

    Under bf16 autocast the input is bfloat16; like Keras' BatchNormalization under a mixed
    policy, the statistics and the normalisation are computed in the running buffers' dtype
    (float32) and the result is cast back to the input's dtype.

    Speed, same math: the batch statistics come from the normalisation's own pass (its saved mean
    and 1/sqrt(var + eps)), not a second pass over the activations (docs/speed.md).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        if dtype in (torch.bfloat16, torch.float16):  # float32 and float64 (parity) run as they are
            x = x.to(self.running_mean.dtype)
        if not self.training:
            return super().forward(x).to(dtype)
        out, mean, invstd = torch.native_batch_norm(x, self.weight, self.bias, None, None, True, 0.0, self.eps)
        with torch.no_grad():
            # The biased batch variance, in the statistics' dtype: off by a few float32 ulps of eps, so
            # a constant channel's can round to just below zero (eps 0.013: -9e-10); never below.
            var = (invstd.pow(-2) - self.eps).clamp_(min=0)
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var, self.momentum)
            self.num_batches_tracked.add_(1)
        return out.to(dtype)


class Float32Dropout(nn.Dropout):
    """Dropout in float32 under bf16/fp16 autocast: the mask and the exact 1 / (1 - p) scale in
    float32, the result rounded once to the input's dtype. Keras' Dropout runs in float32 under
    the mixed policy too (keras_model.model.FLOAT32_IN_MIXED_PRECISION); in bfloat16 the scale
    1 / 0.9 would round to 1.109375. float32 and float64 inputs run as plain nn.Dropout."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype in (torch.bfloat16, torch.float16):
            return super().forward(x.float()).to(x.dtype)
        return super().forward(x)


class ReLUAfterPool(nn.Identity):
    """The ReLU slot of a ReLU -> max-pool pair: the pool applies the ReLU after pooling.

    Max and ReLU commute exactly (both monotone), so relu(pool(x)) equals pool(relu(x)) bit for
    bit, gradients included; on the pooled tensor the ReLU and its backward touch a quarter of
    the memory, a fifth of a CPU training step. The slot keeps the layer names of the Keras model.
    """


class MaxPoolReLU(nn.MaxPool2d):
    """Max-pool, then the ReLU deferred from the slot before it (see `ReLUAfterPool`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(super().forward(x), inplace=True)  # the pool's backward needs its indices, not its output


def _conv(a: dict) -> nn.Conv2d:
    k, s = a["kernel_size"], a["stride"]
    common = dict(in_channels=a["in_channels"], out_channels=a["filters"], kernel_size=k, stride=s, bias=a["use_bias"])
    if a["padding"] == "valid":
        return nn.Conv2d(padding=0, **common)
    pads = same_padding(a["in_hw"][0], k, s) + same_padding(a["in_hw"][1], k, s)
    if len(set(pads)) == 1:  # symmetric: plain padding is the same math, and faster
        return nn.Conv2d(padding=pads[0], **common)
    return TFSameConv2d(in_hw=a["in_hw"], **common)


def _module(spec: LayerSpec) -> nn.Module:
    a = spec.args
    if spec.kind == "normalize":
        return Normalize(a["mean"], a["std"])
    if spec.kind == "conv":
        return _conv(a)
    if spec.kind == "batch_norm":
        # Keras momentum m keeps m of the old running value; torch's momentum is the new share.
        return KerasBatchNorm2d(a["channels"], eps=a["epsilon"], momentum=1.0 - a["momentum"])
    if spec.kind == "relu":
        return nn.ReLU()
    if spec.kind == "max_pool":
        return nn.MaxPool2d(a["pool"])
    if spec.kind == "dropout":
        return Float32Dropout(a["rate"])
    if spec.kind == "flatten":
        return nn.Flatten()  # C, H, W order; fmnist.weight_layout maps Keras' H, W, C
    if spec.kind == "dense":
        return nn.Linear(a["in_features"], a["units"])
    raise ValueError(f"unknown layer kind {spec.kind!r}")


def init_weights(network: nn.Module, scheme: str) -> None:
    """Keras' initialisers, not torch's default kaiming-uniform with its a=sqrt(5) bias rule."""
    init = {
        "glorot_uniform": nn.init.xavier_uniform_,
        "he_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    }[scheme]
    for module in network.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            init(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def _modules(plan: list[LayerSpec]) -> list[tuple[str, nn.Module]]:
    """One module per layer of the plan; a ReLU right before a max-pool moves behind it."""
    out = []
    for i, spec in enumerate(plan):
        nxt = plan[i + 1] if i + 1 < len(plan) else None
        prev = plan[i - 1] if i else None
        if spec.kind == "relu" and nxt is not None and nxt.kind == "max_pool":
            out.append((spec.name, ReLUAfterPool()))
        elif spec.kind == "max_pool" and prev is not None and prev.kind == "relu":
            out.append((spec.name, MaxPoolReLU(spec.args["pool"])))
        else:
            out.append((spec.name, _module(spec)))
    return out


def build_network(config: Config) -> nn.Sequential:
    """Raw pixel values in (float32, N x 1 x 28 x 28, 0-255), logits out (N x 10)."""
    network = nn.Sequential(OrderedDict(_modules(layer_plan(config))))
    init_weights(network, config.model.init)
    return network


def load_shared_weights(network: nn.Module, weights: dict[str, np.ndarray], dtype: str) -> nn.Module:
    """Weights in the shared layout (`fmnist.weight_layout`: the state dict's names and shapes)
    into the network, cast to `dtype`; a shape that differs is named."""
    state = network.state_dict()
    for key, value in weights.items():
        if tuple(state[key].shape) != value.shape:
            raise ValueError(f"{key}: torch shape {tuple(state[key].shape)} vs shared-layout shape {value.shape}")
    network.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()}, strict=False)
    return network.to(getattr(torch, dtype))


def training_network(config: Config, device: torch.device | str = "cpu") -> nn.Sequential:
    """`build_network` on `device`, laid out NHWC (channels_last, as TensorFlow lays it out; the
    same math) when the config says: the network a torch engine's loop trains."""
    network = build_network(config).to(device)
    return network.to(memory_format=torch.channels_last) if config.train.channels_last else network
