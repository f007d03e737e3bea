"""One measurement in a fresh process, as every benchmark worker runs: a job (`fmnist.job`) whose
request holds the spec, started from the checkout by the project's one launcher
(`fmnist.launch`), its result read back. Never raises: a timeout or a crash before the
worker could write becomes {"status": "error", ...} with the last lines of its output. No
framework imported."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks import REPO
from fmnist import job, launch
from fmnist.message import write_message


def run_spec(kind: str, spec: dict[str, Any], env: dict[str, str], tmp: Path, timeout: float | None) -> dict[str, Any]:
    """The worker's result, with `process_wall_seconds`; `tmp` is the caller's scratch folder (it
    may also hold caches the caller points `env` at)."""
    request, out, log = tmp / job.REQUEST_FILE, tmp / "out", tmp / "worker.log"
    write_message(request, job.request(kind, spec=spec))
    began = time.perf_counter()
    code = launch.run(job.command(request, out), env, log, timeout=timeout, cwd=REPO)
    answer = job.read_result(out)
    if code is None:
        result: dict[str, Any] = {"status": "error", "error": f"timed out after {timeout:.0f} s"}
    elif answer is not None:
        result = answer
    else:  # a crash (segfault, out of memory) before the worker could write
        result = {"status": "error", "error": f"worker exited with code {code}: {launch.log_tail(log)}"}
    result["process_wall_seconds"] = time.perf_counter() - began
    return result
