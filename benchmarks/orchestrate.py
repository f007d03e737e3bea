"""`fmnist benchmark`: training and inference speed of the engines, each measurement in a
process of its own (`benchmarks.worker`), repeats alternating the engines, an engine's loops of
one variant back to back (Lightning's plain reference loop and its Trainer: a pair, its ratio
Lightning's overhead); then, if asked, the time each engine takes to reach a test accuracy
(`benchmarks.time_to_accuracy`).
Before the measurements, the device's plain-GEMM peak (`benchmarks.peak`, a process of its own
too) of the dtypes the variants compute in: each measurement's achieved FLOP/s over it is its
MFU, none for a dtype the CPU emulates.

Nothing here imports a framework: the parent only plans, starts workers, and aggregates.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
from pathlib import Path
from collections.abc import Sequence
from typing import Any

from benchmarks.environment import hardware, load_average, missing_frameworks, resolve_device, source_revision
from benchmarks.outputs import results_dir, shown, write_outputs
from benchmarks.peak import PEAK_DTYPE, emulated_dtypes, measure_peak
from benchmarks.spawn import run_spec
from benchmarks.plan import BenchmarkError, Measurement, plan, schedule
from benchmarks.report import peak_line
from benchmarks.stats import add_mfu, add_paired_ratios, add_ratios, aggregate
from benchmarks.variants import lookup
from fmnist import engines

#: Below this many timed steps the data is synthetic (the real set is not worth loading).
SYNTHETIC_BELOW_STEPS = 10
WORKER_JOB = "benchmark"


def worker_env(m: Measurement, device: str) -> dict[str, str]:
    """The worker's environment: the engine's own (what it fixes before its framework's import,
    as `fmnist.engines` would), and on `--device cpu` no GPU to be found (an accelerator chosen
    "auto" must not pick one)."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(engines.engine(m.engine).environment)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def run_worker(m: Measurement, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One measurement in a fresh process; never raises (a failure is a result with its error)."""
    with tempfile.TemporaryDirectory(prefix="fmnist-bench-") as tmp:
        env = worker_env(m, spec["device"])
        if lookup(m.variant).torch_compile:  # an empty compile cache: the warm-up is a first run's compilation
            env["TORCHINDUCTOR_CACHE_DIR"] = str(Path(tmp) / "inductor-cache")
            env["TRITON_CACHE_DIR"] = str(Path(tmp) / "triton-cache")
        result = run_spec(WORKER_JOB, spec, env, Path(tmp), timeout)
    result.setdefault("spec", spec)  # the worker echoes it; a worker that never wrote could not
    return result


def run_benchmark(
    *,
    engines_chosen: list[str],
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
    time_to_accuracy_max_epochs: int | None = None,
    time_to_accuracy_config: Path | None = None,
    time_to_accuracy_seeds: Sequence[int] = (),
    time_to_accuracy_engines: Sequence[str] = (),
    throughput: bool = True,
    budget_seconds: float | None = None,
    repeats_together: bool = False,
    log=print,
    executor_choice: Any = None,
    peak_matrix_size: int | None = None,
) -> dict[str, Any]:
    """peak_matrix_size: n of the GEMM peak's n x n matrices (None: `benchmarks.peak.MATRIX_SIZE`'s).
    budget_seconds: once this many seconds of measuring have passed, the measurements not yet
    started are recorded as skipped and the results written as usual (the GPU run's lease is
    short: a partial second repeat beats no file at all). None: every measurement runs.
    repeats_together: each measurement (pair of loops) through its repeats before the next
    (`benchmarks.plan.schedule`), so a budget leaves whole measurements.
    executor_choice (`executors.ExecutorChoice`): how the time-to-accuracy runs run (serial by
    default; the throughput measurements always run one at a time)."""
    from fmnist.config import load_config
    from benchmarks.flops import train_flops_per_image
    from fmnist.packaged_configs import config_file

    time_to_accuracy_config = time_to_accuracy_config or config
    for flag, path in (("--config", config), ("--time-to-accuracy-config", time_to_accuracy_config)):
        if not config_file(path).is_file():
            raise BenchmarkError(f"{flag}: no such file or packaged config {path}")
        load_config(path)  # a bad config fails here, once, with the loader's message
    device = resolve_device(device)
    if not throughput and time_to_accuracy is None:
        raise BenchmarkError("--only-time-to-accuracy needs --time-to-accuracy ACC")
    if time_to_accuracy is not None and not time_to_accuracy_seeds:
        raise BenchmarkError("--time-to-accuracy needs at least one seed (--time-to-accuracy-seeds)")
    measurements = plan(engines_chosen, variants, batch_sizes) if throughput else []
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
    peak = None
    if measurements:  # the denominator of MFU, once, before the measurements (outside their time budget)
        dtypes = tuple(dict.fromkeys(PEAK_DTYPE[lookup(m.variant).precision] for m in measurements))
        allow_tf32 = load_config(config).train.allow_tf32
        peak = measure_peak(device, torch_threads, allow_tf32, timeout, dtypes=dtypes, matrix_size=peak_matrix_size)
        log(f"[benchmark] {peak_line(peak)}")
    results: dict[str, list[dict[str, Any]]] = {m.key: [] for m in measurements}
    total = len(measurements) * repeats
    done = 0
    began = time.perf_counter()
    # Pairs back to back, reversed every other repeat (or each measurement's repeats together).
    for r, m in schedule(measurements, repeats, repeats_together):
        done += 1
        if budget_seconds is not None and time.perf_counter() - began > budget_seconds:
            why = f"not started: the run's time budget ({budget_seconds:.0f} s) was spent"
            # "error" too: a measurement whose earlier repeat ran lists it among its failed repeats
            results[m.key].append({"status": "skipped", "reason": why, "error": why})
            log(f"[benchmark {done}/{total}] {m.key} repeat {r + 1}: skipped ({why})")
            continue
        if why := missing_frameworks(m.engine):
            results[m.key].append({"status": "skipped", "reason": why})
            log(f"[benchmark {done}/{total}] {m.key}: skipped ({why})")
            continue
        spec = {
            "engine": m.engine,
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
        res["run_index"] = done - 1  # which of a pair ran first
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
    add_paired_ratios(aggregated, results)
    add_mfu(aggregated, train_flops_per_image(load_config(config)), peak, emulated_dtypes(device))

    time_to_accuracy_result = None
    if time_to_accuracy is not None:
        from benchmarks.time_to_accuracy import run_time_to_accuracy

        time_to_accuracy_result = run_time_to_accuracy(
            time_to_accuracy_engines or engines_chosen,
            time_to_accuracy_seeds,
            time_to_accuracy_config,
            time_to_accuracy,
            time_to_accuracy_max_epochs,
            data_dir,
            device,
            log=log,
            executor_choice=executor_choice,
        )

    versions: dict[str, str] = {}
    for runs in [*results.values(), (time_to_accuracy_result or {}).get("runs", [])]:
        for r in runs:
            versions.update(r.get("versions") or {})
    result = {
        "schema": "fmnist-benchmark/1",
        "created": now.strftime("%Y-%m-%d %H:%M UTC"),
        "settings": {
            "engines": engines_chosen,
            "device": device,
            "batch_sizes": batch_sizes,
            "steps": steps,
            "warmup": warmup,
            "repeats": repeats,
            "config": str(config),
            "data": data,
            "variants": variants or "default",
            "torch_threads": torch_threads,
            "time_to_accuracy_config": str(time_to_accuracy_config) if time_to_accuracy is not None else None,
            "method": "one fresh process per measurement and repeat; repeat order reversed every other"
            " repeat; an engine's loops of a variant back to back (pair i: repeat i of its reference loop"
            " and of the loop around it, which runs first alternating), the overhead the median of the pairs'"
            " ratios; a timestamp after every step (device synchronised); throughput over"
            " the timed steps only, warm-up (tracing, compilation) reported apart; torch.compile starts"
            " from an empty compile cache in every process",
            **({"budget_seconds": budget_seconds} if budget_seconds is not None else {}),
            **({"repeats_together": True} if repeats_together else {}),
        },
        "environment": {
            "hardware": hardware(),
            "versions": versions,
            "source": source_revision(),
            **env_start,
            "load_average_end": load_average(),
            "total_seconds": time.perf_counter() - began,
        },
        "peak": peak,
        "measurements": aggregated,
        "time_to_accuracy": time_to_accuracy_result,
    }
    write_outputs(result, out)
    written = ["benchmark.json", "benchmark.md"] + (["benchmark.png"] if aggregated else [])
    log(f"[benchmark] written: {', '.join(written)} in {shown(out)}")
    return result
