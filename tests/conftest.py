"""Shared fixtures. torch (with torch._dynamo, which loads triton) is imported before anything
can import TensorFlow: the other order segfaults on the first optimizer step in one process."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

try:
    import torch  # noqa: F401
    import torch._dynamo  # noqa: F401
except ImportError:  # the core's tests run without torch
    pass

from fmnist.quiet import tensorflow_environment  # noqa: E402

tensorflow_environment()  # before any test module imports TensorFlow (via Keras)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The real Fashion-MNIST files (FMNIST_DATA_DIR, as the Makefile and CI set it). Missing, every
    test that needs them fails with the way out: a suite that skipped most of itself would pass."""
    path = os.environ.get("FMNIST_DATA_DIR") or str(REPO.parent / "shared" / "data" / "fashion-mnist")
    if not (Path(path) / "train-images-idx3-ubyte.gz").exists():
        pytest.fail(
            f"real Fashion-MNIST data not found in {path}: set FMNIST_DATA_DIR to the folder with the"
            " four IDX files (`fmnist data` downloads them to the user cache and says where)",
            pytrace=False,
        )
    return Path(path)


@pytest.fixture(scope="session")
def baseline_config():
    from fmnist.config import load_config

    return load_config(REPO / "configs" / "baseline.yaml")


@pytest.fixture(scope="session")
def bn_same_stride_config(baseline_config):
    """Batch norm, 'same' padding with stride 2 (asymmetric in TF), two convs in a block."""
    from fmnist.config import config_from_dict, config_to_dict

    raw = config_to_dict(baseline_config)
    raw["model"]["conv_blocks"] = [
        {"filters": 8, "kernel_size": 3, "padding": "same", "stride": 2, "batch_norm": True, "pool": 0},
        {"filters": 16, "kernel_size": 3, "padding": "same", "convs": 2, "batch_norm": True, "pool": 2, "dropout": 0.1},
    ]
    raw["model"]["dense"] = [32]
    return config_from_dict(raw)


#: /proc/cpuinfo of a CPU without bfloat16 instructions (the frameworks emulate it) and of one with them.
AVX2_CPU = "processor\t: 0\nmodel name\t: AMD EPYC 7R32\nflags\t\t: fpu sse2 avx avx2 fma\n"
AMX_CPU = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum\nflags\t\t: avx2 fma avx512f amx_bf16 amx_tile\n"
AVX512_BF16_CPU = "processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: avx2 fma avx512f avx512_bf16\n"


@pytest.fixture
def fake_cpu(monkeypatch, tmp_path):
    """fake_cpu(cpuinfo_text): this process reads that /proc/cpuinfo from now on
    (`fmnist.cpu_features`, and through it the precision rule and the benchmark's choices)."""
    from fmnist import cpu_features

    real = cpu_features._cpuinfo_field

    def fake(text: str) -> None:
        path = tmp_path / "fake-cpuinfo"
        path.write_text(text)
        monkeypatch.setattr(cpu_features, "_cpuinfo_field", lambda name, _path=None: real(name, path))

    return fake


@pytest.fixture
def tiny_images() -> tuple[np.ndarray, np.ndarray]:
    """200 random 28x28 uint8 images with balanced labels: enough for shape and overfit tests."""
    rng = np.random.default_rng(0)
    labels = np.arange(200, dtype=np.uint8) % 10
    return rng.integers(0, 256, size=(200, 28, 28), dtype=np.uint8), labels


def _run_fmnist(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600, check: bool = False
) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "fmnist"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "fmnist_cli"]
    result = subprocess.run(
        [*cmd, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env={**os.environ, **(env or {})}
    )
    if check and result.returncode != 0:
        raise AssertionError(f"fmnist {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="session")
def fmnist():
    """Runs the `fmnist` command in a fresh process and fails the test, with its stderr, unless it
    exits 0: fmnist(*args, cwd=None, env=None, timeout=600, check=True) -> CompletedProcess."""
    return functools.partial(_run_fmnist, check=True)


@pytest.fixture(scope="session")
def fmnist_cli():
    """Runs the `fmnist` command in a fresh process: fmnist_cli(*args, cwd=None, env=None) ->
    CompletedProcess (text, stdout and stderr captured); the exit code is the caller's to check."""
    return _run_fmnist


@pytest.fixture
def one_line_error():
    """Checks a refused command: exit 2, no traceback, and its last stderr line is `fmnist: error:
    ...` holding every part given; returns that line."""

    def check(result, *parts: str) -> str:
        shown = f"exit code {result.returncode}, stderr:\n{result.stderr[-3000:]}"
        assert result.returncode == 2, shown
        assert "Traceback" not in result.stderr + result.stdout, shown
        line = result.stderr.strip().splitlines()[-1]
        assert line.startswith("fmnist: error: "), shown
        for part in parts:
            assert part in line, f"{part!r} not in the message; {shown}"
        return line

    return check


def _tiny_run(engine: str, root: Path, data_dir: Path) -> Path:
    """A finished run of the baseline network, 2 epochs on 3,000 images (seconds on CPU)."""
    from fmnist_cli.main import main

    run_dir = root / f"tiny-{engine}"
    code = main(
        [
            "train",
            "--engine",
            engine,
            "--config",
            str(REPO / "configs" / "baseline.yaml"),
            "--epochs",
            "2",
            "--limit-train",
            "3000",
            "--limit-test",
            "1000",
            "--run-dir",
            str(run_dir),
            "--data-dir",
            str(data_dir),
        ]
    )
    assert code == 0, f"training the tiny {engine} run failed"
    return run_dir


@pytest.fixture(scope="session")
def keras_run(tmp_path_factory, real_data_dir) -> Path:
    """A finished tiny Keras run, trained once per session; tests copy it before changing it."""
    return _tiny_run("keras", tmp_path_factory.mktemp("runs"), real_data_dir)


@pytest.fixture(scope="session")
def lightning_run(tmp_path_factory, real_data_dir) -> Path:
    """A finished tiny Lightning run, trained once per session; tests copy it before changing it."""
    return _tiny_run("lightning", tmp_path_factory.mktemp("runs"), real_data_dir)


def write_contract_onnx(path: Path, engine: str, weights: np.ndarray, bias: np.ndarray, test_accuracy: float) -> Path:
    """A tiny linear classifier that keeps `fmnist export`'s contract (input `pixels` [batch, 28, 28,
    1] raw 0-255, output `logits` [batch, 10], the metadata keys): a stand-in for an export where a
    test needs a model file in milliseconds, not a trained network."""
    import json

    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from fmnist import CLASS_NAMES

    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["pixels", "shape"], ["flat"]),
            helper.make_node("Mul", ["flat", "scale"], ["x"]),
            helper.make_node("MatMul", ["x", "w"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["logits"]),
        ],
        "contract",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 28, 28, 1])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [
            numpy_helper.from_array(np.array([-1, 784], np.int64), "shape"),
            numpy_helper.from_array(np.array(1 / 255, np.float32), "scale"),
            numpy_helper.from_array(weights.astype(np.float32), "w"),
            numpy_helper.from_array(bias.astype(np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    meta = {
        "class_names": json.dumps(list(CLASS_NAMES)),
        "config": (REPO / "configs" / "baseline.yaml").read_text(),
        "test_accuracy": str(test_accuracy),
        "engine": engine,
        "run": f"contract-{engine}",
    }
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def contract_models(tmp_path_factory) -> dict[str, Path]:
    """Two contract-keeping .onnx files, "keras" and "lightning", close enough to agree on most
    images and far enough apart to disagree on some (`write_contract_onnx`)."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    folder = tmp_path_factory.mktemp("contract-models")
    rng = np.random.default_rng(17)
    weights, bias = rng.normal(0, 0.05, (784, 10)), rng.normal(0, 0.1, 10)
    return {
        "keras": write_contract_onnx(folder / "keras.onnx", "keras", weights, bias, 0.5),
        "lightning": write_contract_onnx(
            folder / "lightning.onnx", "lightning", weights + rng.normal(0, 0.01, weights.shape), bias, 0.5
        ),
    }


_BLOCKER = """
import sys
BLOCKED = {blocked!r}
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked for this test: {{name}}")
sys.meta_path.insert(0, Blocker())
"""


def _run_with_blocked_imports(blocked: tuple[str, ...], code: str, timeout: float = 600):
    script = _BLOCKER.format(blocked=tuple(blocked)) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout, cwd=REPO)


@pytest.fixture(scope="session")
def run_with_blocked_imports():
    """Runs Python code in a fresh process where the named top-level packages cannot be imported
    (its own children are not affected): run_with_blocked_imports(blocked, code) -> CompletedProcess."""
    return _run_with_blocked_imports


@pytest.fixture(scope="module")
def scratch():
    """A folder for files written by hypothesis examples (function-scoped tmp_path cannot be used)."""
    with tempfile.TemporaryDirectory(prefix="fmnist-fuzz-") as folder:
        yield Path(folder)
