"""The network described once, as an ordered plan of named layers with their output shapes.

Both builders (`keras_model.build_model`, `lightning_model.build_network`) walk this plan, so the
two networks have the same layers under the same names in the same order; weight transfer and
the structure check in `compare/` match layers by these names. Shapes are (H, W, C) for conv
layers whatever the framework's own layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fmnist import IMAGE_SHAPE, NUM_CLASSES
from fmnist.config import Config, ConfigError


@dataclass(frozen=True)
class LayerSpec:
    name: str
    kind: str  # normalize | conv | batch_norm | relu | max_pool | dropout | flatten | dense
    out_shape: tuple[int, ...]
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def num_params(self) -> int:
        """Trainable parameters (batch norm's running statistics are buffers, not counted)."""
        if self.kind == "conv":
            a = self.args
            return a["kernel_size"] ** 2 * a["in_channels"] * a["filters"] + a["use_bias"] * a["filters"]
        if self.kind == "batch_norm":
            return 2 * self.args["channels"]
        if self.kind == "dense":
            return (self.args["in_features"] + 1) * self.args["units"]
        return 0


def conv_out(size: int, kernel: int, stride: int, padding: str) -> int:
    """Output length of a conv along one axis, with Keras/TF 'same' and 'valid' rules."""
    if padding == "same":
        return -(-size // stride)
    return (size - kernel) // stride + 1


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) zero padding TF uses for 'same': the odd pixel goes after (bottom/right).

    torch's padding='same' only allows stride 1 and pads symmetrically, so with stride 2 the
    torch backend pads explicitly with these numbers to match Keras.
    """
    total = max((conv_out(size, kernel, stride, "same") - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def layer_plan(config: Config) -> list[LayerSpec]:
    model = config.model
    h, w = IMAGE_SHAPE
    c = 1
    plan = [LayerSpec("normalize", "normalize", (h, w, c), {"mean": config.data.mean, "std": config.data.std})]
    for b, block in enumerate(model.conv_blocks, start=1):
        for i in range(1, block.convs + 1):
            h_new = conv_out(h, block.kernel_size, block.stride, block.padding)
            w_new = conv_out(w, block.kernel_size, block.stride, block.padding)
            if h_new < 1 or w_new < 1:
                raise ConfigError(
                    f"model.conv_blocks[{b - 1}]: a {block.kernel_size}x{block.kernel_size} conv with"
                    f" padding '{block.padding}' does not fit the {h}x{w} input it gets"
                )
            args = {
                "filters": block.filters,
                "kernel_size": block.kernel_size,
                "stride": block.stride,
                "padding": block.padding,
                "in_channels": c,
                "in_hw": (h, w),
                "use_bias": not block.batch_norm,  # batch norm's beta makes a conv bias redundant
            }
            h, w, c = h_new, w_new, block.filters
            plan.append(LayerSpec(f"block{b}_conv{i}", "conv", (h, w, c), args))
            if block.batch_norm:
                bn = {"channels": c, "momentum": model.batch_norm.momentum, "epsilon": model.batch_norm.epsilon}
                plan.append(LayerSpec(f"block{b}_bn{i}", "batch_norm", (h, w, c), bn))
            plan.append(LayerSpec(f"block{b}_relu{i}", "relu", (h, w, c)))
        if block.pool > 1:
            if h < block.pool or w < block.pool:
                raise ConfigError(f"model.conv_blocks[{b - 1}].pool: {block.pool} is larger than the {h}x{w} input")
            h, w = h // block.pool, w // block.pool
            plan.append(LayerSpec(f"block{b}_pool", "max_pool", (h, w, c), {"pool": block.pool}))
        if block.dropout > 0:
            plan.append(LayerSpec(f"block{b}_dropout", "dropout", (h, w, c), {"rate": block.dropout}))
    plan.append(LayerSpec("flatten", "flatten", (h * w * c,), {"chw": (c, h, w)}))
    features = h * w * c
    for d, units in enumerate(model.dense, start=1):
        plan.append(LayerSpec(f"dense{d}", "dense", (units,), {"units": units, "in_features": features}))
        plan.append(LayerSpec(f"dense{d}_relu", "relu", (units,)))
        if model.dense_dropout > 0:
            plan.append(LayerSpec(f"dense{d}_dropout", "dropout", (units,), {"rate": model.dense_dropout}))
        features = units
    plan.append(LayerSpec("logits", "dense", (NUM_CLASSES,), {"units": NUM_CLASSES, "in_features": features}))
    return plan


def count_params(config: Config) -> int:
    return sum(layer.num_params for layer in layer_plan(config))
