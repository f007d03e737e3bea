"""`fmnist parity`: numerical proof that two engines (`fmnist.engines`) are the same math.

Three checks, in float32 and float64 on CPU with TF32 off, none needing a full training:
1. structure: per layer, output shape and parameter count equal;
2. weight transfer both ways: each engine's initial weights (batch-norm statistics randomised)
   run in both give logits that agree to 1e-5 in float64, and in float32 to 1e-5 or twice each
   engine's own float32 rounding, with identical predictions (inference mode);
3. lockstep training: the same initial weights, the same batches, dropout off; the first step's
   gradients agree per tensor, and the per-step loss agrees over the first steps, for SGD with
   momentum and for Adam (Lightning runs `KerasAdam`); with batch norm, the running statistics
   after those steps agree too.
Each engine runs in a process of its own (`fmnist.engine_job`): two Keras backends cannot share
one. The parts: the checks (compare.parity_checks), what they report (parity_result), the
tolerance rule (parity_tolerance).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from compare.parity_checks import (
    add_lockstep_checks,
    check_structure,
    check_weight_transfer,
    lockstep_batches,
    randomise_batch_norm,
    without_dropout,
)
from compare.parity_result import ParityResult, format_table
from compare.parity_tolerance import compare_lockstep, float32_allowed
from fmnist.config import Config, OptimizerConfig, with_overrides
from fmnist.engine_job import call, run_jobs
from fmnist import engines as registry
from fmnist.engines import DEFAULT_PAIR
from fmnist.splits import Split

#: Besides run_parity, what the command and compare.bf16_parity / export_check import from here.
__all__ = [
    "ParityResult",
    "call",
    "compare_lockstep",
    "float32_allowed",
    "format_table",
    "lockstep_calls",
    "lockstep_runs",
    "run_parity",
    "without_dropout",
]
DTYPES = ("float32", "float64")


def lockstep_options(engine: str, pair: tuple[str, ...]) -> dict[str, Any]:
    """What one engine's lockstep is told of the others: how to cast the optimizer's Python-float
    constants. An engine that follows (`constant_casts: "follow"`) casts as its partners' framework
    does (through float32 on TensorFlow, exactly on JAX and torch; it shows in float64 alone,
    docs/parity.md); the others do as their framework does whatever they are told."""
    fixed = {registry.engine(e).constant_casts for e in pair if e != engine} - {"follow"}
    return {"casts": "float32" if "float32" in fixed else "exact"} if fixed else {}


def lockstep_calls(
    engine: str,
    runs: list[tuple[Config, str]],
    weights: dict[str, np.ndarray],
    batches: tuple[list, list],
    engines: tuple[str, ...],
) -> list[dict[str, Any]]:
    """One engine's lockstep calls, one per (config, dtype), for a job that may do more."""
    images, labels = batches
    extra = lockstep_options(engine, engines)
    return [call("lockstep", c, weights=weights, images=images, labels=labels, dtype=d, **extra) for c, d in runs]


def lockstep_runs(
    runs: list[tuple[Config, str]],
    weights: dict[str, np.ndarray],
    batches: tuple[list, list],
    engines: tuple[str, ...],
    in_process: bool = False,
) -> list[dict[str, dict[str, Any]]]:
    """Each (config, dtype) trained in lockstep by every engine from `weights` on `batches`:
    per run, {engine: {"loss", "grads", "running"}}."""
    answers = run_jobs([(e, lockstep_calls(e, runs, weights, batches, engines)) for e in engines], in_process)
    return [{e: a["results"][i] for e, a in zip(engines, answers)} for i in range(len(runs))]


def run_parity(
    config: Config,
    images: np.ndarray,
    train: Split,
    steps: int = 10,
    batch_size: int = 128,
    sgd_lr: float = 0.01,
    engines: tuple[str, str] = DEFAULT_PAIR,
    in_process: bool = False,
) -> ParityResult:
    """Every check for one config and two engines; `images` are test images for the transfer check.

    The checks compare the math at float32 and float64, so a bf16-mixed config is checked at
    float32 (bfloat16's 8 bits of mantissa would hide every convention this checks).
    in_process: both engines in this process (those that can share one; tests plant faults so)."""
    if config.train.precision != "float32":
        config = with_overrides(config, {"train.precision": "float32"})
    a, b = engines
    result = ParityResult()
    first = run_jobs([(e, [call("layer_table", config), call("initial_weights", config)]) for e in engines], in_process)
    check_structure(config, {e: r["results"][0] for e, r in zip(engines, first)}, result)
    drawn = {e: r["results"][1] for e, r in zip(engines, first)}
    transfer = {e: randomise_batch_norm(config, drawn[e], config.seed + i) for i, e in enumerate(engines)}

    optimizers = {
        "sgd_momentum": OptimizerConfig(name="sgd", lr=sgd_lr, momentum=0.9),
        "adam": config.train.optimizer if config.train.optimizer.name == "adam" else OptimizerConfig(name="adam"),
    }
    if config.train.optimizer.name == "adamw":  # decoupled weight decay: Keras' AdamW vs KerasAdam's
        optimizers["adamw"] = config.train.optimizer
    images_b, labels_b = lockstep_batches(config, train, steps, batch_size)
    logit_calls = [call("logits", config, weights=transfer[s], images=images, dtype=d) for s in engines for d in DTYPES]
    runs = [(without_dropout(config, opt), d) for opt in optimizers.values() for d in DTYPES]

    def lockstep_calls(e: str) -> list[dict[str, Any]]:  # from the first engine's own draws
        extra = lockstep_options(e, engines)
        return [
            call("lockstep", c, weights=drawn[a], images=images_b, labels=labels_b, dtype=d, **extra) for c, d in runs
        ]

    second = run_jobs([(e, logit_calls + lockstep_calls(e)) for e in engines], in_process)
    results = {e: iter(r["results"]) for e, r in zip(engines, second)}
    logits = {(src, e, d): next(results[e]) for src in engines for d in DTYPES for e in engines}
    check_weight_transfer(logits, engines, result)
    tol = 1e-5
    for label in optimizers:
        run = {d: {e: next(results[e]) for e in engines} for d in DTYPES}
        s = compare_lockstep(run["float32"], run["float64"], tol)
        result.lockstep[label] = s
        add_lockstep_checks(result, label, s, engines, steps, tol)
    for e, r in zip(engines, second):
        result.notes.append(f"{e}: " + ", ".join(f"{k} {v}" for k, v in r["versions"].items()))
    return result
