"""The device's measured peak: plain square matmuls (`torch.matmul`), float32 and bfloat16, the
denominator of the benchmark's model FLOP utilisation (MFU). A measured peak rather than a
datasheet's: it is what this machine, its thread count and its BLAS reach on the operation
convolutions and dense layers come down to.

The parent (`benchmarks.orchestrate`) calls `measure_peak`, which starts this module as a worker
process of its own (a job of kind "peak", `fmnist.job`), as the measurements are, so
the parent imports no framework; only `gemm_peak`, in the worker, imports torch.

Only the dtypes the measured variants compute in are timed, and bfloat16 not on a CPU that
emulates it (no AVX512-BF16, no AMX: `fmnist.cpu_features`): there a bf16 matmul is a scalar
loop far below what the frameworks' bf16 convolutions reach (minutes for the matrices here), so
it bounds nothing, and the bf16 variants' MFU is left out, marked emulated.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.spawn import run_spec

#: The GEMM peak each `train.precision` is held against (keys: fmnist.config.PRECISIONS).
PEAK_DTYPE = {"float32": "float32", "bf16-mixed": "bfloat16"}
#: n of the n x n matrices: on a small CPU 2048 runs near its peak in a fraction of a second; a
#: GPU needs a larger one to keep its cores busy (a 2048 matmul is over before it is launched).
MATRIX_SIZE = {"cpu": 2048, "cuda": 8192}
WARMUP_MATMULS = 2
TIMED_REPEATS = 5
#: A repeat runs this long at least (several matmuls between synchronisations on a fast device).
MIN_REPEAT_SECONDS = 0.05
METHOD = (
    "torch.matmul of two n x n matrices of random normal values, 2 n^3 FLOPs each; per dtype"
    f" {WARMUP_MATMULS} warm-up matmuls, then {TIMED_REPEATS} timed repeats of as many matmuls as last"
    f" {MIN_REPEAT_SECONDS} s (device synchronised); the peak is the best repeat, the median beside it;"
    " the benchmark's device and torch thread count"
)


def _timed_gflops(torch, a, b, sync) -> dict[str, Any]:
    for _ in range(WARMUP_MATMULS):
        torch.matmul(a, b)
    sync()
    began = time.perf_counter()
    torch.matmul(a, b)
    sync()
    one = time.perf_counter() - began
    per_repeat = max(1, int(MIN_REPEAT_SECONDS / max(one, 1e-9)))
    n = a.shape[0]
    rates = []
    for _ in range(TIMED_REPEATS):
        began = time.perf_counter()
        for _ in range(per_repeat):
            torch.matmul(a, b)
        sync()
        rates.append(2.0 * n**3 * per_repeat / (time.perf_counter() - began) / 1e9)
    return {
        "gflops_per_second": max(rates),
        "median_gflops_per_second": statistics.median(rates),
        "repeats": TIMED_REPEATS,
        "matmuls_per_repeat": per_repeat,
    }


def emulated_dtypes(device: str) -> dict[str, str]:
    """The dtypes `device` emulates, with why: bfloat16 on a CPU without bfloat16 instructions
    (unknown flags: none claimed). Their peak is not measured and their MFU not shown."""
    from fmnist.precision import cpu_device

    cpu = cpu_device()
    if device != "cpu" or cpu.native_bf16 is not False:
        return {}
    return {"bfloat16": f"emulated: {cpu.name} {cpu.evidence}"}


def gemm_peak(spec: dict[str, Any]) -> dict[str, Any]:
    """In the worker: the peak of each dtype `spec["dtypes"]` names (default: every one of
    PEAK_DTYPE); a dtype that fails records its error."""
    import torch

    if spec.get("torch_threads"):
        torch.set_num_threads(int(spec["torch_threads"]))
    # The benchmark's float32 is the config's: TF32 only where it allows it (lightning_model.training).
    torch.set_float32_matmul_precision("high" if spec.get("allow_tf32") else "highest")
    device = torch.device(spec["device"])
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: torch sees no CUDA device")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    n = spec["matrix_size"]
    dtypes = list(spec.get("dtypes") or dict.fromkeys(PEAK_DTYPE.values()))
    out: dict[str, Any] = {
        "matrix_size": n,
        "dtypes": dtypes,
        "device": spec["device"],
        "threads": torch.get_num_threads(),
        "allow_tf32": bool(spec.get("allow_tf32")),
        "method": METHOD,
        "versions": {"torch": torch.__version__},
    }
    generator = torch.Generator(device=device).manual_seed(0)
    for name in dtypes:
        try:
            dtype = getattr(torch, name)
            a, b = (torch.randn(n, n, generator=generator, device=device).to(dtype) for _ in range(2))
            out[name] = _timed_gflops(torch, a, b, sync)
        except Exception as exc:  # one dtype the device cannot do leaves the other's peak
            out[name] = {"error": f"{type(exc).__name__}: {str(exc).strip()[:300]}"}
    return out


def measure_peak(
    device: str,
    torch_threads: int | None,
    allow_tf32: bool,
    timeout: float,
    dtypes: Sequence[str] = tuple(dict.fromkeys(PEAK_DTYPE.values())),
    matrix_size: int | None = None,
) -> dict[str, Any]:
    """In the parent: the GEMM peak of `dtypes` (those `device` emulates left out, each with why)
    from a worker process, on matrix_size x matrix_size matrices (default: MATRIX_SIZE's); never
    raises (a failure is recorded as {"status": "error", "error": ...}, and the benchmark goes on
    without MFU)."""
    emulated = {name: why for name, why in emulated_dtypes(device).items() if name in dtypes}
    spec = {
        "device": device,
        "torch_threads": torch_threads,
        "allow_tf32": allow_tf32,
        "matrix_size": matrix_size or MATRIX_SIZE[device],
        "dtypes": [name for name in dtypes if name not in emulated],
    }
    if not spec["dtypes"]:
        return {"status": "ok", "matrix_size": spec["matrix_size"], "device": device, "dtypes": []} | _skipped(emulated)
    env = dict(os.environ)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    with tempfile.TemporaryDirectory(prefix="fmnist-peak-") as tmp:
        result = run_spec("peak", spec, env, Path(tmp), timeout)
    if result.get("status") != "ok":
        result.setdefault("spec", spec)
    else:
        result.update(_skipped(emulated))
    return result


def _skipped(emulated: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {name: {"skipped": why, "emulated": True} for name, why in emulated.items()}


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """The worker's result for `spec`; never raises."""
    try:
        return {"status": "ok", **gemm_peak(spec)}
    except Exception as exc:
        return {
            "status": "error",
            "error": f"{type(exc).__name__}: {str(exc).strip()[:300]}",
            "traceback": traceback.format_exc(limit=8),
        }


def peak_job(request: dict[str, Any], out: Path) -> dict[str, Any]:
    """The job kind "peak" (`fmnist.job`): the measurement `request["spec"]` asks for."""
    return run(request["spec"])
