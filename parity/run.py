"""`fmnist parity`: numerical proof that two engines (`fmnist.engines`) are the same math.

Three checks, in float32 and float64 with TF32 off, on the CPU or a GPU (`device`, each engine's
`Parity.placement`), none needing a full training:
1. structure: per layer, output shape and parameter count equal;
2. weight transfer both ways: each engine's initial weights (batch-norm statistics randomised)
   run in both give logits that agree to 1e-5 in float64, and in float32 to 1e-5 or twice each
   engine's own float32 rounding, with identical predictions (inference mode);
3. lockstep training: the same initial weights, the same batches, dropout off; the first step's
   gradients agree per tensor, and the per-step loss agrees over the first steps, for SGD with
   momentum and for Adam (Lightning runs `KerasAdam`); with batch norm, the running statistics
   after those steps agree too.
Each engine runs in a process of its own (`fmnist.engine_job`): two Keras backends cannot share
one. The parts: the checks (parity.checks), what they report (parity_result), the
tolerance rule (parity_tolerance), the run-to-run spread beside them (parity_repeat).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from parity.checks import (
    add_lockstep_checks,
    check_structure,
    check_weight_transfer,
    lockstep_batches,
    randomise_batch_norm,
    without_dropout,
)
from parity.repeat import add_run_to_run
from parity.result import ParityResult, format_table
from parity.tolerance import compare_lockstep, float32_allowed
from fmnist.config import Config, OptimizerConfig, with_overrides
from fmnist.engine_job import call, on_device, run_jobs
from fmnist import engines as registry
from fmnist.engines import DEFAULT_PAIR
from fmnist.splits import Split

#: Besides run_parity, what the command, the tests and parity.bf16 import from here.
__all__ = [
    "ParityResult",
    "call",
    "compare_lockstep",
    "float32_allowed",
    "format_table",
    "lockstep_calls",
    "lockstep_runs",
    "on_device",
    "run_on",
    "run_parity",
    "without_dropout",
]
DTYPES = ("float32", "float64")


def run_on(device: str, jobs: list[tuple[str, list[dict[str, Any]]]], in_process: bool = False) -> list[dict]:
    """`run_jobs` for calls computed on `device`: each job in the environment its engine declares
    for it (no GPU in sight on the CPU); off the CPU each job first sets its framework up there
    (`Parity.placement`: the device's name and what was set, as "placement" in its answer)."""
    if device == "cpu":
        return run_jobs(jobs, in_process, device)
    placed = [(e, [call("placement", device=device), *calls]) for e, calls in jobs]
    return [
        {**a, "placement": a["results"][0], "results": a["results"][1:]} for a in run_jobs(placed, in_process, device)
    ]


def add_placements(result: ParityResult, engines: tuple[str, ...], answers: list[dict[str, Any]]) -> None:
    """Where each engine computed and with what set, off the CPU: in the result and its notes."""
    for e, answer in zip(engines, answers):
        if "placement" in answer:
            result.placement[e] = answer["placement"]
            result.notes.append(f"{e} on {answer['placement']['device']}: {'; '.join(answer['placement']['settings'])}")


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
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """One engine's lockstep calls, one per (config, dtype), for a job that may do more."""
    images, labels = batches
    extra = {**lockstep_options(engine, engines), **on_device(device)}
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
    device: str = "cpu",
    repeat: bool = False,
) -> ParityResult:
    """Every check for one config and two engines; `images` are test images for the transfer check.

    The checks compare the math at float32 and float64, so a bf16-mixed config is checked at
    float32 (bfloat16's 8 bits of mantissa would hide every convention this checks).
    device: where the engines compute ("cpu" or "cuda"). repeat: each engine also runs the config's
    own optimizer's float32 lockstep once more, in a fresh process beside the others, and the
    result holds the largest difference between the two runs (`parity_repeat`).
    in_process: both engines in this process (those that can share one; tests plant faults so)."""
    if config.train.precision != "float32":
        config = with_overrides(config, {"train.precision": "float32"})
    a, b = engines
    result = ParityResult()
    on = on_device(device)
    drawing = [call("layer_table", config, **on), call("initial_weights", config, **on)]
    first = run_on(device, [(e, drawing) for e in engines], in_process)
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
    logit_calls = [
        call("logits", config, weights=transfer[s], images=images, dtype=d, **on) for s in engines for d in DTYPES
    ]
    runs = [(without_dropout(config, opt), d) for opt in optimizers.values() for d in DTYPES]
    again = len(runs) - len(DTYPES)  # the config's own optimizer (the last), float32: run twice with repeat

    steps_of = {e: lockstep_calls(e, runs, drawn[a], (images_b, labels_b), engines, device) for e in engines}
    jobs = [(e, logit_calls + steps_of[e]) for e in engines]  # every engine from the first one's draws
    answers = run_on(device, jobs + ([(e, [steps_of[e][again]]) for e in engines] if repeat else []), in_process)
    second = answers[: len(engines)]
    results = {e: iter(r["results"]) for e, r in zip(engines, second)}
    logits = {(src, e, d): next(results[e]) for src in engines for d in DTYPES for e in engines}
    check_weight_transfer(logits, engines, result)
    tol = 1e-5
    for label in optimizers:
        run = {d: {e: next(results[e]) for e in engines} for d in DTYPES}
        s = compare_lockstep(run["float32"], run["float64"], tol)
        result.lockstep[label] = s
        add_lockstep_checks(result, label, s, engines, steps, tol)
    if repeat:  # `run` is the last optimizer's: the config's own
        repeated = {e: r["results"][0] for e, r in zip(engines, answers[len(engines) :])}
        add_run_to_run(result, run["float32"], repeated, f"{label}, float32, {steps} steps")
    add_placements(result, engines, second)
    for e, r in zip(engines, second):
        result.notes.append(f"{e}: " + ", ".join(f"{k} {v}" for k, v in r["versions"].items()))
    return result
