"""bf16 parity: the committed dtype table still describes both frameworks, the bf16 checks pass,
and a rounding placed differently on one side fails them with the layer named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from parity import bf16 as bf16_parity, bf16_dtypes
from parity.run import ParityResult
from fmnist.config import load_config
from fmnist.cpu_features import BF16_KERNEL_KINDS, bf16_kernels
from fmnist.datasets import load_fashion_mnist
from fmnist.splits import make_splits

REPO = Path(__file__).resolve().parents[1]
#: bf16 parity holds where both frameworks run oneDNN's bf16 kernels; elsewhere it must fail, and say why.
PARITY_HOLDS = bf16_kernels() == "avx512"


@pytest.fixture(scope="module")
def improved():
    return load_config(REPO / "configs" / "improved.yaml")


@pytest.fixture(scope="module")
def train(real_data_dir, improved):
    return make_splits(load_fashion_mnist(real_data_dir), improved).train


@pytest.mark.parametrize("name", bf16_dtypes.TABLE_CONFIGS)
def test_live_dtypes_match_the_committed_table(name):
    """A policy change in either framework (a new float32 island, a cast moved) fails here; then
    `python -m parity.bf16_dtypes` measures again and docs/parity.md says what changed. Compared
    with the table of this kind of CPU: which kernels run, and how they round, depends on it."""
    committed = bf16_dtypes.load_committed(name)
    assert committed is not None, f"no committed bf16 table for this CPU kind ({bf16_kernels()})"
    live = bf16_dtypes.comparable(bf16_dtypes.measure(load_config(REPO / "configs" / f"{name}.yaml")))
    committed = bf16_dtypes.comparable(committed)
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


def test_committed_tables_cover_every_cpu_kind_with_the_same_dtypes():
    """Both kinds measured; what they share (the dtypes each op sees) is the same on both, what
    they do not (how kernels round) differs where TensorFlow falls back to Eigen."""
    for name in bf16_dtypes.TABLE_CONFIGS:
        tables = [bf16_dtypes.load_committed(name, kind) for kind in BF16_KERNEL_KINDS]
        assert all(tables), name
        assert tables[0]["rows"] == tables[1]["rows"]
        verdicts = [{e["experiment"]: e["keras"] for e in t["experiments"]} for t in tables]
        assert verdicts[0]["dense forward, bias add included (1024 terms)"] == "float32, one rounding"
        assert verdicts[1]["dense forward, bias add included (1024 terms)"] == "bfloat16 or two roundings"


@pytest.mark.slow  # the default tier runs the same path through the command (test_cli_bf16_parity_...)
def test_bf16_parity_on_a_small_batch_holds_where_the_cpu_has_avx512(improved, train):
    """On AVX-512 every check passes; without it the layer check fails at a conv or dense layer
    (not at a float32 island) and the result says why."""
    result = bf16_parity.run_bf16_parity(improved, train, images=32, steps=3, batch_size=32)
    assert [r["layer"] for r in result.layers if r["compared"]][:2] == ["normalize", "block1_conv1"]
    if PARITY_HOLDS:
        assert result.passed, [c for c in result.checks if not c.passed]
        assert not any("no AVX-512" in n for n in result.notes)
        return
    assert not result.checks[0].passed
    first_bad = next(r for r in result.layers if r["compared"] and not r["passed"])
    assert first_bad["layer"].startswith(("block", "dense", "logits")) and "bn" not in first_bad["layer"]
    assert any("no AVX-512" in n and "docs/parity.md" in n for n in result.notes)


def _layer_check(config, train) -> ParityResult:
    """Check 1 through the engine contract (`bf16_layer_outputs` by engine job), both engines in
    this process, so a fault planted in a engine module shows."""
    result = ParityResult()
    pixels = train.images[:32].astype(np.float32)
    bf16_parity.add_layer_check(result, bf16_parity.layer_by_layer(config, pixels, in_process=True), 32)
    return result


def test_batch_norm_in_bf16_on_one_side_fails_and_is_named(improved, train, monkeypatch):
    """torch's batch norm made to compute in bfloat16 (Keras keeps its float32 island)."""
    import torch.nn.functional as F

    from torch_blocks.network import KerasBatchNorm2d

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


def test_cli_bf16_parity_exit_code_and_report(real_data_dir, tmp_path, capsys):
    """Exit 0 where parity holds (AVX-512), 1 elsewhere with the reason printed; the report either way."""
    from fmnist_cli.main import main

    code = main(
        [
            "parity",
            "--config",
            str(REPO / "configs" / "fast.yaml"),
            "--precision",
            "bf16-mixed",
            "--images",
            "16",
            "--steps",
            "2",
            "--out",
            str(tmp_path),
            "--data-dir",
            str(real_data_dir),
        ]
    )
    assert code == (0 if PARITY_HOLDS else 1)
    report = json.loads((tmp_path / "parity-bf16-mixed.json").read_text())
    assert report["precision"] == "bf16-mixed" and report["passed"] == PARITY_HOLDS
    assert report["notes"][0].startswith("cpu: ")
    assert ("no AVX-512" in capsys.readouterr().out) != PARITY_HOLDS
    assert {r["layer"] for r in report["layers"]} >= {"normalize", "dense1", "logits"}


def test_round_bf16_rounds_as_the_frameworks_cast():
    """compare's numpy rounding (the judge loads no framework) against torch's own cast, ties included."""
    import torch

    from parity.bf16_accumulation import round_bf16

    rng = np.random.default_rng(0)
    values = np.concatenate([rng.standard_normal(100_000) * 10.0 ** rng.integers(-6, 6, 100_000), [0.0, -0.0]])
    ties = (np.arange(1, 2001, dtype=np.uint32) << 16 | 0x8000).view(np.float32)  # exactly halfway
    for a in (values.astype(np.float32), ties):
        expected = torch.from_numpy(a).bfloat16().float().numpy()
        np.testing.assert_array_equal(round_bf16(a).view(np.uint32), expected.view(np.uint32))


@pytest.fixture(scope="module")
def probes():
    """Every engine's answers to the bf16 probes of the contract, each in a process of its own:
    the op log of one step, each layer's output from Lightning's initial weights, the kernels."""
    from parity.bf16_accumulation import kernel_call, kernel_inputs
    from parity.bf16_trace import bf16_config, trace_call
    from parity.run import call, without_dropout
    from fmnist import engines
    from fmnist.engine_job import run_jobs

    config = without_dropout(bf16_config(load_config(REPO / "configs" / "fast.yaml")))
    weights = run_jobs([("lightning", [call("initial_weights", config)])], in_process=True)[0]["results"][0]
    pixels = np.random.default_rng(0).uniform(0, 255, (4, 28, 28)).astype(np.float32)
    arrays = kernel_inputs()
    calls = [
        trace_call(config, batch=2),
        call("bf16_layer_outputs", config, weights=weights, pixels=pixels),
        kernel_call(arrays),
    ]
    found = run_jobs([(e, calls) for e in engines.names()])
    return config, arrays, dict(zip(engines.names(), (f["results"] for f in found)))


@pytest.mark.parametrize("engine", ["keras", "keras-jax", "keras-torch", "pytorch", "lightning"])
def test_every_engine_answers_the_bf16_probes(engine, probes):
    """The contract's bf16 functions: an op log in a vocabulary the table reads, or one line why
    not; every layer's output in the shared layout and its dtype (bfloat16 compute, float32
    islands where the policy puts them); kernels whose numbers the experiments read, or why not."""
    from parity.bf16_accumulation import KERNELS, experiments
    from parity.bf16_table import VOCABULARIES, dtype_rows
    from fmnist.architecture import layer_plan

    config, arrays, found = probes
    trace, layers, kernels = found[engine]
    if trace.get("unavailable"):
        assert trace["ops"] == [] and engine in ("keras-jax", "keras-torch") and "\n" not in trace["unavailable"]
    else:
        assert trace["vocabulary"] in VOCABULARIES and trace["ops"]
        assert {"forward", "backward", "optimizer"} <= {o["phase"] for o in trace["ops"]}
        rows = {r["quantity"]: r["keras"] for r in dtype_rows(config, trace, trace)}
        assert rows["conv: input x weight -> output"] == "bfloat16 x bfloat16 -> bfloat16"
        assert rows["input normalisation (x * scale + offset)"] == "float32"
        assert rows["optimizer update (weights and moments)"] == "float32"
    plan = layer_plan(config)
    assert [r["name"] for r in layers] == [s.name for s in plan]
    reference = found["lightning"][1]
    for spec, row, ref in zip(plan, layers, reference):
        assert row["output"].shape == ref["output"].shape and row["output"].dtype == np.float32, spec.name
        assert row["dtype"] == ("float32" if spec.kind == "normalize" else "bfloat16"), spec.name
    # The same weights give the same function, to bf16 rounding (parity proper is the checks').
    np.testing.assert_allclose(layers[-1]["output"], reference[-1]["output"], atol=0.1)
    if kernels.get("unavailable"):
        assert engine in ("keras-jax", "keras-torch") and "\n" not in kernels["unavailable"]
    else:
        assert {key for _, key in KERNELS} <= set(kernels)
        assert kernels["dense"].shape == (len(arrays["dense_input"]), arrays["dense_kernel"].shape[1])
        verdicts = {e["experiment"]: e["keras"] for e in experiments(arrays, {"keras": kernels})}
        assert verdicts["input normalisation (first conv's input)"] == "float32, one rounding"


@pytest.mark.slow
def test_bf16_parity_holds_keras_on_jax_against_lightning_and_records_where_each_rounds(improved, train):
    """Another Keras engine through the same engine jobs: the checks run, and the dtype table and
    the kernel experiments say where each engine rounds (on JAX, XLA keeps the conv weight
    gradient in float32: docs/parity.md, "bf16 on every Keras engine")."""
    result = bf16_parity.run_bf16_parity(
        improved, train, images=32, steps=3, batch_size=32, engines=("keras-jax", "lightning")
    )
    assert [r["layer"] for r in result.layers if r["compared"]][:2] == ["normalize", "block1_conv1"]
    if PARITY_HOLDS:
        assert result.passed, [c for c in result.checks if not c.passed]
    assert result.dtypes["engines"] == ["keras-jax", "lightning"] and "notes" not in result.dtypes
    assert all("no rule" not in r["keras"] for r in result.dtypes["rows"])
    assert any(n.startswith("keras-jax: ") for n in result.notes)
