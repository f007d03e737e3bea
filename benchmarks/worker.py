"""One benchmark measurement in a process of its own: `python -m benchmarks.worker SPEC.json OUT.json`.

`benchmarks.orchestrate` starts one of these per (runner, variant, batch size, repeat), so each
framework has the process to itself (no TensorFlow/torch import-order trap, no shared thread
pools, a fresh peak-memory counter). The spec says what to measure; the result (or the error)
is written as JSON to OUT.json. The runner measures: `keras` in `keras_runner`, `lightning` and
`plain torch` in `torch_runner`; the variant's settings come from `variants`.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any


if os.environ.get("KERAS_BACKEND", "tensorflow") != "jax":
    try:  # torch (with dynamo) before anything can load TensorFlow: the other order crashes
        import torch  # noqa: F401
        import torch._dynamo  # noqa: F401
    except ImportError:
        pass

from benchmarks.environment import framework_versions  # noqa: E402
from benchmarks.measuring import peak_rss_mib  # noqa: E402
from benchmarks.variants import variant_config, variant_for  # noqa: E402
from fmnist.config import load_config  # noqa: E402


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """The measurement `spec` asks for; never raises (an error is recorded in the result)."""
    began = time.perf_counter()
    result: dict[str, Any] = {"spec": spec}
    try:
        variant = variant_for(spec["runner"], spec["variant"])  # refuses what the table lacks
        config = variant_config(load_config(spec["config"]), variant.name)
        if spec["runner"] == "keras":
            from benchmarks.keras_runner import measure_keras as measure
        else:
            from benchmarks.torch_runner import measure_torch as measure
        result.update(measure(spec, config, variant))
        result["status"] = "ok"
    except Exception as exc:  # recorded, never fatal: the benchmark goes on with the others
        result["status"] = "error"
        result["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        result["traceback"] = traceback.format_exc(limit=8)
    result.setdefault("peak_memory_mib", peak_rss_mib())
    result.setdefault("peak_memory_kind", "process peak RSS (VmHWM)")
    result["process_rss_peak_mib"] = peak_rss_mib()
    result["versions"] = framework_versions(spec["runner"])
    result["worker_seconds"] = time.perf_counter() - began
    return result


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m benchmarks.worker SPEC.json OUT.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    result = run(spec)
    Path(argv[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
