"""`fmnist parity --precision bf16-mixed`: do the two frameworks round in the same places?

Both networks get the same weights and the same batch, each in its own bf16 mixed policy (Keras
`mixed_bfloat16` inside a tf.function, as `model.fit` runs it; torch under Lightning's bf16-mixed
autocast), dropout off. Three checks, each with its tolerance derived from bfloat16's 8-bit
significand (7 bits stored; one unit in the last place, ulp, is 2^-7 of the value's power of two):

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

import copy
from typing import Any

import numpy as np

from compare.bf16_accumulation import _round_bf16
from compare.bf16_trace import bf16_config
from compare.parity import ParityResult, call, compare_lockstep, lockstep_runs, without_dropout
from compare.parity_checks import lockstep_batches
from fmnist.engine_job import run_jobs
from fmnist.architecture import LayerSpec, layer_plan
from fmnist.config import Config, with_overrides
from fmnist.cpu_features import bf16_kernels, cpu_model
from fmnist.splits import Split

#: Share of a layer's outputs allowed to differ (by one ulp) between the frameworks; see above.
LAYER_SHARE = 0.01
LAYER_ULPS = 1.0  # the largest difference allowed, in bfloat16 ulps
TOLERANCE = 1e-5  # the float32 floor of the gradient/loss rule, as in compare.parity
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
    a, b = _round_bf16(a).astype(np.float64), _round_bf16(b).astype(np.float64)
    if not a.size:
        return 0.0, 0.0
    diff = np.abs(a - b)
    rms = float(np.sqrt(np.mean(a**2))) or 1.0
    scale = np.maximum(np.maximum(np.abs(a), np.abs(b)), rms)
    ulps = diff / 2.0 ** (np.floor(np.log2(scale)) - 7)
    return float((ulps >= 1).mean()), float(ulps.max())


def _to_torch_layout(array: np.ndarray, spec: LayerSpec) -> np.ndarray:
    """A Keras layer output as the torch network lays it out: NCHW, or C, H, W flatten order."""
    if array.ndim == 4:
        return array.transpose(0, 3, 1, 2)
    if spec.kind == "flatten":
        c, h, w = spec.args["chw"]
        return array.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(len(array), -1)
    return array


def _to_keras_layout(array: np.ndarray, spec: LayerSpec) -> np.ndarray:
    if array.ndim == 4:
        return array.transpose(0, 2, 3, 1)
    if spec.kind == "flatten":
        c, h, w = spec.args["chw"]
        return array.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(len(array), -1)
    return array


def _keras_outputs(model: Any, pixels: np.ndarray) -> list[tuple[np.ndarray, str]]:
    """Every layer's output (as float32 numbers) and its dtype, in one tf.function, training mode."""
    import tensorflow as tf

    @tf.function
    def run(x):
        outs = []
        for layer in model.layers:
            x = layer(x, training=True)
            outs.append(x)
        return outs

    return [(np.asarray(tf.cast(o, tf.float32)), o.dtype.name) for o in run(pixels[..., None])]


def _models(config: Config) -> dict[str, Any]:
    """Keras and torch models in bf16-mixed and float32, all four with the same weights."""
    from compare.parity_frameworks import _frameworks
    from compare.weight_transfer import copy_keras_to_torch
    from keras_model.model import build_model
    from lightning_model.network import build_network

    torch, keras = _frameworks()
    keras.utils.set_random_seed(config.seed)
    bf16, f32 = bf16_config(config), with_overrides(config, {"train.precision": "float32"})
    keras_bf16, keras_f32 = build_model(bf16), build_model(f32)
    keras_f32.set_weights(keras_bf16.get_weights())
    network = build_network(bf16).train()
    copy_keras_to_torch(config, keras_bf16, network)
    if config.train.channels_last:  # as the LightningModule lays it out
        network = network.to(memory_format=torch.channels_last)
    return {
        "keras_bf16": keras_bf16,
        "keras_f32": keras_f32,
        "torch_bf16": network,
        "torch_f32": copy.deepcopy(network),
    }


def _torch_input(torch: Any, array: np.ndarray, dtype: str, channels_last: bool):
    tensor = torch.from_numpy(np.array(array, order="C")).to(getattr(torch, dtype))
    if tensor.dim() == 4 and channels_last:
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    return tensor


def layer_by_layer(config: Config, pixels: np.ndarray, network: Any = None) -> list[dict[str, Any]]:
    """Check 1: each torch layer fed the Keras layer's input, outputs compared in bf16 ulps.
    `network`: a torch network to use instead of the transferred one (tests plant faults in it)."""
    from lightning_model.precision import autocast

    import torch

    from lightning_model.network import ReLUAfterPool

    config = without_dropout(config)
    models = _models(config)
    network = network if network is not None else models["torch_bf16"]
    plan = layer_plan(config)
    keras_out = _keras_outputs(models["keras_bf16"], pixels)
    rows = []
    previous: tuple[np.ndarray, str] = (pixels[:, None].astype(np.float32), "float32")
    for spec, (name, module), (k_out, k_dtype) in zip(plan, network.named_children(), keras_out):
        array, dtype = previous
        previous = (_to_torch_layout(k_out, spec), k_dtype)
        if isinstance(module, ReLUAfterPool):  # torch applies this ReLU after the pool: compared there
            rows.append(
                {
                    "layer": name,
                    "kind": spec.kind,
                    "compared": False,
                    "keras_dtype": k_dtype,
                    "note": "applied after the max-pool in torch (exact): compared there",
                }
            )
            continue
        with torch.no_grad(), autocast():
            t_out = module(_torch_input(torch, array, dtype, config.train.channels_last))
        t_dtype = str(t_out.dtype).removeprefix("torch.")
        share, ulps = ulp_difference(k_out, _to_keras_layout(t_out.float().numpy(), spec))
        rows.append(
            {
                "layer": name,
                "kind": spec.kind,
                "compared": True,
                "keras_dtype": k_dtype,
                "torch_dtype": t_dtype,
                "share_differing": share,
                "max_ulps": ulps,
                "passed": share <= LAYER_SHARE and ulps <= LAYER_ULPS,
            }
        )
    return rows


def end_to_end(config: Config, pixels: np.ndarray) -> dict[str, Any]:
    """Check 2, and the per-layer drift it comes from: both frameworks from the same pixels, in
    bf16 and in float32; relative RMS difference per layer (Keras vs torch) in each precision."""
    from lightning_model.precision import autocast

    import torch

    config = without_dropout(config)
    models = _models(config)
    plan = layer_plan(config)
    out: dict[str, Any] = {"layers": []}
    per_precision = {}
    for precision in ("bf16", "f32"):
        keras_outs = [o for o, _ in _keras_outputs(models[f"keras_{precision}"], pixels)]
        captured: list[np.ndarray] = []
        network = models[f"torch_{precision}"]
        hooks = [
            m.register_forward_hook(lambda _m, _i, o: captured.append(o.detach().float().numpy()))
            for _, m in network.named_children()
        ]
        x = _torch_input(torch, pixels[:, None].astype(np.float32), "float32", config.train.channels_last)
        try:
            with (
                torch.no_grad(),
                autocast() if precision == "bf16" else torch.autocast("cpu", enabled=False),
            ):
                network(x)
        finally:
            for hook in hooks:
                hook.remove()
        per_precision[precision] = (keras_outs, [_to_keras_layout(c, s) for c, s in zip(captured, plan)])
    from lightning_model.network import ReLUAfterPool

    deferred = {name for name, m in models["torch_bf16"].named_children() if isinstance(m, ReLUAfterPool)}
    for i, spec in enumerate(plan):
        row: dict[str, Any] = {"layer": spec.name}
        if spec.name in deferred:  # torch's ReLU there runs after the pool: not comparable here
            out["layers"].append({**row, "bf16_rel_rms": None, "f32_rel_rms": None})
            continue
        for precision, (k, t) in per_precision.items():
            ref = np.sqrt(np.mean(per_precision["f32"][0][i].astype(np.float64) ** 2)) or 1.0
            row[f"{precision}_rel_rms"] = float(np.sqrt(np.mean((k[i].astype(np.float64) - t[i]) ** 2)) / ref)
        out["layers"].append(row)
    (kb, tb), (kf, tf32) = (
        (per_precision["bf16"][0][-1], per_precision["bf16"][1][-1]),
        (per_precision["f32"][0][-1], per_precision["f32"][1][-1]),
    )
    own = max(float(np.abs(kb - kf).max()), float(np.abs(tb - tf32).max()))
    out["logits"] = {
        "max_abs_diff": float(np.abs(kb - tb).max()),
        "own_rounding": own,
        "allowed": 2 * own,
        "same_predictions": int((kb.argmax(1) == tb.argmax(1)).sum()),
        "images": len(pixels),
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
    config: Config, train: Split, images: int = 128, steps: int = 10, batch_size: int = 128
) -> ParityResult:
    """Every bf16 check for one config; `train` gives the batches (the first `images` for the
    forward checks, the shared batch order for lockstep)."""
    from compare.parity_frameworks import _frameworks

    torch, _ = _frameworks()
    torch.set_float32_matmul_precision("highest")
    config = bf16_config(config)
    result = ParityResult()
    kernels = bf16_kernels()
    result.notes.append(f"cpu: {cpu_model()}; bf16 kernels: {kernels or 'unknown'}")
    if kernels == "no_avx512":
        result.notes.append(FALLBACK_NOTE.format(model=cpu_model()))
    pixels = train.images[:images].astype(np.float32)

    rows = layer_by_layer(config, pixels)
    add_layer_check(result, rows, len(pixels))

    e2e = end_to_end(config, pixels)
    result.lockstep["end_to_end"] = e2e
    logits = e2e["logits"]
    result.add(
        "bf16 end to end: max |logit diff| Keras vs torch",
        logits["max_abs_diff"],
        logits["allowed"],
        f"allowed: 2x own bf16 rounding ({logits['own_rounding']:.3g}); {logits['same_predictions']} of"
        f" {logits['images']} identical predictions",
    )

    cfg = without_dropout(config)
    # Both engines here, in this process (torch loaded first): Keras' own initial draws.
    pair = ("keras", "lightning")
    start = run_jobs([("keras", [call("initial_weights", cfg)])], in_process=True)[0]["results"][0]
    f32 = with_overrides(cfg, {"train.precision": "float32"})
    batches = lockstep_batches(cfg, train, steps, batch_size)
    low, high = lockstep_runs([(cfg, "float32"), (f32, "float32")], start, batches, pair, in_process=True)
    s = compare_lockstep(low, high, TOLERANCE, low="bf16", high="float32", running_noise=True)
    result.lockstep[config.train.optimizer.name] = s
    grads, loss = s["gradients"], s["loss"]
    result.add(
        f"bf16 lockstep {config.train.optimizer.name}: step-0 gradients, max |diff|",
        grads["bf16_max_abs_diff"][grads["bf16_worst"]],
        grads["bf16_allowed"],
        f"worst tensor {grads['bf16_worst']}; allowed: 2x own bf16 rounding",
        passed=grads["bf16_pass"],
    )
    worst_step = int(np.argmax(np.array(loss["bf16_rel_diff"]) / np.array(loss["bf16_allowed"])))
    result.add(
        f"bf16 lockstep {config.train.optimizer.name}: loss over {steps} steps, max rel diff",
        loss["bf16_rel_diff"][worst_step],
        loss["bf16_allowed"][worst_step],
        f"final loss Keras {loss['keras_bf16'][-1]:.5f} vs torch {loss['lightning_bf16'][-1]:.5f}"
        f" (float32: {high['keras']['loss'][-1]:.5f})",
        passed=loss["bf16_pass"],
    )
    if "running_stats" in s:
        bn = s["running_stats"]
        result.add(
            f"bf16 lockstep {config.train.optimizer.name}: batch-norm running statistics, max |diff|",
            bn["bf16_max_abs_diff"][bn["bf16_worst"]],
            bn["bf16_allowed"],
            f"worst {bn['bf16_worst']}",
            passed=bn["bf16_pass"],
        )
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
