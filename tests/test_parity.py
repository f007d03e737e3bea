"""`fmnist parity` checks pass on every config for every engine against Lightning, and would
fail if the engines' math differed (stock torch Adam, a wrong batch-norm momentum or epsilon)."""

from pathlib import Path

import pytest

from parity.run import ParityResult, call, format_table, lockstep_runs, run_parity, without_dropout
from parity.checks import lockstep_batches
from parity.tolerance import _max_diff, _rel
from fmnist.config import OptimizerConfig, config_from_dict, config_to_dict, load_config
from fmnist.engine_job import run_jobs
from fmnist.splits import Split

REPO = Path(__file__).resolve().parents[1]
CHECKS = {"baseline": 13, "batchnorm": 17, "fast": 13, "improved": 23, "strong": 23}
PAIR = ("keras", "lightning")
ENGINES = ("keras-jax", "keras-torch")  # Keras' other backends, each against Lightning


@pytest.fixture
def data(tiny_images):
    images, labels = tiny_images
    return images, Split(images, labels)


def assert_passes(result, name):
    failed = [c for c in result.checks if not c.passed]
    assert not failed, failed
    assert len(result.checks) >= CHECKS[name]
    assert all(row["match"] for row in result.layers)


# Keras on TensorFlow and Lightning share the test's process (torch was loaded first).
# strong.yaml's lockstep in float64 takes the longest by far: the slow tier, which CI runs too.
@pytest.mark.parametrize(
    "name", ["baseline", "batchnorm", "fast", "improved", pytest.param("strong", marks=pytest.mark.slow)]
)
def test_parity_passes(name, data):
    config = load_config(REPO / "configs" / f"{name}.yaml")
    assert_passes(run_parity(config, data[0], data[1], steps=6, batch_size=32, in_process=True), name)


# Keras on JAX and on torch, each in a process of its own (fmnist.engine_job), as the command runs
# them: batch norm (where Keras' backends differed, docs/parity.md), AdamW with augmentation
# (improved) and the deep network (strong), in the slow tier (80 s each or more); the default tier
# holds both engines to the contract, float64 logits and lockstep included (test_engines.py). Every
# config at full size: docs/results/engines-2026-12-04/parity.
@pytest.mark.slow
@pytest.mark.parametrize("engine, name", [(e, n) for n in ("batchnorm", "improved", "strong") for e in ENGINES])
def test_parity_passes_on_every_keras_engine(engine, name, data):
    config = load_config(REPO / "configs" / f"{name}.yaml")
    result = run_parity(config, data[0][:50], data[1], steps=4, batch_size=32, engines=(engine, "lightning"))
    assert_passes(result, name)
    assert any(f"keras_backend {engine.removeprefix('keras-')}" in n for n in result.notes), result.notes


def _lockstep(config, train, steps, dtype):
    """Both engines in this process (so a test can plant a fault), from Keras' own draws."""
    weights = run_jobs([("keras", [call("initial_weights", config)])], in_process=True)[0]["results"][0]
    batches = lockstep_batches(config, train, steps, 32)
    return lockstep_runs([(config, dtype)], weights, batches, PAIR, in_process=True)[0]


def test_lockstep_detects_stock_torch_adam(data, baseline_config, monkeypatch):
    """Swap in torch.optim.Adam (epsilon after bias correction): the loss check must notice."""
    import torch

    import torch_blocks.optim as optim

    monkeypatch.setattr(
        optim,
        "KerasAdam",
        lambda params, lr, beta_1, beta_2, epsilon, **_: torch.optim.Adam(
            params, lr=lr, betas=(beta_1, beta_2), eps=epsilon
        ),
    )
    config = without_dropout(baseline_config, OptimizerConfig(name="adam", epsilon=1e-3))
    run = _lockstep(config, data[1], steps=6, dtype="float64")
    assert max(_rel(run["keras"]["loss"], run["lightning"]["loss"])) > 1e-5


def test_lockstep_detects_a_batch_norm_convention_mismatch(data, monkeypatch):
    """torch's own default momentum (0.1) instead of the converted 0.01: running stats diverge."""
    import torch_blocks.network as network

    raw = config_to_dict(load_config(REPO / "configs" / "batchnorm.yaml"))
    config = without_dropout(config_from_dict(raw))
    original = network._module

    def wrong_momentum(spec):
        module = original(spec)
        if spec.kind == "batch_norm":
            module.momentum = 0.1
        return module

    monkeypatch.setattr(network, "_module", wrong_momentum)
    run = _lockstep(config, data[1], steps=3, dtype="float64")
    assert max(_max_diff(run["keras"]["running"], run["lightning"]["running"]).values()) > 1e-3


def test_result_fails_when_any_check_fails():
    result = ParityResult()
    result.add("a", 1e-7, 1e-5)
    result.add("b", 2e-5, 1e-5)
    assert not result.passed and result.to_dict()["checks"][1]["passed"] is False


def test_keras_exact_batch_norm_keeps_the_biased_running_variance():
    import torch

    from torch_blocks.network import KerasBatchNorm2d

    bn = KerasBatchNorm2d(3, eps=1e-3, momentum=0.5).train()
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64)
    out = bn.double()(x)
    biased = x.var(dim=(0, 2, 3), unbiased=False)
    assert torch.allclose(bn.running_var, 0.5 * torch.ones(3, dtype=torch.float64) + 0.5 * biased)
    assert torch.allclose(bn.running_mean, 0.5 * x.mean(dim=(0, 2, 3)))
    expected = (x - x.mean(dim=(0, 2, 3), keepdim=True)) / torch.sqrt(biased.view(1, 3, 1, 1) + 1e-3)
    assert torch.allclose(out, expected)


def test_keras_batch_norm_statistics_in_float32_match_a_direct_computation():
    """The batch variance is recovered from the normalisation's 1/sqrt(var + eps), not computed
    apart: in float32 it must still match var_mean closely, and a constant channel's is never
    negative (with eps 0.013 the recovered value rounds to -9e-10)."""
    import torch

    from torch_blocks.network import KerasBatchNorm2d

    torch.manual_seed(0)
    x = torch.randn(16, 4, 7, 7) * torch.tensor([1.0, 30.0, 0.05, 0.0]).view(1, 4, 1, 1) + 2.0
    bn = KerasBatchNorm2d(4, eps=0.013, momentum=1.0).train()  # momentum 1: the running stats are the batch's
    bn(x)
    var, mean = torch.var_mean(x, dim=(0, 2, 3), unbiased=False)
    torch.testing.assert_close(bn.running_mean, mean, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(bn.running_var, var, rtol=1e-4, atol=1e-8)
    assert 0 <= bn.running_var[3] < 1e-8


def test_table_shows_tolerances_to_three_digits():
    """A pass with the value just under its tolerance must read so: 0.00143 printed as 0.001
    beside 0.00138 once looked like a pass above the limit."""
    result = ParityResult()
    result.add("loss over 10 steps", 0.00138, 0.00143)
    row = format_table(result).splitlines()[1]
    assert "pass" in row and "0.00138" in row and "0.00143" in row


def test_weight_transfer_check_detects_a_batch_norm_epsilon_mismatch(data, monkeypatch):
    """torch's default epsilon (1e-5) instead of Keras' 1e-3: both precisions must fail, the
    float32 tolerance (scaled by rounding) must not absorb it."""
    import torch_blocks.network as network

    config = load_config(REPO / "configs" / "batchnorm.yaml")
    original = network._module

    def wrong_epsilon(spec):
        module = original(spec)
        if spec.kind == "batch_norm":
            module.eps = 1e-5
        return module

    monkeypatch.setattr(network, "_module", wrong_epsilon)
    result = run_parity(config, data[0][:50], data[1], steps=1, batch_size=32, in_process=True)
    transfer = [c for c in result.checks if c.name.startswith("weight transfer")]
    assert len(transfer) == 4 and not any(c.passed for c in transfer), transfer
