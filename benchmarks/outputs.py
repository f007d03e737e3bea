"""Where `fmnist benchmark` writes (never over earlier results) and what: benchmark.json,
benchmark.md and benchmark.png. No framework imported."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.plan import BenchmarkError

RESULT_FILES = ("benchmark.json", "benchmark.md", "benchmark.png")


def shown(path: Path) -> str:
    """A path as a log shows it: relative to the working directory (the checkout) when inside it,
    else the folder's name alone. The GPU run's log is published beside its results, where the
    paths of the machine that wrote it mean nothing."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path.name


def default_out_dir(device: str, now: dt.datetime) -> Path:
    return Path("benchmarks") / "results" / f"{now:%Y-%m-%d}-{'gpu' if device == 'cuda' else 'cpu'}"


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


def write_outputs(result: dict[str, Any], out: Path) -> None:
    from fmnist.rundir import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "benchmark.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(out / "benchmark.md", report.markdown_report(result))
    s = result["settings"]
    title = f"fmnist benchmark, {s['device']}, {result['environment']['hardware']['cpu_model']} ({result['created']})"
    if result["measurements"]:
        report.plot_throughput(result["measurements"], out / "benchmark.png", title)
