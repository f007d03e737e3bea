"""The engines' capabilities (`fmnist.capabilities`): one test body every engine passes, each
engine in a process of its own as the tools run it (`fmnist.engine_job`, through `fmnist.job`); the registry's refusals;
a run trained on Keras' JAX or torch backend loaded in plain Keras on TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from parity.checks import without_dropout
from fmnist import engines
from fmnist.architecture import layer_plan
from fmnist.engine_job import call, job_environment, run_jobs
from fmnist.message import write_message
from fmnist.errors import FmnistError

STEPS, BATCH = 3, 16
#: The engines built on the shared torch blocks: their initial draws are Lightning's, number for number.
TORCH_BLOCKS_ENGINES = ("lightning", "pytorch")


@pytest.fixture(scope="module")
def answers(request):
    """Every engine's answers to the same calls, on a network with batch norm and 'same' padding
    with stride 2, all engines at once."""
    config = request.getfixturevalue("bn_same_stride_config")
    rng = np.random.default_rng(0)  # as the tiny_images fixture, which is a test's own
    images, labels = rng.integers(0, 256, size=(200, 28, 28), dtype=np.uint8), np.arange(200, dtype=np.uint8) % 10
    start = {  # Lightning's own draws, in the shared layout
        k: np.asarray(v)
        for k, v in run_jobs([("lightning", [call("initial_weights", config)])])[0]["results"][0].items()
    }
    x = [images[i * BATCH : (i + 1) * BATCH] for i in range(STEPS)]
    y = [labels[i * BATCH : (i + 1) * BATCH] for i in range(STEPS)]
    calls = [
        call("layer_table", config),
        call("initial_weights", config),
        call("logits", config, weights=start, images=images[:40], dtype="float32"),
        call("lockstep", without_dropout(config), weights=start, images=x, labels=y, dtype="float32"),
        call("logits", config, weights=start, images=images[:40], dtype="float64"),
    ]
    found = run_jobs([(e, calls) for e in engines.names()])
    return config, start, dict(zip(engines.names(), found))


@pytest.mark.parametrize("engine", engines.names())
def test_every_engine_keeps_the_contract(engine, answers):
    config, start, found = answers
    table, weights, logits, steps, logits64 = found[engine]["results"]
    plan = layer_plan(config)
    assert [row["name"] for row in table] == [spec.name for spec in plan]
    trainable = {k for k in start if k.endswith((".weight", ".bias"))}
    running = {k for k in start if k.endswith(("running_mean", "running_var"))}
    assert sum(row["params"] for row in table) == sum(start[k].size for k in trainable)
    # Its own initial weights, in the one shared layout, float32, and not Lightning's draws.
    assert trainable | running <= set(weights)
    assert all(np.asarray(weights[k]).dtype == np.float32 for k in trainable | running)
    if engine in TORCH_BLOCKS_ENGINES:  # the one torch network (torch_blocks), drawn at the seed alike
        assert all(np.array_equal(weights[k], start[k]) for k in trainable)
    else:
        assert not np.array_equal(weights["logits.weight"], start["logits.weight"])
    # The same weights give the same function (parity proper is `fmnist parity`'s).
    reference = found["lightning"]["results"][2]
    assert logits.shape == (40, 10) and np.isfinite(logits).all()
    np.testing.assert_allclose(logits, reference, atol=1e-4)
    # In float64 the same math agrees to its rounding: no part of a model may quietly compute in
    # float32 (Keras off TensorFlow demotes float64 unless told, docs/parity.md).
    np.testing.assert_allclose(logits64, found["lightning"]["results"][4], rtol=0, atol=1e-12)
    assert len(steps["loss"]) == STEPS and all(np.isfinite(steps["loss"]))
    assert set(steps["grads"]) == trainable
    assert set(steps["running"]) == running
    np.testing.assert_allclose(steps["loss"], found["lightning"]["results"][3]["loss"], rtol=1e-3)
    versions = found[engine]["versions"]
    engine = engines.engine(engine).environment.get("KERAS_BACKEND")
    assert versions.get("keras_backend") == engine if engine else "torch" in versions


def test_the_registry_names_every_engine_once_and_refuses_others():
    assert engines.names()[:3] == ("keras", "keras-jax", "keras-torch") and "lightning" in engines.names()
    assert set(engines.DEFAULT_PAIR) <= set(engines.names())
    assert engines.parse_engines(" keras-jax,lightning ") == ("keras-jax", "lightning")
    for text, message in (("keras,flax", "unknown engine 'flax'"), ("keras,keras", "twice"), ("keras", "at least 2")):
        with pytest.raises(FmnistError, match=message):
            engines.parse_engines(text)


def test_one_keras_engine_per_process():
    """Keras reads KERAS_BACKEND once: a second Keras engine in the same process is refused by
    name, before anything runs on the wrong engine."""
    code = (
        "from fmnist import engines\n"
        "from fmnist.errors import FmnistError\n"
        "engines.engine('keras').capability('parity')\n"  # Keras on TensorFlow
        "try:\n"
        "    engines.engine('keras-jax').capability('parity')\n"
        "except FmnistError as e:\n"
        "    print('refused:', e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused: engine 'keras-jax' cannot load in this process" in done.stdout
    assert "KERAS_BACKEND=jax, and this process runs with KERAS_BACKEND=tensorflow" in done.stdout


def test_an_engine_job_refuses_a_call_outside_the_contract(tmp_path):
    request, out = tmp_path / "request.npz", tmp_path / "out"
    write_message(
        request, {"job": "calls", "engine": "lightning", "calls": [{"fn": "train", "config": {}, "kwargs": {}}]}
    )
    done = subprocess.run(
        [sys.executable, "-m", "fmnist.job", str(request), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "not 'train'" in done.stderr
    assert not (out / "result.npz").exists()


# Both in the slow tier (30-55 s each, a training and an export): the default tier stays under
# 10 minutes on two cores; Keras on torch and JAX against plain Keras are checked by CI all the same.
@pytest.mark.slow
@pytest.mark.parametrize("engine", ["keras-jax", "keras-torch"])
def test_a_keras_run_of_another_engine_scores_the_same_in_plain_keras(engine, tmp_path, real_data_dir, fmnist):
    """Trained on JAX or torch, loaded by Keras on TensorFlow (`fmnist evaluate --engine keras`):
    the test accuracy the run reported, and its loss to float32 rounding."""
    run_dir = tmp_path / engine
    fmnist(
        "train", "--engine", engine, "--epochs", "1", "--limit-train", "1000", "--limit-test", "500",
        "--run-dir", str(run_dir), "--data-dir", str(real_data_dir),
    )  # fmt: skip
    info = json.loads((run_dir / "run.json").read_text())
    assert info["engine"] == engine
    reported = json.loads((run_dir / "test_metrics.json").read_text())
    assert reported["versions"]["keras_backend"] == engine.removeprefix("keras-")
    fmnist("evaluate", "--engine", "keras", str(run_dir), "--data-dir", str(real_data_dir))
    evaluated = json.loads((run_dir / "evaluation.json").read_text())
    assert (evaluated["engine"], evaluated["trained_by"]) == ("keras", engine)
    assert reported["test_accuracy"] > 0.5  # it learned something: a real check, not chance (10%)
    assert evaluated["test_accuracy"] == reported["test_accuracy"]
    assert evaluated["test_loss"] == pytest.approx(reported["test_loss"], rel=1e-5)
    if engine == "keras-torch":  # its .keras names Keras' torch optimizer: exported on TensorFlow all the same
        fmnist("export", str(run_dir), "--data-dir", str(real_data_dir))
        exported = json.loads((run_dir / "export.json").read_text())
        assert exported["passed"] and exported["engine"] == engine


def test_every_engine_offers_each_capability_it_declares_whole():
    """Read statically (no framework loads): each module an engine names for a capability defines
    every function of that capability's interface (`fmnist.capabilities`)."""
    import ast
    from pathlib import Path

    from fmnist.capabilities import functions

    for spec in engines.all_engines():
        assert {"training", "parity"} <= set(spec.capabilities), spec.name
        for capability, module in spec.capabilities.items():
            source = Path(__file__).parents[1] / f"{module.replace('.', '/')}.py"
            defined = {
                getattr(node, "name", None) or getattr(getattr(node, "targets", [None])[0], "id", None)
                for node in ast.parse(source.read_text()).body
            }
            defined |= {
                alias.asname or alias.name
                for node in ast.parse(source.read_text()).body
                if isinstance(node, ast.ImportFrom)
                for alias in node.names
            }
            missing = set(functions(capability)) - defined
            assert not missing, f"{module} ({spec.name}'s {capability}) lacks {sorted(missing)}"


def test_a_checkout_that_is_not_installed_finds_its_engines_in_pyproject(monkeypatch):
    """A copy of the tree run without installing it (no entry points in any installed metadata)
    reads its own engines from pyproject.toml's entry-point table."""
    pytest.importorskip("tomllib")
    installed = engines.names()
    monkeypatch.setattr(engines, "entry_points", lambda group: [])
    engines._registry.cache_clear()
    try:
        assert engines.names() == installed
        assert engines.engine("keras").distribution == "(this checkout)"
    finally:
        monkeypatch.undo()
        engines._registry.cache_clear()


def test_a_job_on_the_cpu_sees_no_gpu_and_one_on_a_gpu_gets_its_deterministic_settings(monkeypatch):
    """What each engine declares for a process of its own by device (`Engine.device_environment`):
    on "cpu" no GPU in sight (JAX told by its own switch too), on "cuda" the GPU as the caller sees
    it and deterministic cuBLAS for torch; a job without a device (predict) runs as it always did."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    jax_cpu = job_environment("keras-jax", "cpu")
    assert jax_cpu["CUDA_VISIBLE_DEVICES"] == "" and jax_cpu["JAX_PLATFORMS"] == "cpu"
    assert job_environment("keras", "cpu")["CUDA_VISIBLE_DEVICES"] == ""
    for name in ("keras-torch", "pytorch", "lightning"):
        assert job_environment(name, "cpu")["CUDA_VISIBLE_DEVICES"] == ""
        assert job_environment(name, "cuda")["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    jax_cuda = job_environment("keras-jax", "cuda")
    assert jax_cuda["CUDA_VISIBLE_DEVICES"] == "0" and jax_cuda["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert job_environment("lightning", None) == dict(os.environ)


@pytest.mark.parametrize("engine", ["keras-jax", "lightning"])  # the engines of the GPU image
def test_a_job_told_cuda_refuses_in_one_line_where_its_framework_sees_no_gpu(engine, bn_same_stride_config):
    """No silent fallback to the CPU under the GPU's name: `Parity.placement` refuses, one line."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the refusal is what a machine without one answers")
    with pytest.raises(FmnistError) as refused:
        run_jobs([(engine, [call("layer_table", bn_same_stride_config, device="cuda")])], device="cuda")
    said = str(refused.value)
    assert said.startswith(f"the {engine} engine's job: --device cuda: ") and "sees no GPU" in said
    assert "\n" not in said


def test_the_torch_engines_compute_parity_on_the_cpu_with_nothing_changed():
    import torch

    from fmnist.cpu_features import cpu_model
    from torch_blocks.parity import parity_device, placement

    deterministic = torch.are_deterministic_algorithms_enabled()
    assert parity_device("cpu") == torch.device("cpu") and placement("cpu") == {"device": cpu_model(), "settings": []}
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    with pytest.raises(FmnistError, match="parity computes on cpu or cuda"):
        parity_device("mps")
