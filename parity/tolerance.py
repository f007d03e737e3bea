"""The tolerance rule of every parity check, and the comparison of two lockstep runs under it.

Pure numpy: it judges numbers the checks measured (parity.checks, parity.bf16,
and export.check for ONNX exports), it loads no framework.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def float32_allowed(tolerance: float, rounding: float) -> float:
    """The float32 tolerance: `tolerance`, or twice the rounding each framework makes against its
    own float64 result if that is larger (only a difference beyond it means different math)."""
    return max(tolerance, 2 * rounding)


def _max_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float]:
    return {k: float(np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64)).max()) for k in a}


def _rel(a: list[float], b: list[float]) -> list[float]:
    return [abs(x - y) / abs(x) for x, y in zip(a, b)]


def compare_lockstep(
    low_runs: dict[str, dict[str, Any]],
    high_runs: dict[str, dict[str, Any]],
    tolerance: float = 1e-5,
    low: str = "float32",
    high: str = "float64",
    running_noise: bool = False,
) -> dict[str, Any]:
    """Two engines' lockstep runs (each {"loss", "grads", "running"}, by engine name, the same
    two in both) at float64 (the math) and at float32 (the math plus rounding).

    In float64 the two must agree to `tolerance`: any convention mismatch (epsilon placement,
    momentum, biased variance) shows up far above it. In float32 the tolerance is `tolerance`
    or twice the rounding error each engine makes against its own float64 run, whichever is
    larger: batch norm's statistics over B*H*W values lose ~1e-4 in float32 in every framework,
    and then only a difference beyond that noise would mean different math. `low` and `high`
    name the two precisions (parity.bf16: bf16-mixed against float32, the same rule).
    running_noise: a step's loss tolerance uses the largest rounding reached by then (bf16
    trajectories drift apart chaotically, so a step where bf16 happens to meet float32 again
    says nothing about the size of the rounding).
    """
    a, b = low_runs
    lo_a, lo_b, hi_a, hi_b = low_runs[a], low_runs[b], high_runs[a], high_runs[b]
    summary: dict[str, Any] = {}
    for quantity, key in (("gradients", "grads"), ("running_stats", "running")):
        if not lo_a[key]:
            continue
        diff64 = _max_diff(hi_a[key], hi_b[key])
        diff32 = _max_diff(lo_a[key], lo_b[key])
        noise = {k: max(_max_diff(lo_a[key], hi_a[key])[k], _max_diff(lo_b[key], hi_b[key])[k]) for k in diff32}
        allowed = {k: float32_allowed(tolerance, noise[k]) for k in diff32}
        worst = max(diff32, key=lambda k: diff32[k] / allowed[k])
        summary[quantity] = {
            f"{high}_max_abs_diff": max(diff64.values()),
            f"{high}_worst": max(diff64, key=diff64.get),
            f"{low}_max_abs_diff": diff32,
            f"{low}_rounding": noise,
            f"{low}_worst": worst,
            f"{low}_allowed": allowed[worst],
            f"{low}_pass": all(diff32[k] <= allowed[k] for k in diff32),
        }
    rel64 = _rel(hi_a["loss"], hi_b["loss"])
    rel32 = _rel(lo_a["loss"], lo_b["loss"])
    noise = [max(x, y) for x, y in zip(_rel(hi_a["loss"], lo_a["loss"]), _rel(hi_b["loss"], lo_b["loss"]))]
    if running_noise:
        noise = np.maximum.accumulate(noise).tolist()
    allowed = [float32_allowed(tolerance, n) for n in noise]
    summary["loss"] = {
        f"{a}_{low}": lo_a["loss"],
        f"{b}_{low}": lo_b["loss"],
        f"{high}_rel_diff": rel64,
        f"{low}_rel_diff": rel32,
        f"{low}_allowed": allowed,
        f"{low}_pass": all(d <= x for d, x in zip(rel32, allowed)),
    }
    return summary
