"""One benchmark measurement in a process of its own: a job of kind "benchmark" (`fmnist.job`).

`benchmarks.orchestrate` starts one of these per (engine, loop, variant, batch size, repeat), so
each framework has the process to itself (no TensorFlow/torch import-order trap, no shared
thread pools, a fresh peak-memory counter). The spec says what to measure; the result (or the
error) is the job's result. The variant's settings come from `variants`; the engine
(`fmnist.engines`) runs the loop (`fmnist.capabilities.Speed.throughput`: Keras' fit/predict,
Lightning's Trainer or the plain loop it is measured against, the pytorch engine's loop) over the
batches chosen here, reading this side's clock (`measuring.Stamps`) around every step.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any


from benchmarks.environment import framework_versions
from benchmarks.measuring import Stamps, batch_order, peak_rss_mib, training_images
from benchmarks.variants import Variant, variant_config, variant_for
from fmnist import engines
from fmnist.capabilities import SpeedRun
from fmnist.config import Config, load_config


def measure(spec: dict[str, Any], config: Config, variant: Variant) -> dict[str, Any]:
    """Training and inference timings of `spec`'s loop of its engine (which sets its framework up
    first: the environment, the modules it needs imported before any other)."""
    engine = engines.engine(spec["engine"]).capability("speed")
    split, data_note = training_images(spec, config)
    bs, warmup = spec["batch_size"], spec["warmup"]
    run = SpeedRun(
        loop=spec["runner"],
        split=split,
        order=batch_order(len(split), bs, warmup + spec["steps"], config.seed),
        device=spec["device"],
        threads=spec.get("threads", spec.get("torch_threads")),
        jit_compile=variant.jit_compile,
        torch_compile=variant.torch_compile,
    )
    clock = Stamps()
    out = engine.throughput(config, run, clock)
    resident = out.pop("resident_on", None)
    return {
        "train": clock.timing("train", warmup, bs),
        "inference": clock.timing("inference", warmup, bs),
        "data": data_note if resident is None else f"{data_note}, resident on {resident}",
        "rss_before_mib": clock.rss_before,
        **out,
    }


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """The measurement `spec` asks for; never raises (an error is recorded in the result)."""
    began = time.perf_counter()
    result: dict[str, Any] = {"spec": spec}
    try:
        variant = variant_for(spec["engine"], spec["variant"])  # refuses what the table lacks
        config = variant_config(load_config(spec["config"]), variant.name)
        result.update(measure(spec, config, variant))
        result["status"] = "ok"
    except Exception as exc:  # recorded, never fatal: the benchmark goes on with the others
        result["status"] = "error"
        result["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        result["traceback"] = traceback.format_exc(limit=8)
    result.setdefault("peak_memory_mib", peak_rss_mib())
    result.setdefault("peak_memory_kind", "process peak RSS (VmHWM)")
    result["process_rss_peak_mib"] = peak_rss_mib()
    result["versions"] = framework_versions(spec["engine"])
    result["worker_seconds"] = time.perf_counter() - began
    return result


def benchmark_job(request: dict[str, Any], out: Path) -> dict[str, Any]:
    """The job kind "benchmark" (`fmnist.job`): the measurement `request["spec"]` asks for."""
    return run(request["spec"])
