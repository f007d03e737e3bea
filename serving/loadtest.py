"""A bounded load test of a real `fmnist serve` on the loopback address.

`python -m serving.loadtest MODEL MODEL` starts the server in its own process (start-up time:
process start to the first answer of /healthz), sends real test images as PNG uploads to
POST /v1/predict, one image per request, first at concurrency 1 and then 16 (a fixed number of
requests each, so it stops by itself; a deadline stops it too), checks every answer (status 200,
each model's class equal to onnxruntime's answer computed here), and reports requests/s and
p50/p90/p99 latency per concurrency, and the server's resident memory: after start-up, before
the last thousand requests and after them. Results: loadtest.json and loadtest.md in
benchmarks/results/<date>-cpu-serve/ (a new folder; earlier results are never written over).

The client runs on the same machine: on 2 cores it takes CPU from the server, so the figures
are a floor for what the server does with the machine to itself. Timing targets are reported,
not asserted; the assertions (zero errors, memory, stopping) are in tests/test_serve_load.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import itertools
import json
import os
import platform
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fmnist.errors import FmnistError
from serving.models import load_models, resolve, split_spec
from serving.process import HOST, Server

DEFAULT_REQUESTS = 2000  # per concurrency level: "a few thousand" in all
DEFAULT_CONCURRENCY = (1, 16)
WARMUP_REQUESTS = 100
LAST_REQUESTS = 1000  # memory is compared before and after the last this many requests
MEMORY_GROWTH_LIMIT = 0.10
DEFAULT_MAX_SECONDS = 900.0  # the whole test, whatever the machine: then it stops and says so
DISTINCT_IMAGES = 1000
BOUNDARY = "fmnist-loadtest-boundary"
# The project's targets on 2 CPU cores (reported beside the figures, never asserted).
TARGETS = {"p50_ms_c1": 10.0, "rps_c16": 300.0, "p99_ms_c16": 100.0, "rss_mb": 400.0}
RESULTS_ROOT = Path("benchmarks/results")


@dataclass
class Payload:
    body: bytes
    expected: list[str]  # each model's class, in the server's model order


@dataclass
class Phase:
    concurrency: int
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    deadline_hit: bool = False

    def summary(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "errors": len(self.errors),
            "error_examples": self.errors[:5],
            "seconds": round(self.seconds, 3),
            "requests_per_s": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
            **{f"p{q}_ms": round(float(np.percentile(lat, q)), 3) for q in (50, 90, 99)},
            "max_ms": round(float(lat.max()), 3),
            "mean_ms": round(float(lat.mean()), 3),
            "stopped_by_deadline": self.deadline_hit,
        }


def multipart(png: bytes, name: str) -> bytes:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    return head + png + f"\r\n--{BOUNDARY}--\r\n".encode()


def payloads(onnx_specs: list[str], images: np.ndarray) -> list[Payload]:
    """Each image as a multipart PNG upload, with every model's class for it from onnxruntime here."""
    from serving.decode import to_png

    models = load_models(onnx_specs, log=lambda _: None)
    classes = [np.asarray(m.logits(images)).argmax(1) for m in models]
    return [
        Payload(multipart(to_png(img), f"test-{i}.png"), [m.class_names[c[i]] for m, c in zip(models, classes)])
        for i, img in enumerate(images)
    ]


def _check(status: int, data: bytes, expected: list[str]) -> str | None:
    if status != 200:
        return f"HTTP {status}: {data[:200]!r}"
    try:
        got = [a["class"] for a in json.loads(data)["images"][0]["predictions"]]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return f"malformed answer ({exc}): {data[:200]!r}"
    return None if got == expected else f"wrong classes {got}, expected {expected}"


def run_phase(
    port: int, bodies: list[Payload], requests: int, concurrency: int, deadline: float, phase: Phase | None = None
) -> Phase:
    """`requests` POSTs from `concurrency` threads, each on its own keep-alive connection."""
    phase = phase or Phase(concurrency)
    counter = itertools.count()
    lock = threading.Lock()
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}

    def worker() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        latencies, errors = [], []
        while True:
            n = next(counter)
            if n >= requests:
                break
            if time.monotonic() > deadline:
                phase.deadline_hit = True
                break
            payload = bodies[n % len(bodies)]
            start = time.perf_counter()
            try:
                conn.request("POST", "/v1/predict", payload.body, headers)
                response = conn.getresponse()
                data = response.read()
                problem = _check(response.status, data, payload.expected)
            except (OSError, http.client.HTTPException) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=30)
            latencies.append((time.perf_counter() - start) * 1000)
            if problem:
                errors.append(problem)
        conn.close()
        with lock:
            phase.latencies_ms.extend(latencies)
            phase.errors.extend(errors)
            phase.requests += len(latencies)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    phase.seconds += time.perf_counter() - start
    return phase


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("fmnist-parity", "onnxruntime", "fastapi", "starlette", "uvicorn", "numpy", "pillow"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def _git_commit() -> str | None:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if rev.returncode == 0 else None


def _hardware() -> dict[str, Any]:
    from fmnist.cpu_features import cpu_model

    return {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
    }


def run_loadtest(
    models: list[str],
    requests: int = DEFAULT_REQUESTS,
    concurrency: tuple[int, ...] = DEFAULT_CONCURRENCY,
    data_dir: str | None = None,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    server_args: tuple[str, ...] = (),
    log_file: Path | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Start a server, load it, stop it; the figures and the checks as one dict."""
    from fmnist.datasets import load_fashion_mnist

    specs = []
    for spec in models:  # run directories are exported first: start-up time is the server's own
        name, path = split_spec(spec)
        onnx = resolve(path, data_dir, log)
        specs.append(f"{name}={onnx}" if name else str(onnx))
    test = load_fashion_mnist(data_dir, download=False)
    bodies = payloads(specs, test.test_images[:DISTINCT_IMAGES])
    env = {"FMNIST_DATA_DIR": str(test.data_dir)}
    started_at = dt.datetime.now(dt.timezone.utc)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    deadline = time.monotonic() + max_seconds
    with Server(specs, ("--no-access-log", *server_args), env=env, log=log_file) as server:
        info = server.get_json("/v1/models")
        memory = {"after_start": server.rss()}
        log(f"server up in {server.start_seconds:.2f} s, {memory['after_start'] / 2**20:.0f} MB; warming up")
        warm = run_phase(server.port, bodies, WARMUP_REQUESTS, max(concurrency), deadline)
        memory["after_warmup"] = server.rss()
        phases = []
        for i, c in enumerate(concurrency):
            last = i == len(concurrency) - 1
            phase = Phase(c)
            if last and requests > LAST_REQUESTS:
                run_phase(server.port, bodies, requests - LAST_REQUESTS, c, deadline, phase)
            if last:
                memory["before_last_1000"] = server.rss()
                run_phase(server.port, bodies, min(requests, LAST_REQUESTS), c, deadline, phase)
                memory["after_last_1000"] = server.rss()
            else:
                run_phase(server.port, bodies, requests, c, deadline, phase)
            phases.append(phase.summary())
            log(
                f"concurrency {c}: {phases[-1]['requests_per_s']} requests/s, p50 {phases[-1]['p50_ms']} ms,"
                f" p99 {phases[-1]['p99_ms']} ms, {phases[-1]['errors']} errors"
            )
        alive = server.process.poll() is None
        exit_code = server.stop()
    growth = memory["after_last_1000"] / memory["before_last_1000"] - 1
    errors = len(warm.errors) + sum(p["errors"] for p in phases)
    stopped = warm.deadline_hit or any(p["stopped_by_deadline"] for p in phases)
    return {
        "date": started_at.isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "hardware": _hardware(),
        "versions": _versions(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "models": [{k: m[k] for k in ("name", "engine", "run", "file", "parameters")} for m in info["models"]],
        "server_args": ["--no-access-log", *server_args],
        "requests_per_level": requests,
        "images": "Fashion-MNIST test images as 28x28 grey PNG uploads (multipart), one per request",
        "start_seconds": round(server.start_seconds, 3),
        "memory_bytes": memory,
        "memory_growth_last_1000": round(growth, 4),
        "phases": phases,
        "warmup_errors": warm.errors[:5],
        "checks": {
            "zero_errors": errors == 0,
            "memory_within_10_percent": growth <= MEMORY_GROWTH_LIMIT,
            "finished_before_deadline": not stopped,
            "server_alive_at_end": alive,
            "server_stopped_cleanly": exit_code == 0,
        },
        "targets": TARGETS,
    }


def markdown(result: dict[str, Any]) -> str:
    mb = lambda b: f"{b / 2**20:.0f} MB"  # noqa: E731
    hw, mem = result["hardware"], result["memory_bytes"]
    lines = [
        f"# fmnist serve: load test, {result['date']}",
        "",
        f"{hw['cpu_model']}, {hw['usable_cpus']} usable CPUs;"
        f" {', '.join(f'{k} {v}' for k, v in result['versions'].items())};"
        f" commit {result['git_commit']}; load average before {result['load_average_before']}.",
        "",
        "Models: "
        + ", ".join(
            f"{m['name']} ({m['engine']}, {m['parameters']:,} parameters)"
            if m["parameters"]
            else f"{m['name']} ({m['engine']})"
            for m in result["models"]
        )
        + ".",
        f"One server process (`fmnist serve {' '.join(result['server_args'])}`), client on the same machine;"
        f" {result['images']}.",
        "",
        f"Start-up (process start to the first /healthz answer): **{result['start_seconds']:.2f} s**.",
        "",
        "| concurrency | requests | errors | requests/s | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in result["phases"]:
        lines.append(
            f"| {p['concurrency']} | {p['requests']:,} | {p['errors']} | {p['requests_per_s']:,.1f} |"
            f" {p['p50_ms']:.2f} | {p['p90_ms']:.2f} | {p['p99_ms']:.2f} | {p['max_ms']:.2f} |"
        )
    lines += [
        "",
        f"Server memory (RSS): {mb(mem['after_start'])} after start-up, {mb(mem['after_warmup'])} after"
        f" warm-up, {mb(mem['before_last_1000'])} before the last 1,000 requests, {mb(mem['after_last_1000'])}"
        f" after them ({result['memory_growth_last_1000']:+.1%}).",
        "",
        "Checks: "
        + ", ".join(f"{k.replace('_', ' ')} {'yes' if v else 'NO'}" for k, v in result["checks"].items())
        + ".",
        "",
        "Targets on 2 CPU cores (the project's; reported, not asserted): p50 under"
        f" {TARGETS['p50_ms_c1']:.0f} ms at concurrency 1; at 16, at least {TARGETS['rps_c16']:.0f} requests/s"
        f" with p99 under {TARGETS['p99_ms_c16']:.0f} ms; under {TARGETS['rss_mb']:.0f} MB per server process.",
    ]
    return "\n".join(lines) + "\n"


def new_results_dir(root: Path = RESULTS_ROOT, day: str | None = None) -> Path:
    """benchmarks/results/<date>-cpu-serve, or -2, -3... when that exists: never over earlier results."""
    base = f"{day or dt.date.today().isoformat()}-cpu-serve"
    for n in itertools.count(1):
        path = root / (base if n == 1 else f"{base}-{n}")
        if not path.exists():
            return path
    raise AssertionError("unreachable")


def write_results(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=False)
    (out / "loadtest.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "loadtest.md").write_text(markdown(result))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving.loadtest",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("models", nargs="+", metavar="MODEL", help="exported .onnx files or run directories")
    parser.add_argument(
        "--requests",
        type=int,
        default=DEFAULT_REQUESTS,
        help=f"requests per concurrency level (default: {DEFAULT_REQUESTS})",
    )
    parser.add_argument(
        "--concurrency", default=",".join(map(str, DEFAULT_CONCURRENCY)), help="comma-separated levels (default: 1,16)"
    )
    parser.add_argument("--workers", type=int, default=1, help="server processes (fmnist serve --workers)")
    parser.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS, help="stop after this long, whatever")
    parser.add_argument("--data-dir", help="Fashion-MNIST folder (default: $FMNIST_DATA_DIR, then the user cache)")
    parser.add_argument("--out", type=Path, help="results folder (default: benchmarks/results/<date>-cpu-serve)")
    args = parser.parse_args(argv)
    try:
        levels = tuple(int(c) for c in args.concurrency.split(","))
        if args.requests < 1 or any(c < 1 for c in levels):
            raise ValueError
    except ValueError:
        parser.error(
            f"--requests and --concurrency take whole numbers >= 1, got {args.requests} and {args.concurrency!r}"
        )
    out = args.out or new_results_dir()
    if out.exists():
        parser.error(f"{out} exists; results are never written over, choose another --out")
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    try:
        result = run_loadtest(
            args.models,
            args.requests,
            levels,
            args.data_dir,
            args.max_seconds,
            ("--workers", str(args.workers)) if args.workers > 1 else (),
            log=log,
        )
    except FmnistError as exc:
        print(f"fmnist: error: {exc}", file=sys.stderr)
        return 2
    write_results(result, out)
    print(markdown(result))
    print(f"written: {out / 'loadtest.json'} and {out / 'loadtest.md'}")
    return 0 if all(result["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
