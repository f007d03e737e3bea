"""The torch network's speed-ups change no number: the ReLU moved behind the max-pool gives
bit-identical logits and gradients, channels_last and bf16-mixed are config switches that both
engines honour, and bf16 predictions come out as float32."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from fmnist.config import with_overrides


def _reference(network: nn.Sequential) -> nn.Sequential:
    """The literal layer order of the plan (ReLU, then max-pool), sharing the network's modules."""
    from torch_blocks.network import MaxPoolReLU, ReLUAfterPool

    mods = OrderedDict()
    for name, module in network.named_children():
        if isinstance(module, ReLUAfterPool):
            mods[name] = nn.ReLU()
        elif isinstance(module, MaxPoolReLU):
            mods[name] = nn.MaxPool2d(module.kernel_size)
        else:
            mods[name] = module
    return nn.Sequential(mods)


@pytest.mark.parametrize("which", ["baseline", "bn_same_stride"])
def test_relu_after_pool_is_bit_identical(which, baseline_config, bn_same_stride_config):
    from torch_blocks.network import MaxPoolReLU, build_network

    config = baseline_config if which == "baseline" else bn_same_stride_config
    torch.manual_seed(0)
    network = build_network(config).eval()  # eval: no dropout masks to line up
    assert any(isinstance(m, MaxPoolReLU) for m in network.modules())
    reference = _reference(network)
    # Values around zero and exact ties (integers) stress the max/ReLU ordering.
    x = torch.randint(0, 4, (16, 1, 28, 28)).float() * 60.0
    y = torch.arange(16) % 10
    outs, grads = [], []
    for model in (network, reference):
        model.zero_grad(set_to_none=True)
        logits = model(x)
        nn.functional.cross_entropy(logits, y).backward()
        outs.append(logits.detach().clone())
        grads.append([p.grad.clone() for p in model.parameters()])
    assert torch.equal(outs[0], outs[1])
    assert all(torch.equal(a, b) for a, b in zip(*grads))


def test_channels_last_gives_the_same_logits(baseline_config, tiny_images):
    from lightning_model.module import FashionClassifier

    plain = FashionClassifier.from_config(baseline_config).eval()
    fast = FashionClassifier.from_config(with_overrides(baseline_config, {"train.channels_last": True})).eval()
    fast.load_state_dict(plain.state_dict())
    assert fast.network[1].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.from_numpy(tiny_images[0][:32]).unsqueeze(1).float()
    with torch.no_grad():
        np.testing.assert_allclose(fast(x).numpy(), plain(x).numpy(), atol=1e-4, rtol=1e-5)


def test_bf16_mixed_predicts_float32_in_both_engines(baseline_config, tiny_images, tmp_path):
    import keras

    from fmnist.architecture import layer_plan
    from keras_model.model import FLOAT32_IN_MIXED_PRECISION, build_model
    from lightning_model.module import FashionClassifier

    config = with_overrides(baseline_config, {"train.precision": "bf16-mixed"})
    model = build_model(config)
    kinds = {spec.name: spec.kind for spec in layer_plan(config)}
    # float32 islands (docs/parity.md): the input normalisation and dropout, as in the torch network
    assert {layer.name: layer.dtype_policy.name for layer in model.layers} == {
        name: "float32" if kind in FLOAT32_IN_MIXED_PRECISION else "mixed_bfloat16" for name, kind in kinds.items()
    }
    assert all(w.dtype == "float32" for w in model.weights)  # weights stay float32
    assert {layer.dtype_policy.name for layer in build_model(baseline_config).layers} == {"float32"}

    module = FashionClassifier.from_config(config).eval()
    x = torch.from_numpy(tiny_images[0][:8]).unsqueeze(1).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert module(x).dtype == torch.bfloat16
        assert module.predict_step((x,), 0).dtype == torch.float32
    assert keras.backend.backend()  # keras imported after torch (import-order trap)


def test_batch_norm_under_bf16_autocast_computes_in_float32():
    """As Keras' BatchNormalization under mixed_bfloat16: a bfloat16 input is normalised, and its
    running statistics updated, in float32; the output goes back to bfloat16."""
    from torch_blocks.network import KerasBatchNorm2d

    torch.manual_seed(0)
    x = (torch.randn(8, 4, 6, 6) * 3 + 1).to(torch.bfloat16)
    mixed, full = KerasBatchNorm2d(4, momentum=0.01), KerasBatchNorm2d(4, momentum=0.01)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = mixed(x)
    expected = full(x.float())
    assert out.dtype == torch.bfloat16 and mixed.running_var.dtype == torch.float32
    torch.testing.assert_close(mixed.running_mean, full.running_mean, rtol=0, atol=0)
    torch.testing.assert_close(mixed.running_var, full.running_var, rtol=0, atol=0)
    torch.testing.assert_close(out, expected.to(torch.bfloat16), rtol=0, atol=0)
    mixed.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert mixed(x).dtype == torch.bfloat16


# improved.yaml has every switch of fast.yaml and more: fast.yaml's own end-to-end runs go to the
# slow tier, which CI runs too.
@pytest.mark.parametrize("config_name", [pytest.param("fast", marks=pytest.mark.slow), "improved"])
@pytest.mark.parametrize("engine", ["keras", "lightning"])
def test_fast_config_trains_saves_and_reevaluates(engine, config_name, real_data_dir, tmp_path, fmnist):
    """configs/fast.yaml (bf16-mixed asked for, channels_last, one-cycle per step) and configs/improved.yaml
    (the same switches with batch norm, augmentation, AdamW, label smoothing, early stopping) end
    to end: the saved model re-loads and `evaluate` reproduces the test accuracy it was trained to."""
    import json
    from pathlib import Path

    import yaml

    run_dir = tmp_path / engine
    config = Path(__file__).resolve().parents[1] / "configs" / f"{config_name}.yaml"
    fmnist(
        "train",
        "--engine",
        engine,
        "--config",
        str(config),
        "--limit-train",
        "300",
        "--limit-test",
        "100",
        "--epochs",
        "1",
        "--precision",
        "bf16-mixed",  # the recipes say auto (float32 on a CPU without bf16): bf16 end to end on every CPU
        "--run-dir",
        str(run_dir),
        "--data-dir",
        str(real_data_dir),
    )
    fmnist("evaluate", str(run_dir), "--data-dir", str(real_data_dir))
    trained = json.loads((run_dir / "test_metrics.json").read_text())
    evaluated = json.loads((run_dir / "evaluation.json").read_text())
    assert evaluated["test_accuracy"] == trained["test_accuracy"]
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())["train"]
    assert saved["precision"] == "bf16-mixed" and saved["channels_last"] is True
