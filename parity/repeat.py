"""The run-to-run spread: one lockstep run twice per engine, in two fresh processes at once, and
the largest difference between the two. Zero where the engine's path is deterministic (the CPU's,
a GPU's with deterministic algorithms); elsewhere it is the noise a parity figure carries, said
beside the checks, never folded into a wider tolerance. Numpy only."""

from __future__ import annotations

from typing import Any

import numpy as np

from parity.result import ParityResult
from parity.tolerance import _max_diff


def spread(first: dict[str, Any], second: dict[str, Any]) -> dict[str, float]:
    """Largest |difference| between two runs of one lockstep: losses, the first step's gradients,
    the running statistics (where the network has them)."""
    out = {"loss": float(np.abs(np.subtract(first["loss"], second["loss"], dtype=np.float64)).max())}
    for key in ("grads", "running"):
        if first[key]:
            out[key] = max(_max_diff(first[key], second[key]).values())
    return out


def add_run_to_run(
    result: ParityResult, firsts: dict[str, dict[str, Any]], seconds: dict[str, dict[str, Any]], what: str
) -> None:
    """Each engine's spread between its two runs of the lockstep `what` names, in the result and
    one note (the same to the bit, or the largest difference)."""
    engines = {e: spread(firsts[e], seconds[e]) for e in firsts}
    result.run_to_run = {
        "lockstep": what,
        "engines": {e: {"max_abs_diff": s, "bitwise_equal": not any(s.values())} for e, s in engines.items()},
    }
    shown = [
        f"{e} {'the same to the bit' if not any(s.values()) else f'max |diff| {max(s.values()):.3g}'}"
        for e, s in engines.items()
    ]
    result.notes.append(f"run to run ({what}; the same lockstep in two fresh processes): {'; '.join(shown)}")
