"""`fmnist benchmark`: training and inference speed of both backends, each measurement in a process
of its own (`compare.bench_worker`), repeats alternating the backends; writes benchmark.json,
benchmark.md and benchmark.png.

Nothing here imports a framework: the parent only plans, starts workers, and aggregates.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compare import bench_stats
from fmnist.cpu_features import cpu_model, kernel_flags, native_bf16
from fmnist.errors import FmnistError

TORCH_VARIANTS = ("eager", "channels_last", "bf16", "channels_last+bf16", "compile")
KERAS_VARIANTS = ("tf", "tf-xla", "tf-bf16", "jax", "torch")
ALL_VARIANTS = TORCH_VARIANTS + KERAS_VARIANTS + ("tf-graph",)
DEFAULT_KERAS_VARIANTS = KERAS_VARIANTS
#: Below this many timed steps the data is synthetic (the real set is not worth loading).
SYNTHETIC_BELOW_STEPS = 10


class BenchmarkError(FmnistError):
    """A bad `fmnist benchmark` flag or an impossible request (no GPU for --device cuda...)."""


@dataclass(frozen=True)
class Measurement:
    runner: str  # "keras", "lightning" or "plain torch"
    variant: str
    batch_size: int

    @property
    def key(self) -> str:
        return f"{self.runner}/{self.variant}/b{self.batch_size}"


# --------------------------------------------------------------------------------------------
# flags


def parse_list(text: str | None, allowed: tuple[str, ...] | None, what: str) -> list[str]:
    """'a,b' -> ['a', 'b'] (order kept, duplicates dropped); a name not in `allowed` is refused."""
    if text is None:
        return []
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise BenchmarkError(f"{what}: expected a comma-separated list, got {text!r}")
    if allowed is not None:
        for item in items:
            if item not in allowed:
                raise BenchmarkError(f"{what}: unknown {item!r}; choose from {', '.join(allowed)}")
    return list(dict.fromkeys(items))


def parse_batch_sizes(text: str) -> list[int]:
    sizes = []
    for item in parse_list(text, None, "--batch-size"):
        try:
            value = int(item)
        except ValueError:
            raise BenchmarkError(f"--batch-size: expected whole numbers, got {item!r}") from None
        if value < 1:
            raise BenchmarkError(f"--batch-size: must be at least 1, got {value}")
        sizes.append(value)
    return sizes


def cuda_available() -> bool:
    """Whether a CUDA device is visible, asked of torch in a child process (the parent stays framework-free)."""
    if importlib.util.find_spec("torch") is None:
        return False
    code = "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"
    try:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def resolve_device(device: str) -> str:
    if device not in ("auto", "cpu", "cuda"):
        raise BenchmarkError(f"--device: unknown {device!r}; choose from auto, cpu, cuda")
    if device == "cpu":
        return "cpu"
    has_cuda = cuda_available()
    if device == "cuda" and not has_cuda:
        raise BenchmarkError("--device cuda: no CUDA device is visible to torch; use --device cpu")
    return "cuda" if has_cuda else "cpu"


def keras_backend_missing(variant: str) -> str | None:
    """Why a Keras variant cannot run here (a package is not installed), or None."""
    needs = {
        "tf": "tensorflow",
        "tf-graph": "tensorflow",
        "tf-xla": "tensorflow",
        "tf-bf16": "tensorflow",
        "jax": "jax",
        "torch": "torch",
    }[variant]
    if importlib.util.find_spec("keras") is None:
        return "keras is not installed"
    if importlib.util.find_spec(needs) is None:
        return f"{needs} is not installed (pip install {needs} to measure Keras on it)"
    return None


def plan(backends: list[str], variants: list[str] | None, batch_sizes: list[int]) -> list[Measurement]:
    """Every measurement, backends interleaved so each repeat alternates between them."""
    per_backend: dict[str, list[Measurement]] = {}
    for bs in batch_sizes:
        if "lightning" in backends:
            for v in TORCH_VARIANTS:
                if variants is None or v in variants:
                    per_backend.setdefault("lightning", []).append(Measurement("plain torch", v, bs))
                    per_backend.setdefault("lightning", []).append(Measurement("lightning", v, bs))
        if "keras" in backends:
            for v in (*DEFAULT_KERAS_VARIANTS, "tf-graph"):
                if (variants is None and v != "tf-graph") or (variants is not None and v in variants):
                    per_backend.setdefault("keras", []).append(Measurement("keras", v, bs))
    if not any(per_backend.values()):
        raise BenchmarkError(
            "--variants: none of the chosen variants belongs to the chosen backends"
            f" (torch: {', '.join(TORCH_VARIANTS)}; keras: {', '.join(KERAS_VARIANTS)}, tf-graph)"
        )
    out: list[Measurement] = []
    lists = [per_backend[b] for b in backends if b in per_backend]
    for i in range(max(len(x) for x in lists)):
        for lst in lists:
            if i < len(lst):
                out.append(lst[i])
    return out


# --------------------------------------------------------------------------------------------
# environment


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def gpu_name() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def source_revision() -> str | None:
    """The git commit measured ('+dirty' with uncommitted changes), None outside a checkout."""
    repo = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=20
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if rev.returncode != 0:
        return None
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def hardware() -> dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_flags": kernel_flags(),
        "native_bf16": native_bf16(),
        "gpu": gpu_name(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


# --------------------------------------------------------------------------------------------
# running


def worker_env(m: Measurement) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if m.runner == "keras":
        env["KERAS_BACKEND"] = {"jax": "jax", "torch": "torch"}.get(m.variant, "tensorflow")
    return env


def run_worker(m: Measurement, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One measurement in a fresh process; never raises (a failure is a result with its error)."""
    with tempfile.TemporaryDirectory(prefix="fmnist-bench-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps(spec))
        cmd = [sys.executable, "-m", "compare.bench_worker", str(spec_path), str(out_path)]
        env = worker_env(m)
        if m.variant == "compile":  # an empty compile cache: the warm-up is a first run's compilation
            env["TORCHINDUCTOR_CACHE_DIR"] = str(Path(tmp) / "inductor-cache")
            env["TRITON_CACHE_DIR"] = str(Path(tmp) / "triton-cache")
        began = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=Path(__file__).resolve().parents[1]
            )
        except subprocess.TimeoutExpired:
            return {"status": "error", "error": f"timed out after {timeout:.0f} s", "spec": spec}
        wall = time.perf_counter() - began
        if out_path.exists():
            result = json.loads(out_path.read_text())
        else:  # a crash (segfault, out of memory) before the worker could write
            tail = (proc.stderr or "").strip().splitlines()[-3:]
            result = {
                "status": "error",
                "spec": spec,
                "error": f"worker exited with code {proc.returncode}: {' / '.join(tail)[:400]}",
            }
        result["process_wall_seconds"] = wall
        return result


def aggregate(m: Measurement, repeats: list[dict[str, Any]]) -> dict[str, Any]:
    """Median with min and max over the repeats that succeeded; the first error when none did."""
    ok = [r for r in repeats if r.get("status") == "ok"]
    base = {"runner": m.runner, "variant": m.variant, "batch_size": m.batch_size, "repeats": len(repeats)}
    if not ok:
        first = repeats[0]
        return {
            **base,
            "status": first.get("status", "error"),
            "error": first.get("error") or first.get("reason"),
            "traceback": first.get("traceback"),
        }
    steps = [s for r in ok for s in r["train"]["step_seconds"]]
    infer_steps = [s for r in ok for s in r["inference"]["step_seconds"]]
    first = ok[0]
    out = {
        **base,
        "status": "ok",
        "failed_repeats": [r.get("error") for r in repeats if r.get("status") != "ok"],
        "data": first.get("data"),
        "train": {
            "images_per_s": bench_stats.summarize([r["train"]["images_per_s"] for r in ok]),
            "step_time": bench_stats.step_time_stats(steps),
            "timed_steps_per_repeat": first["train"]["steps"],
        },
        "inference": {
            "images_per_s": bench_stats.summarize([r["inference"]["images_per_s"] for r in ok]),
            "step_time": bench_stats.step_time_stats(infer_steps),
        },
        "warmup_seconds": bench_stats.summarize([r["train"]["warmup_seconds"] for r in ok]),
        "first_step_seconds": bench_stats.summarize([r["train"]["first_step_seconds"] for r in ok]),
        "peak_memory_mib": bench_stats.median([r["peak_memory_mib"] for r in ok if r.get("peak_memory_mib")] or [0]),
        "peak_memory_kind": first.get("peak_memory_kind"),
        "process_wall_seconds": bench_stats.summarize([r.get("process_wall_seconds", 0.0) for r in ok]),
        "final_loss": first.get("final_loss"),
        "threads": first.get("threads"),
        "flags": first.get("flags"),
        "versions": first.get("versions"),
        "per_repeat_train_images_per_s": [r["train"]["images_per_s"] for r in ok],
    }
    return out


def add_ratios(measurements: list[dict[str, Any]]) -> None:
    """Lightning's training images/s over the plain loop's, per variant and batch size."""
    plain = {
        (m["variant"], m["batch_size"]): m for m in measurements if m["runner"] == "plain torch" and m["status"] == "ok"
    }
    for m in measurements:
        ref = plain.get((m["variant"], m["batch_size"]))
        if m["runner"] == "lightning" and m["status"] == "ok" and ref:
            m["ratio_to_plain"] = m["train"]["images_per_s"]["median"] / ref["train"]["images_per_s"]["median"]


def default_out_dir(device: str, now: dt.datetime) -> Path:
    return Path("benchmarks") / "results" / f"{now:%Y-%m-%d}-{'gpu' if device == 'cuda' else 'cpu'}"


RESULT_FILES = ("benchmark.json", "benchmark.md", "benchmark.png")


def results_dir(out: Path | None, device: str, now: dt.datetime) -> Path:
    """Where this benchmark writes, never over earlier results: an `--out` already holding them is
    refused; the default folder of the day gets a -2, -3, ... suffix when taken."""

    def taken(path: Path) -> list[str]:
        return [name for name in RESULT_FILES if (path / name).exists()]

    if out is not None:
        if out.exists() and not out.is_dir():
            raise BenchmarkError(f"--out {out} exists and is not a folder")
        if taken(out):
            raise BenchmarkError(
                f"--out {out} already holds benchmark results ({', '.join(taken(out))}); a benchmark"
                " never replaces them: choose another --out"
            )
        return out
    base = default_out_dir(device, now)
    path, n = base, 1
    while path.exists() and (taken(path) or not path.is_dir()):
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def run_benchmark(
    *,
    backends: list[str],
    device: str,
    batch_sizes: list[int],
    steps: int,
    warmup: int,
    repeats: int,
    config: Path,
    out: Path | None,
    variants: list[str] | None = None,
    data_dir: str | None = None,
    data: str = "auto",
    timeout: float = 900.0,
    torch_threads: int | None = None,
    time_to_accuracy: float | None = None,
    tta_max_epochs: int | None = None,
    tta_config: Path | None = None,
    throughput: bool = True,
    log=print,
) -> dict[str, Any]:
    from fmnist.config import load_config

    tta_config = tta_config or config
    for flag, path in (("--config", config), ("--tta-config", tta_config)):
        if not path.is_file():
            raise BenchmarkError(f"{flag}: no such file {path}")
        load_config(path)  # a bad config fails here, once, with the loader's message
    device = resolve_device(device)
    if not throughput and time_to_accuracy is None:
        raise BenchmarkError("--only-time-to-accuracy needs --time-to-accuracy ACC")
    measurements = plan(backends, variants, batch_sizes) if throughput else []
    if data == "auto":
        data = "synthetic" if steps < SYNTHETIC_BELOW_STEPS else "real"
    if data == "real":
        from fmnist.datasets import load_fashion_mnist

        load_fashion_mnist(data_dir)  # verifies (or downloads) once, before any worker starts
    now = dt.datetime.now(dt.timezone.utc)
    out = results_dir(out, device, now)  # before any measurement: earlier results are never replaced
    out.mkdir(parents=True, exist_ok=True)

    env_start = {"load_average_start": load_average()}
    if measurements:
        log(
            f"[benchmark] {len(measurements)} measurements x {repeats} repeats on {device}, {steps} steps"
            f" after {warmup} warm-up, data: {data}; load average {env_start['load_average_start']}"
        )
    results: dict[str, list[dict[str, Any]]] = {m.key: [] for m in measurements}
    total = len(measurements) * repeats
    done = 0
    began = time.perf_counter()
    for r in range(repeats):
        order = measurements if r % 2 == 0 else measurements[::-1]  # alternate: drift hits all alike
        for m in order:
            done += 1
            if m.runner == "keras" and (why := keras_backend_missing(m.variant)):
                results[m.key].append({"status": "skipped", "reason": why})
                log(f"[benchmark {done}/{total}] {m.key}: skipped ({why})")
                continue
            spec = {
                "runner": m.runner,
                "variant": m.variant,
                "device": device,
                "batch_size": m.batch_size,
                "steps": steps,
                "warmup": warmup,
                "config": str(config),
                "data": data,
                "data_dir": data_dir,
                "torch_threads": torch_threads,
                "repeat": r,
            }
            res = run_worker(m, spec, timeout)
            results[m.key].append(res)
            if res.get("status") == "ok":
                log(
                    f"[benchmark {done}/{total}] {m.key} repeat {r + 1}: train {res['train']['images_per_s']:,.0f}"
                    f" images/s (step median {res['train']['step_time']['median_ms']:.1f} ms), inference"
                    f" {res['inference']['images_per_s']:,.0f} images/s, warm-up {res['train']['warmup_seconds']:.1f} s"
                    f" [{time.perf_counter() - began:.0f} s]"
                )
            else:
                log(f"[benchmark {done}/{total}] {m.key} repeat {r + 1}: {res.get('status')}: {res.get('error')}")
    aggregated = [aggregate(m, results[m.key]) for m in measurements]
    add_ratios(aggregated)

    tta = None
    if time_to_accuracy is not None:
        from compare.bench_tta import run_time_to_accuracy

        tta = run_time_to_accuracy(backends, tta_config, time_to_accuracy, tta_max_epochs, data_dir, device, log=log)

    versions: dict[str, str] = {}
    for runs in results.values():
        for r in runs:
            versions.update(r.get("versions") or {})
    result = {
        "schema": "fmnist-benchmark/1",
        "created": now.strftime("%Y-%m-%d %H:%M UTC"),
        "settings": {
            "backends": backends,
            "device": device,
            "batch_sizes": batch_sizes,
            "steps": steps,
            "warmup": warmup,
            "repeats": repeats,
            "config": str(config),
            "data": data,
            "variants": variants or "default",
            "torch_threads": torch_threads,
            "time_to_accuracy_config": str(tta_config) if time_to_accuracy is not None else None,
            "method": "one fresh process per measurement and repeat; repeat order reversed every other"
            " repeat; a timestamp after every step (device synchronised); throughput over"
            " the timed steps only, warm-up (tracing, compilation) reported apart; torch.compile starts"
            " from an empty compile cache in every process",
        },
        "environment": {
            "hardware": hardware(),
            "versions": versions,
            "source": source_revision(),
            **env_start,
            "load_average_end": load_average(),
            "total_seconds": time.perf_counter() - began,
        },
        "measurements": aggregated,
        "time_to_accuracy": tta,
    }
    write_outputs(result, out)
    written = ["benchmark.json", "benchmark.md"] + (["benchmark.png"] if aggregated else [])
    log(f"[benchmark] written: {', '.join(str(out / name) for name in written)}")
    return result


def write_outputs(result: dict[str, Any], out: Path) -> None:
    from fmnist.rundir import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "benchmark.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(out / "benchmark.md", bench_stats.markdown_report(result))
    s = result["settings"]
    title = f"fmnist benchmark, {s['device']}, {result['environment']['hardware']['cpu_model']} ({result['created']})"
    if result["measurements"]:
        bench_stats.plot_throughput(result["measurements"], out / "benchmark.png", title)
