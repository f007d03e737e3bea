"""The tolerance rule of every parity check, and the comparison of two lockstep runs under it.

Pure numpy: it judges numbers the checks measured (compare.parity_checks, compare.bf16_parity,
and compare.export_check for ONNX exports), it loads no framework.
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
    r32: dict[str, Any],
    r64: dict[str, Any],
    tolerance: float = 1e-5,
    low: str = "float32",
    high: str = "float64",
    running_noise: bool = False,
) -> dict[str, Any]:
    """Keras vs torch at float64 (the math) and at float32 (the math plus rounding).

    In float64 the two must agree to `tolerance`: any convention mismatch (epsilon placement,
    momentum, biased variance) shows up far above it. In float32 the tolerance is `tolerance`
    or twice the rounding error each framework makes against its own float64 run, whichever is
    larger: batch norm's statistics over B*H*W values lose ~1e-4 in float32 in both frameworks,
    and then only a difference beyond that noise would mean different math. `low` and `high`
    name the two precisions (compare.bf16_parity: bf16-mixed against float32, the same rule).
    running_noise: a step's loss tolerance uses the largest rounding reached by then (bf16
    trajectories drift apart chaotically, so a step where bf16 happens to meet float32 again
    says nothing about the size of the rounding).
    """
    summary: dict[str, Any] = {}
    for quantity, key in (("gradients", "grads"), ("running_stats", "running")):
        if not r32[f"keras_{key}"]:
            continue
        diff64 = _max_diff(r64[f"keras_{key}"], r64[f"torch_{key}"])
        diff32 = _max_diff(r32[f"keras_{key}"], r32[f"torch_{key}"])
        noise = {
            k: max(
                _max_diff(r32[f"keras_{key}"], r64[f"keras_{key}"])[k],
                _max_diff(r32[f"torch_{key}"], r64[f"torch_{key}"])[k],
            )
            for k in diff32
        }
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
    rel64 = _rel(r64["keras_loss"], r64["torch_loss"])
    rel32 = _rel(r32["keras_loss"], r32["torch_loss"])
    noise = [
        max(a, b)
        for a, b in zip(_rel(r64["keras_loss"], r32["keras_loss"]), _rel(r64["torch_loss"], r32["torch_loss"]))
    ]
    if running_noise:
        noise = np.maximum.accumulate(noise).tolist()
    allowed = [float32_allowed(tolerance, n) for n in noise]
    summary["loss"] = {
        f"keras_{low}": r32["keras_loss"],
        f"torch_{low}": r32["torch_loss"],
        f"{high}_rel_diff": rel64,
        f"{low}_rel_diff": rel32,
        f"{low}_allowed": allowed,
        f"{low}_pass": all(d <= a for d, a in zip(rel32, allowed)),
    }
    return summary
