"""bf16 parity: the committed dtype table still describes both frameworks, the bf16 checks pass,
and a rounding placed differently on one side fails them with the layer named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from compare import bf16_dtypes, bf16_parity
from compare.parity import ParityResult
from fmnist.config import load_config
from fmnist.datasets import load_fashion_mnist
from fmnist.splits import make_splits

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def improved():
    return load_config(REPO / "configs" / "improved.yaml")


@pytest.fixture(scope="module")
def train(real_data_dir, improved):
    return make_splits(load_fashion_mnist(real_data_dir), improved).train


@pytest.mark.parametrize("name", bf16_dtypes.TABLE_CONFIGS)
def test_live_dtypes_match_the_committed_table(name):
    """A policy change in either framework (a new float32 island, a cast moved) fails here; then
    `python -m compare.bf16_dtypes` measures again and docs/parity.md says what changed."""
    live = bf16_dtypes.comparable(bf16_dtypes.measure(load_config(REPO / "configs" / f"{name}.yaml")))
    committed = bf16_dtypes.comparable(bf16_dtypes.load_committed(name))
    assert live["rows"] == committed["rows"]
    assert live["experiments"] == committed["experiments"]


def test_ulp_difference_counts_bfloat16_ulps():
    a = np.array([1.0, 2.0, 0.5, 1e-6], np.float32)
    assert bf16_parity.ulp_difference(a, a) == (0.0, 0.0)
    one_ulp = a.copy()
    one_ulp[0] = 1 + 2**-7  # the next bfloat16 after 1
    share, ulps = bf16_parity.ulp_difference(a, one_ulp)
    assert share == 0.25 and ulps == 1.0
    tiny = a.copy()
    tiny[3] = 2e-6  # far below the layer's RMS: a float32 cancellation, not a rounding
    assert bf16_parity.ulp_difference(a, tiny)[0] == 0.0


def test_bf16_parity_passes_on_a_small_batch(improved, train):
    result = bf16_parity.run_bf16_parity(improved, train, images=32, steps=3, batch_size=32)
    assert result.passed, [c for c in result.checks if not c.passed]
    assert [r["layer"] for r in result.layers if r["compared"]][:2] == ["normalize", "block1_conv1"]


def _layer_check(config, train, network=None) -> ParityResult:
    result = ParityResult()
    bf16_parity.add_layer_check(result, bf16_parity.layer_by_layer(config, train.images[:32].astype(np.float32),
                                                                   network), 32)
    return result


def test_batch_norm_in_bf16_on_one_side_fails_and_is_named(improved, train, monkeypatch):
    """torch's batch norm made to compute in bfloat16 (Keras keeps its float32 island)."""
    import torch.nn.functional as F

    from lightning_model.network import KerasBatchNorm2d

    def bf16_batch_norm(self, x):
        return F.batch_norm(x, None, None, self.weight.to(x.dtype), self.bias.to(x.dtype), True, 0.0, self.eps)

    monkeypatch.setattr(KerasBatchNorm2d, "forward", bf16_batch_norm)
    result = _layer_check(improved, train)
    assert not result.passed
    assert "first layer beyond rounding: block1_bn1" in result.checks[0].detail


def test_normalisation_in_bf16_on_one_side_fails_and_is_named(improved, train, monkeypatch):
    """Keras' input normalisation back in bfloat16 (as before this check existed)."""
    import keras_model.model

    monkeypatch.setattr(keras_model.model, "FLOAT32_IN_MIXED_PRECISION", ("dropout",))
    result = _layer_check(improved, train)
    assert not result.passed
    assert "first layer beyond rounding: normalize (bfloat16 in Keras, float32 in torch)" in result.checks[0].detail


def test_cli_bf16_parity_exits_0_and_writes_its_report(real_data_dir, tmp_path):
    from fmnist.cli import main

    code = main(["parity", "--config", str(REPO / "configs" / "fast.yaml"), "--precision", "bf16-mixed",
                 "--images", "16", "--steps", "2", "--out", str(tmp_path), "--data-dir", str(real_data_dir)])
    assert code == 0
    report = json.loads((tmp_path / "parity-bf16-mixed.json").read_text())
    assert report["precision"] == "bf16-mixed" and report["passed"]
    assert {r["layer"] for r in report["layers"]} >= {"normalize", "dense1", "logits"}
