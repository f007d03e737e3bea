"""The arithmetic a config's network costs per image, from the same layer plan every engine builds
(`fmnist.architecture.layer_plan`), so a measured images/s becomes achieved FLOP/s and a model
FLOP utilisation (MFU) against a device's peak (`fmnist benchmark`).

Counted: the multiply-adds (MACs) of the convolutions and dense layers, which are nearly all of
the work. Not counted: bias adds, activations, max-pooling, batch norm, dropout, the input
normalisation, the softmax and the loss, nor the optimizer's update; a measured step does these
too, so MFU computed from these counts slightly understates the device's busy share.

Conventions: 2 FLOPs per multiply-add, and a training step costs 3 forward passes per image
(the forward pass, the gradient with respect to each layer's input, and the gradient with
respect to its weights, each as many MACs as the forward). The first layer's input gradient is
counted though no framework computes it (its input is data, not a parameter): the usual
convention, a difference of one layer's forward.
"""

from __future__ import annotations

from fmnist.architecture import LayerSpec, layer_plan
from fmnist.config import Config

FLOPS_PER_MAC = 2
#: forward + input gradient + weight gradient, each the forward's MACs.
TRAIN_PASSES = 3


def layer_macs(spec: LayerSpec) -> int:
    """Multiply-adds of one layer for one image: output elements x the inputs each one sums."""
    if spec.kind == "conv":
        h, w, filters = spec.out_shape
        a = spec.args
        return h * w * filters * a["kernel_size"] ** 2 * a["in_channels"]
    if spec.kind == "dense":
        return spec.args["in_features"] * spec.args["units"]
    return 0  # what the module docstring says is not counted


def forward_macs(config: Config) -> int:
    """Multiply-adds of the network's forward pass for one image."""
    return sum(layer_macs(spec) for spec in layer_plan(config))


def forward_flops_per_image(config: Config) -> int:
    return FLOPS_PER_MAC * forward_macs(config)


def train_flops_per_image(config: Config) -> int:
    """FLOPs of one training image: forward, input gradient and weight gradient (3 x forward)."""
    return TRAIN_PASSES * forward_flops_per_image(config)
