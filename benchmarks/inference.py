"""`fmnist benchmark-inference`: onnxruntime against each framework's own float32 inference, same
model, same images, side by side in one process; and `fmnist predict` on a folder of synthetic
JPEG photos, decoding and conversion included, with where the time goes.

Each run is exported with `fmnist export` (its check included) into the results folder; the
framework side is the float32 reference of that check. Per runner: batch-1 latency (p50, p99 of
`latency_runs` calls, each on another test image) and batch-256 throughput (`batches` calls),
after untimed warm-up calls. Keras is timed both ways its documentation offers: calling the
model (`model(x, training=False)`, recommended for small batches) and `predict_on_batch` (its
compiled predict function). Threads: every runtime uses all the cores this process may use.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.stats import percentile
from fmnist import engines, rundir
from fmnist.datasets import load_fashion_mnist
from fmnist.errors import FmnistError

THROUGHPUT_BATCH = 256
WARMUP_CALLS = 20
RESULT_FILES = ("inference.json", "inference.md")


def default_out(now: dt.datetime) -> Path:
    """benchmarks/results/<date>-cpu-inference, with -2, -3, ... when taken: results are never replaced."""
    base = Path("benchmarks") / "results" / f"{now:%Y-%m-%d}-cpu-inference"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def time_calls(
    run: Callable[[np.ndarray], Any], images: np.ndarray, latency_runs: int, batches: int
) -> dict[str, float]:
    """Batch-1 latency percentiles (ms) and batch-256 throughput (images/s) of one runner."""
    x = images.astype(np.float32)[..., None]
    for i in range(WARMUP_CALLS):
        run(x[i % len(x) : i % len(x) + 1])
        run(x[:THROUGHPUT_BATCH])
    latencies = []
    for i in range(latency_runs):
        one = x[i % len(x) : i % len(x) + 1]
        start = time.perf_counter()
        run(one)
        latencies.append(time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(batches):
        run(x[:THROUGHPUT_BATCH])
    seconds = time.perf_counter() - start
    return {
        "batch1_p50_ms": 1e3 * percentile(latencies, 50),
        "batch1_p99_ms": 1e3 * percentile(latencies, 99),
        "batch256_images_per_s": THROUGHPUT_BATCH * batches / seconds,
        "latency_runs": latency_runs,
        "batches": batches,
    }


def _runners(engine: str, run_dir: Path, onnx_path: Path, threads: int) -> dict[str, Callable[[np.ndarray], Any]]:
    from export.check import export_engine
    from fmnist.onnx_model import INPUT_NAME, OnnxModel

    session = OnnxModel(onnx_path, threads=threads).session
    runners: dict[str, Callable[[np.ndarray], Any]] = {"onnxruntime": lambda x: session.run(None, {INPUT_NAME: x})}
    # as the export: a Keras run runs on TensorFlow
    return {**runners, **export_engine(engine).export.inference_runners(run_dir, threads)}


def time_predict(model: Path, folder: Path) -> dict[str, Any]:
    """`fmnist predict` on a folder, as the command runs it (files read one by one, one model call)."""
    from fmnist.predicting import predict_files

    start = time.perf_counter()
    result = predict_files(model, [folder])
    seconds = time.perf_counter() - start
    if result.failures:
        raise FmnistError(f"predict failed on {len(result.failures)} synthetic photos: {result.failures[0][1]}")
    n = len(result.predictions)
    phases = {k: round(v, 4) for k, v in result.seconds.items()}
    phases["other"] = round(seconds - sum(result.seconds.values()), 4)  # listing files, softmax, ranking
    return {"photos": n, "seconds": seconds, "images_per_s": n / seconds, "phases_s": phases}


def run_inference_benchmark(
    runs: list[Path],
    out: Path | None = None,
    latency_runs: int = 1000,
    batches: int = 40,
    photos: int = 1000,
    data_dir: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    from benchmarks.environment import hardware, load_average, source_revision
    from export.check import export_run
    from fmnist.synthetic_photos import write_photos

    run_engines = [rundir.engine_of(r) for r in runs]
    # The frameworks of every run in one process: those that must come first (torch with dynamo,
    # before TensorFlow) first, as their engines declare.
    exporters = {engines.exporter(e).name: engines.exporter(e) for e in run_engines}
    for spec in sorted(exporters.values(), key=lambda e: not e.import_first):
        spec.activate()
    now = dt.datetime.now()
    out = Path(out) if out else default_out(now)
    if any((out / name).exists() for name in RESULT_FILES):
        raise FmnistError(f"{out} already holds inference results; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    data = load_fashion_mnist(data_dir)
    images = data.test_images
    result: dict[str, Any] = {
        "date": now.isoformat(timespec="seconds"),
        "revision": source_revision(),
        "hardware": hardware(),
        "load_average_before": load_average(),
        "threads": threads,
        "runs": [],
        "notes": "synthetic photos: test images enlarged, inverted onto white,"
        " off-centre on a larger canvas, JPEG (fmnist.synthetic_photos)",
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "synthetic-photos"
        write_photos(images[:photos], folder)
        for run_dir, engine in zip(runs, run_engines):
            onnx_path = out / f"{engine}-{Path(run_dir).resolve().name}.onnx"
            log(f"exporting {run_dir} ({engine}) to {onnx_path}")
            export = export_run(run_dir, out=onnx_path, report=onnx_path.with_suffix(".export.json"), data_dir=data_dir)
            if not export["passed"]:
                raise FmnistError(f"the export of {run_dir} failed its check; see {export['report']}")
            entry: dict[str, Any] = {
                "engine": engine,
                "run_dir": Path(run_dir).resolve().name,  # published: no machine's paths
                "onnx": str(onnx_path),
                "export_check": export["check"],
                "runners": {},
            }
            for name, run in _runners(engine, Path(run_dir), onnx_path, threads).items():
                log(f"timing {engine} / {name}")
                entry["runners"][name] = time_calls(run, images, latency_runs, batches)
            log(f"timing fmnist predict on {photos} synthetic photos ({engine} run directory and ONNX)")
            entry["predict"] = {
                "run directory": time_predict(Path(run_dir), folder),
                "onnx": time_predict(onnx_path, folder),
            }
            result["runs"].append(entry)
            onnx_path.unlink()  # the results folder keeps the figures and the export reports, not models
    result["load_average_after"] = load_average()
    result["markdown"] = markdown(result)
    rundir.write_json(out / "inference.json", result)
    rundir.atomic_write_text(out / "inference.md", result["markdown"] + "\n")
    result["out"] = str(out)
    return result


def markdown(result: dict[str, Any]) -> str:
    hw = result["hardware"]
    lines = [
        f"# fmnist benchmark-inference, {hw['cpu_model']}, {result['threads']} threads, {result['date']}",
        "",
        "| engine | runner | batch-1 p50 (ms) | batch-1 p99 (ms) | batch-256 images/s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for entry in result["runs"]:
        for name, r in entry["runners"].items():
            lines.append(
                f"| {entry['engine']} | {name} | {r['batch1_p50_ms']:.3f} | {r['batch1_p99_ms']:.3f} |"
                f" {r['batch256_images_per_s']:,.0f} |"
            )
    lines += [
        "",
        "`fmnist predict` on a folder of synthetic JPEG photos (decoding and conversion included;"
        " open: checking the model and importing what runs it; model: loading it and inference;"
        " process start-up not included):",
        "",
        "| engine | model | photos | images/s | open (s) | decode (s) | convert (s) | model (s) | other (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in result["runs"]:
        for how, p in entry["predict"].items():
            ph = p["phases_s"]
            lines.append(
                f"| {entry['engine']} | {how} | {p['photos']:,} | {p['images_per_s']:,.0f} |"
                f" {ph['open']:.3f} | {ph['decode']:.3f} | {ph['convert']:.3f} | {ph['model']:.3f} |"
                f" {ph['other']:.3f} |"
            )
    lines += ["", f"Load average before / after: {result['load_average_before']} / {result['load_average_after']}."]
    return "\n".join(lines)
