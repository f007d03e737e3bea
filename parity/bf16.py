"""`fmnist parity --precision bf16-mixed`: do the two frameworks round in the same places?

Both networks get the same weights and the same batch, each in its own bf16 mixed policy (a Keras
engine's `mixed_bfloat16`, on TensorFlow inside a tf.function as `model.fit` runs it; torch under
Lightning's bf16-mixed autocast), dropout off; each engine in a process of its own, answering the
contract's bf16 calls (`fmnist.engine_job`), this module only judging the numbers. Three checks,
each with its tolerance derived from bfloat16's 8-bit significand (7 bits stored; one unit in the
last place, ulp, is 2^-7 of the value's power of two):

1. per layer, layer by layer: every torch layer is fed the Keras layer's own input, so a layer's
   difference is that layer's alone. Two kernels that accumulate in float32 and round once to
   bfloat16 differ only where their float32 results, which differ by summation order (about
   sqrt(K) * 2^-24 of the value for K terms), straddle a bfloat16 rounding boundary: under 0.1%
   of the outputs for K <= 3,136, each by one ulp. Allowed: LAYER_SHARE of the outputs, one ulp.
   A rounding in another place, or a float32 island on one side only, changes 10-60% of them.
   The first layer beyond that is named.
2. logits, end to end from the same pixels: the two frameworks' bf16 logits differ by at most
   twice the larger of each framework's own bf16 rounding (its bf16 logits against its float32
   logits, same weights), the rule `fmnist parity` uses for float32 against float64.
3. lockstep training over the first steps (the config's optimizer): step-0 gradients per tensor
   and the loss per step, bf16 against the float32 run beside it, by the same rule; a step's
   loss is held to twice the largest own rounding reached by then (bf16 and float32 runs drift
   apart chaotically and may meet again by chance at one step).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from parity.bf16_accumulation import kernel_inputs, round_bf16
from parity.bf16_dtypes import probe_calls, table
from parity.bf16_trace import bf16_config
from parity.run import (
    ParityResult,
    add_placements,
    call,
    compare_lockstep,
    lockstep_calls,
    on_device,
    run_on,
    without_dropout,
)
from parity.checks import add_rounded_checks, lockstep_batches
from parity.repeat import add_run_to_run
from fmnist.architecture import layer_plan
from fmnist.config import Config, with_overrides
from fmnist.cpu_features import bf16_kernels, cpu_model
from fmnist.engines import DEFAULT_PAIR, labels
from fmnist.splits import Split

#: How the checks name each engine: what the engine declares.
LABELS = labels()

#: Share of a layer's outputs allowed to differ (by one ulp) between the frameworks; see above.
LAYER_SHARE = 0.01
LAYER_ULPS = 1.0  # the largest difference allowed, in bfloat16 ulps
TOLERANCE = 1e-5  # the float32 floor of the gradient/loss rule, as in parity.run
#: Said beside the checks on a CPU whose bf16 kernels are each framework's own emulation.
FALLBACK_NOTE = (
    "this CPU ({model}) has no AVX-512, so neither framework runs its bfloat16 matmuls and"
    " convolutions in oneDNN: TensorFlow falls back to Eigen kernels that round more than once, torch"
    " to its own; bf16 parity is a property of AVX-512 CPUs (docs/parity.md, 'CPUs without AVX-512')."
)


def ulp_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(share of elements that differ by a bfloat16 ulp or more, the largest difference in ulps),
    both rounded to bfloat16 first: the values the next layer computes with. An ulp is taken at
    the element's magnitude, or at the layer's RMS where the element is smaller: near zero an
    ulp shrinks without limit, and a float32 cancellation (batch norm's x - mean, computed in
    another order) would count as thousands of them."""
    a, b = round_bf16(a).astype(np.float64), round_bf16(b).astype(np.float64)
    if not a.size:
        return 0.0, 0.0
    diff = np.abs(a - b)
    rms = float(np.sqrt(np.mean(a**2))) or 1.0
    scale = np.maximum(np.maximum(np.abs(a), np.abs(b)), rms)
    ulps = diff / 2.0 ** (np.floor(np.log2(scale)) - 7)
    return float((ulps >= 1).mean()), float(ulps.max())


Chain = list[dict[str, Any]]  # an engine's `bf16_layer_outputs`: {"name", "output", "dtype", "note"} per layer


def _outputs_call(
    config: Config,
    weights: dict[str, np.ndarray],
    pixels: np.ndarray,
    partner: Chain | None = None,
    device: str = "cpu",
):
    """An engine job's call for every layer's output, chained, or fed the partner's chain."""
    fed = {} if partner is None else {
        "partner_outputs": [r["output"] for r in partner],
        "partner_dtypes": [r["dtype"] for r in partner],
    }  # fmt: skip
    return call("bf16_layer_outputs", config, weights=weights, pixels=pixels, **fed, **on_device(device))


def _first(engine: str, calls: list[dict[str, Any]], in_process: bool, device: str = "cpu") -> list[Any]:
    return run_on(device, [(engine, calls)], in_process)[0]["results"]


def layer_by_layer(
    config: Config,
    pixels: np.ndarray,
    engines: tuple[str, str] = DEFAULT_PAIR,
    in_process: bool = False,
    weights: dict[str, np.ndarray] | None = None,
    chained: Chain | None = None,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Check 1: each layer of the second engine fed the first engine's input to that layer,
    outputs compared in bf16 ulps. `weights`: the first engine's initial draws unless given;
    `chained`: the first engine's own chain, if already run. in_process: both engines here
    (tests plant faults so)."""
    config = without_dropout(bf16_config(config))
    if weights is None:
        weights = _first(engines[0], [call("initial_weights", config, **on_device(device))], in_process, device)[0]
    if chained is None:
        chained = _first(engines[0], [_outputs_call(config, weights, pixels, device=device)], in_process, device)[0]
    fed = _first(engines[1], [_outputs_call(config, weights, pixels, chained, device)], in_process, device)[0]
    rows = []
    for spec, k, t in zip(layer_plan(config), chained, fed):
        row = {"layer": spec.name, "kind": spec.kind}
        if t["note"]:  # nothing of its own to compare (torch's ReLU applied after the pool)
            rows.append({**row, "compared": False, "keras_dtype": k["dtype"], "note": t["note"]})
            continue
        share, ulps = ulp_difference(k["output"], t["output"])
        rows.append(
            {
                **row,
                "compared": True,
                "keras_dtype": k["dtype"],
                "torch_dtype": t["dtype"],
                "share_differing": share,
                "max_ulps": ulps,
                "passed": share <= LAYER_SHARE and ulps <= LAYER_ULPS,
            }
        )
    return rows


def end_to_end(config: Config, chains: dict[str, dict[str, Chain]]) -> dict[str, Any]:
    """Check 2, and the per-layer drift it comes from: both engines' chains from the same pixels
    (`chains[engine][precision]`, precision "bf16" or "f32", the first engine first); relative
    RMS difference per layer (first vs second) in each precision."""
    (ka, a), (kb, b) = chains.items()
    out: dict[str, Any] = {"layers": []}
    for i, spec in enumerate(layer_plan(config)):
        row: dict[str, Any] = {"layer": spec.name}
        if any(chains[e][p][i]["note"] for e in chains for p in ("bf16", "f32")):  # not comparable here
            out["layers"].append({**row, "bf16_rel_rms": None, "f32_rel_rms": None})
            continue
        ref = np.sqrt(np.mean(a["f32"][i]["output"].astype(np.float64) ** 2)) or 1.0
        for precision in ("bf16", "f32"):
            k, t = a[precision][i]["output"], b[precision][i]["output"]
            row[f"{precision}_rel_rms"] = float(np.sqrt(np.mean((k.astype(np.float64) - t) ** 2)) / ref)
        out["layers"].append(row)
    (kb16, tb16), (kf, tf32) = ((a[p][-1]["output"], b[p][-1]["output"]) for p in ("bf16", "f32"))
    own = max(float(np.abs(kb16 - kf).max()), float(np.abs(tb16 - tf32).max()))
    out["logits"] = {
        "max_abs_diff": float(np.abs(kb16 - tb16).max()),
        "own_rounding": own,
        "allowed": 2 * own,
        "same_predictions": int((kb16.argmax(1) == tb16.argmax(1)).sum()),
        "images": len(kb16),
    }
    return out


def add_layer_check(result: ParityResult, rows: list[dict[str, Any]], images: int) -> None:
    """Check 1 as one line: passes when every layer is within rounding, else names the first."""
    result.layers = rows
    compared = [r for r in rows if r["compared"]]
    first_bad = next((r for r in compared if not r["passed"]), None)
    shown = first_bad or max(compared, key=lambda r: (r["share_differing"] / LAYER_SHARE, r["max_ulps"]))
    where = (
        f"first layer beyond rounding: {first_bad['layer']} ({first_bad['keras_dtype']} in Keras,"
        f" {first_bad['torch_dtype']} in torch)"
        if first_bad
        else "every layer within rounding"
    )
    result.add(
        f"bf16 layer by layer (same input per layer): share of outputs differing, {shown['layer']}",
        shown["share_differing"],
        LAYER_SHARE,
        f"{where}; max {shown['max_ulps']:.0f} ulp (allowed {LAYER_ULPS:.0f}), {len(compared)} layers, {images} images",
        passed=first_bad is None,
    )


def run_bf16_parity(
    config: Config,
    train: Split,
    images: int = 128,
    steps: int = 10,
    batch_size: int = 128,
    engines: tuple[str, str] = DEFAULT_PAIR,
    in_process: bool = False,
    device: str = "cpu",
    repeat: bool = False,
) -> ParityResult:
    """Every bf16 check for one config and two engines offering a bf16 probe, each in a
    process of its own; `train` gives the batches (the first `images` for the forward checks, the
    shared batch order for lockstep). device: where the engines compute ("cpu" or "cuda").
    repeat: each engine runs its bf16 lockstep once more in a fresh process beside the others,
    and the result holds the largest difference between the two runs (`parity_repeat`).
    in_process: both here (tests plant faults so)."""
    config = bf16_config(config)
    result = ParityResult()
    if device == "cpu":  # which bf16 kernels the CPU has decides how both frameworks round there
        kernels = bf16_kernels()
        result.notes.append(f"cpu: {cpu_model()}; bf16 kernels: {kernels or 'unknown'}")
        if kernels == "no_avx512":
            result.notes.append(FALLBACK_NOTE.format(model=cpu_model()))
    pixels = train.images[:images].astype(np.float32)
    cfg = without_dropout(config)
    f32 = with_overrides(cfg, {"train.precision": "float32"})
    # The first engine's own initial draws, then in one job per engine: every layer's output in
    # bf16 and float32, lockstep bf16 and float32, its half of the dtype table; then the second
    # fed the first's outputs.
    arrays = kernel_inputs()
    start = _first(engines[0], [call("initial_weights", cfg, **on_device(device))], in_process, device)[0]
    batches = lockstep_batches(cfg, train, steps, batch_size)
    runs = [(cfg, "float32"), (f32, "float32")]
    jobs = [
        (
            e,
            [
                _outputs_call(cfg, start, pixels, device=device),
                _outputs_call(f32, start, pixels, device=device),
                *lockstep_calls(e, runs, start, batches, engines, device),
                *probe_calls(config, arrays, device),  # last: the op log sets TensorFlow's deterministic kernels
            ],
        )
        for e in engines
    ]
    again = [(e, lockstep_calls(e, runs[:1], start, batches, engines, device)) for e in engines] if repeat else []
    answers = run_on(device, jobs + again, in_process)
    repeated, answers = answers[len(engines) :], answers[: len(engines)]
    chains = {e: {"bf16": r["results"][0], "f32": r["results"][1]} for e, r in zip(engines, answers)}
    low, high = ({e: r["results"][i] for e, r in zip(engines, answers)} for i in (2, 3))

    # The engine that feeds the other each layer's input must give every layer an output of its
    # own: one that applies a ReLU after the pool (a note on the layer) is the one fed.
    order = engines if not any(row["note"] for row in chains[engines[0]]["bf16"]) else engines[::-1]
    rows = layer_by_layer(cfg, pixels, order, in_process, start, chains[order[0]]["bf16"], device)
    add_layer_check(result, rows, len(pixels))

    e2e = end_to_end(cfg, chains)
    result.lockstep["end_to_end"] = e2e
    logits = e2e["logits"]
    a, b = engines
    result.add(
        f"bf16 end to end: max |logit diff| {LABELS[a]} vs {LABELS[b]}",
        logits["max_abs_diff"],
        logits["allowed"],
        f"allowed: 2x own bf16 rounding ({logits['own_rounding']:.3g}); {logits['same_predictions']} of"
        f" {logits['images']} identical predictions",
    )

    name = config.train.optimizer.name
    s = compare_lockstep(low, high, TOLERANCE, low="bf16", high="float32", running_noise=True)
    result.lockstep[name] = s
    final = (
        f"final loss {LABELS[a]} {s['loss'][f'{a}_bf16'][-1]:.5f} vs {LABELS[b]} {s['loss'][f'{b}_bf16'][-1]:.5f}"
        f" (float32: {high[a]['loss'][-1]:.5f})"
    )
    add_rounded_checks(
        result, s, "bf16", f"bf16 lockstep {name}: {{what}}", steps, final, "; allowed: 2x own bf16 rounding"
    )
    if repeat:
        again_runs = {e: r["results"][0] for e, r in zip(engines, repeated)}
        add_run_to_run(result, low, again_runs, f"{name}, bf16-mixed, {steps} steps")
    result.dtypes = table(config, engines, arrays, [r["results"] for r in answers], device)
    result.notes.extend(result.dtypes.get("notes", []))
    add_placements(result, engines, answers)
    for e, r in zip(engines, answers):
        result.notes.append(f"{e}: " + ", ".join(f"{k} {v}" for k, v in r["versions"].items()))
    return result


def format_layers(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'layer':<16} {'Keras':<9} {'torch':<9} {'differing':>9} {'max ulp':>7}"]
    for r in rows:
        if not r["compared"]:
            lines.append(f"{r['layer']:<16} {r['keras_dtype']:<9} {'':<9} {'':>9} {'':>7}  {r['note']}")
            continue
        flag = "" if r["passed"] else "  <- beyond rounding"
        lines.append(
            f"{r['layer']:<16} {r['keras_dtype']:<9} {r['torch_dtype']:<9} {r['share_differing']:>9.2%}"
            f" {r['max_ulps']:>7.0f}{flag}"
        )
    return "\n".join(lines)
