"""The core's FLOP count (`benchmarks.flops`) against torch's own counter on the network the config
builds: the same forward multiply-adds, layer for layer summed, and the training count's 3 x
forward convention against what torch counts over a real forward and backward pass."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from fmnist.architecture import layer_plan
from fmnist.config import load_config
from benchmarks.flops import FLOPS_PER_MAC, forward_macs, layer_macs, train_flops_per_image

REPO = Path(__file__).resolve().parents[1]


def _counted(network: torch.nn.Module, images: int, backward: bool) -> int:
    """FLOPs torch's FlopCounterMode counts (2 per multiply-add of convs and matmuls) for `images`."""
    network.train(backward)
    x = torch.rand(images, 1, 28, 28) * 255
    with FlopCounterMode(display=False) as counter:
        out = network(x)
        if backward:
            out.sum().backward()
    return counter.get_total_flops()


@pytest.fixture(params=["baseline", "improved", "strong", "bn_same_stride", "overhead"])
def config(request, bn_same_stride_config):
    """The published configs, one with stride 2 and TF's asymmetric 'same' padding, and the
    benchmark's tiny network for Lightning's fixed cost."""
    if request.param == "bn_same_stride":
        return bn_same_stride_config
    if request.param == "overhead":
        return load_config(REPO / "benchmarks" / "configs" / "overhead.yaml")
    return load_config(REPO / "configs" / f"{request.param}.yaml")


def test_the_forward_count_is_torchs(config):
    from torch_blocks.network import build_network

    assert FLOPS_PER_MAC * forward_macs(config) == _counted(build_network(config), 1, backward=False)


def test_the_training_count_is_three_forwards_torch_skips_the_first_input_gradient(config):
    """torch computes no gradient for the first conv's input (the images need none), so its count
    over forward + backward is 3 x forward less that one layer's forward; the convention
    (benchmarks.flops) counts it. Batch of 2: batch norm trains on more than one value."""
    from torch_blocks.network import build_network

    first = next(macs for macs in map(layer_macs, layer_plan(config)) if macs)
    counted = _counted(build_network(config), 2, backward=True) / 2
    assert counted == train_flops_per_image(config) - FLOPS_PER_MAC * first
    assert train_flops_per_image(config) == 3 * FLOPS_PER_MAC * forward_macs(config)


def test_the_baseline_by_hand(baseline_config):
    # conv1 26x26x32 outputs x 9 inputs, conv2 11x11x64 x 3x3x32, dense 1600 x 128, logits 128 x 10
    assert forward_macs(baseline_config) == 26 * 26 * 32 * 9 + 11 * 11 * 64 * 288 + 1600 * 128 + 128 * 10
    assert train_flops_per_image(baseline_config) == 6 * 2_631_040


def test_only_convs_and_dense_layers_count(baseline_config):
    kinds = {spec.kind: layer_macs(spec) for spec in layer_plan(baseline_config)}
    assert kinds["conv"] > 0 and kinds["dense"] > 0
    assert all(kinds[k] == 0 for k in ("normalize", "relu", "max_pool", "dropout", "flatten"))
