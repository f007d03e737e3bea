"""One measurement in a fresh process, as every benchmark worker runs: the spec written to
SPEC.json, `python -m MODULE SPEC.json OUT.json` started from the checkout by the project's one
launcher (`fmnist.launch`), its JSON read back. Never raises: a timeout or a crash before the
worker could write becomes {"status": "error", ...} with the last lines of its output. No
framework imported."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from benchmarks import REPO
from fmnist import launch


def run_spec(
    module: str, spec: dict[str, Any], env: dict[str, str], tmp: Path, timeout: float | None
) -> dict[str, Any]:
    """The worker's result, with `process_wall_seconds`; `tmp` is the caller's scratch folder (it
    may also hold caches the caller points `env` at)."""
    spec_path, out_path, log = tmp / "spec.json", tmp / "out.json", tmp / "worker.log"
    spec_path.write_text(json.dumps(spec))
    began = time.perf_counter()
    code = launch.run(["-m", module, str(spec_path), str(out_path)], env, log, timeout=timeout, cwd=REPO)
    if code is None:
        result: dict[str, Any] = {"status": "error", "error": f"timed out after {timeout:.0f} s"}
    elif out_path.exists():
        result = json.loads(out_path.read_text())
    else:  # a crash (segfault, out of memory) before the worker could write
        result = {"status": "error", "error": f"worker exited with code {code}: {launch.log_tail(log)}"}
    result["process_wall_seconds"] = time.perf_counter() - began
    return result
