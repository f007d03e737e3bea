"""The checks themselves, on what two engines measured in their own processes: the same layers
(structure), the same function with each other's weights (weight transfer both ways) and the same
training steps (lockstep), judged by the tolerance rule (parity.tolerance). Numpy only:
the engines ran elsewhere (`fmnist.engine_job`)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from parity.result import ParityResult
from parity.tolerance import float32_allowed
from fmnist.architecture import layer_plan
from fmnist.config import Config, OptimizerConfig, config_from_dict, config_to_dict
from fmnist.splits import Split, batch_slices, epoch_permutation


def without_dropout(config: Config, optimizer: OptimizerConfig | None = None) -> Config:
    """Dropout masks come from each framework's own generator, so lockstep turns dropout off."""
    raw = config_to_dict(config)
    for block in raw["model"]["conv_blocks"]:
        block["dropout"] = 0.0
    raw["model"]["dense_dropout"] = 0.0
    if optimizer is not None:
        raw["train"]["optimizer"] = dataclasses.asdict(optimizer)
    return config_from_dict(raw)


def lockstep_batches(config: Config, train: Split, steps: int, batch_size: int) -> tuple[list, list]:
    """The first `steps` batches of epoch 0 in the shared order: (images, labels) per batch."""
    order = epoch_permutation(len(train), config.seed, 0)
    batches = [order[s] for s in batch_slices(len(train), batch_size)][:steps]
    return [train.images[i] for i in batches], [train.labels[i] for i in batches]


def randomise_batch_norm(config: Config, weights: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Non-trivial running statistics and affine weights, so their transfer is really tested
    (every engine starts them at 1, 0, 0, 1)."""
    rng = np.random.default_rng(seed)
    out = dict(weights)
    for spec in layer_plan(config):
        if spec.kind == "batch_norm":
            n = spec.args["channels"]
            out[f"{spec.name}.running_mean"] = (rng.standard_normal(n) * 0.5).astype(np.float32)
            out[f"{spec.name}.running_var"] = (rng.random(n) + 0.5).astype(np.float32)
            out[f"{spec.name}.weight"] = (rng.random(n) + 0.5).astype(np.float32)
            out[f"{spec.name}.bias"] = (rng.standard_normal(n) * 0.1).astype(np.float32)
    return out


def check_structure(config: Config, tables: dict[str, list[dict[str, Any]]], result: ParityResult) -> None:
    """Per layer of the plan, both engines' names, output shapes (H, W, C) and parameter counts."""
    (a, rows_a), (b, rows_b) = tables.items()
    plan = layer_plan(config)
    mismatches = abs(len(rows_a) - len(plan)) + abs(len(rows_b) - len(plan))
    for spec, ra, rb in zip(plan, rows_a, rows_b):
        ok = ra["name"] == rb["name"] == spec.name and ra["shape"] == rb["shape"] and ra["params"] == rb["params"]
        mismatches += not ok
        result.layers.append(
            {
                "name": spec.name,
                "kind": spec.kind,
                f"{a}_shape": list(ra["shape"]),
                f"{b}_shape": list(rb["shape"]),
                f"{a}_params": int(ra["params"]),
                f"{b}_params": int(rb["params"]),
                "match": ok,
            }
        )
    total_a, total_b = (sum(int(r["params"]) for r in rows) for rows in (rows_a, rows_b))
    result.add(
        "structure: layers, shapes and parameter counts",
        mismatches,
        0,
        f"{len(plan)} layers, {total_a:,} {a} vs {total_b:,} {b} parameters",
        passed=mismatches == 0 and total_a == total_b,
    )


def check_weight_transfer(
    logits: dict[tuple[str, str, str], np.ndarray],
    engines: tuple[str, str],
    result: ParityResult,
    tolerance: float = 1e-5,
) -> None:
    """Weights drawn by one engine give the same logits in both: `logits[(drawn by, run by,
    dtype)]`. To `tolerance` in float64 (the math), and in float32 to `tolerance` or twice each
    engine's own float32 rounding, whichever is larger (a deep network with batch norm rounds to
    ~1e-5 in float32; a wrong flatten order or epsilon shows as ~1)."""
    a, b = engines
    for source, target in ((a, b), (b, a)):
        run = {(e, dtype): logits[(source, e, dtype)] for e in engines for dtype in ("float32", "float64")}
        n = len(run[(a, "float32")])
        diff64 = float(np.abs(run[(a, "float64")] - run[(b, "float64")]).max())
        result.add(
            f"weight transfer {source} -> {target}, float64: max |logit diff|", diff64, tolerance, f"{n} test images"
        )
        diff32 = float(np.abs(run[(a, "float32")] - run[(b, "float32")]).max())
        noise = max(float(np.abs(run[(e, "float32")] - run[(e, "float64")]).max()) for e in engines)
        allowed = float32_allowed(tolerance, noise)
        same = int((run[(a, "float32")].argmax(1) == run[(b, "float32")].argmax(1)).sum())
        result.add(
            f"weight transfer {source} -> {target}, float32: max |logit diff|",
            diff32,
            allowed,
            f"{n} test images, {same} identical predictions",
            passed=diff32 <= allowed and same == n,
        )


def add_rounded_checks(
    result: ParityResult, s: dict[str, Any], low: str, name: str, steps: int, loss_detail: str, grads_note: str = ""
) -> None:
    """The lines of one lockstep comparison (`compare_lockstep`'s summary) at its lower precision
    `low` (float32 against float64, or bf16 against float32): step-0 gradients, the loss per step
    and the batch-norm running statistics, each against twice the engines' own rounding. `name`
    holds `{what}`, the quantity; the loss line shows the step furthest beyond its allowance."""
    grads, loss = s["gradients"], s["loss"]
    worst = grads[f"{low}_worst"]
    result.add(
        name.format(what="step-0 gradients, max |diff|"),
        grads[f"{low}_max_abs_diff"][worst],
        grads[f"{low}_allowed"],
        f"worst tensor {worst}{grads_note}",
        passed=grads[f"{low}_pass"],
    )
    worst_step = int(np.argmax(np.array(loss[f"{low}_rel_diff"]) / np.array(loss[f"{low}_allowed"])))
    result.add(
        name.format(what=f"loss over {steps} steps, max rel diff"),
        loss[f"{low}_rel_diff"][worst_step],
        loss[f"{low}_allowed"][worst_step],
        loss_detail,
        passed=loss[f"{low}_pass"],
    )
    if "running_stats" in s:
        bn = s["running_stats"]
        result.add(
            name.format(what="batch-norm running statistics, max |diff|"),
            bn[f"{low}_max_abs_diff"][bn[f"{low}_worst"]],
            bn[f"{low}_allowed"],
            f"worst {bn[f'{low}_worst']}",
            passed=bn[f"{low}_pass"],
        )


def add_lockstep_checks(
    result: ParityResult,
    label: str,
    s: dict[str, Any],
    engines: tuple[str, str],
    steps: int,
    tol: float,
    low: str = "float32",
    high: str = "float64",
) -> None:
    """The lines of one optimizer's lockstep (`compare_lockstep`'s summary): at `high`, the math,
    to `tol`; at `low`, the math plus rounding (`add_rounded_checks`)."""
    a, b = engines
    grads, loss = s["gradients"], s["loss"]
    result.add(
        f"lockstep {label}, {high}: step-0 gradients, max |diff|",
        grads[f"{high}_max_abs_diff"],
        tol,
        f"worst tensor {grads[f'{high}_worst']}",
    )
    result.add(f"lockstep {label}, {high}: loss over {steps} steps, max rel diff", max(loss[f"{high}_rel_diff"]), tol)
    if "running_stats" in s:
        bn = s["running_stats"]
        result.add(
            f"lockstep {label}, {high}: batch-norm running statistics, max |diff|",
            bn[f"{high}_max_abs_diff"],
            tol,
            f"worst {bn[f'{high}_worst']}",
        )
    final = f"final loss {a} {loss[f'{a}_{low}'][-1]:.6f} vs {b} {loss[f'{b}_{low}'][-1]:.6f}"
    add_rounded_checks(result, s, low, f"lockstep {label}, {low}: {{what}}", steps, final)
