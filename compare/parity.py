"""`fmnist parity`: numerical proof that the Keras model and the torch network are the same math.

Three checks, in float32 and float64 on CPU with TF32 off, none needing a full training:
1. structure: per layer, output shape and parameter count equal;
2. weight transfer both ways: logits on test images agree to 1e-5 in float64, and in float32 to
   1e-5 or twice each framework's own float32 rounding, with identical predictions (batch-norm
   running statistics included, inference mode);
3. lockstep training: same initial weights, same batches, dropout off; the first step's
   gradients agree per tensor, and the per-step loss agrees over the first steps, for SGD with
   momentum and for Adam (the torch side runs `KerasAdam`); with batch norm, the running
   statistics after those steps agree too.
Loads both frameworks in one process: torch (with torch._dynamo) is imported before TensorFlow.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fmnist.architecture import layer_plan
from fmnist.config import Config, OptimizerConfig, config_from_dict, config_to_dict, with_overrides
from fmnist.splits import Split, batch_slices, epoch_permutation


@dataclass
class Check:
    name: str
    passed: bool
    value: float
    tolerance: float
    detail: str = ""


@dataclass
class ParityResult:
    checks: list[Check] = field(default_factory=list)
    layers: list[dict[str, Any]] = field(default_factory=list)
    lockstep: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what a reader needs beside the checks (printed after them)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def add(self, name: str, value: float, tolerance: float, detail: str = "", passed: bool | None = None) -> None:
        ok = bool(value <= tolerance) if passed is None else passed
        self.checks.append(Check(name, ok, float(value), float(tolerance), detail))

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "checks": [dataclasses.asdict(c) for c in self.checks],
            "layers": self.layers,
            "lockstep": _plain(self.lockstep),
            "notes": self.notes,
        }


def _plain(value: Any) -> Any:
    """numpy values and arrays to JSON-able numbers and lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _frameworks():
    """torch first (with dynamo, which loads triton), then Keras: the other order segfaults."""
    import torch
    import torch._dynamo  # noqa: F401

    import keras_model  # noqa: F401  (imports Keras without TensorFlow's start-up notices)
    import keras

    return torch, keras


def without_dropout(config: Config, optimizer: OptimizerConfig | None = None) -> Config:
    """Dropout masks come from each framework's own generator, so lockstep turns dropout off."""
    raw = config_to_dict(config)
    for block in raw["model"]["conv_blocks"]:
        block["dropout"] = 0.0
    raw["model"]["dense_dropout"] = 0.0
    if optimizer is not None:
        raw["train"]["optimizer"] = dataclasses.asdict(optimizer)
    return config_from_dict(raw)


def check_structure(config: Config, result: ParityResult) -> None:
    torch, keras = _frameworks()
    from keras_model import build_model
    from lightning_model import build_network

    model, network = build_model(config), build_network(config).eval()
    x = torch.zeros(1, 1, 28, 28)
    mismatches = 0
    for spec, layer, (name, module) in zip(layer_plan(config), model.layers, network.named_children()):
        with torch.no_grad():
            x = module(x)
        torch_shape = tuple(x.shape[1:]) if x.dim() == 2 else (x.shape[2], x.shape[3], x.shape[1])
        keras_shape = tuple(layer.output.shape[1:])
        keras_params = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
        torch_params = sum(p.numel() for p in module.parameters())
        ok = layer.name == name == spec.name and keras_shape == torch_shape and keras_params == torch_params
        mismatches += not ok
        result.layers.append(
            {
                "name": spec.name,
                "kind": spec.kind,
                "keras_shape": list(keras_shape),
                "torch_shape_hwc": list(torch_shape),
                "keras_params": keras_params,
                "torch_params": torch_params,
                "match": ok,
            }
        )
    total_k = sum(row["keras_params"] for row in result.layers)
    total_t = sum(row["torch_params"] for row in result.layers)
    result.add(
        "structure: layers, shapes and parameter counts",
        mismatches,
        0,
        f"{len(result.layers)} layers, {total_k:,} Keras vs {total_t:,} torch parameters",
        passed=mismatches == 0 and total_k == total_t,
    )


def _randomise_batch_norm(network: Any, seed: int) -> None:
    """Non-trivial running statistics and affine weights, so their transfer is really tested."""
    import torch

    g = torch.Generator().manual_seed(seed)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            module.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def _transfer_logits(config: Config, images: np.ndarray, direction: str) -> dict[str, np.ndarray]:
    """Logits of both frameworks after copying the weights one way, in float32 and in float64
    (the float32 weights cast up, so both precisions compute with the same numbers)."""
    import copy

    torch, keras = _frameworks()
    from compare.weight_transfer import copy_keras_to_torch, copy_torch_to_keras
    from keras_model import build_model
    from lightning_model import build_network

    keras.utils.set_random_seed(config.seed)
    torch.manual_seed(config.seed)
    model, network = build_model(config), build_network(config).eval()
    if direction == "Keras -> torch":
        copy_keras_to_torch(config, model, network)
    else:
        _randomise_batch_norm(network, config.seed)
        copy_torch_to_keras(config, network, model)
    with _float_precision(keras, "float64"):
        model64 = build_model(config)
        for layer in model64.layers:
            layer.set_weights([w.astype(np.float64) for w in model.get_layer(layer.name).get_weights()])
    network64 = copy.deepcopy(network).double()
    out = {}
    for dtype, keras_model, torch_network in (("float32", model, network), ("float64", model64, network64)):
        x = images.astype(dtype)
        out[f"keras_{dtype}"] = np.asarray(keras_model.predict(x[..., None], batch_size=500, verbose=0), np.float64)
        with torch.no_grad():
            out[f"torch_{dtype}"] = torch_network(torch.from_numpy(x[:, None])).numpy().astype(np.float64)
    return out


def check_weight_transfer(config: Config, images: np.ndarray, result: ParityResult, tolerance: float = 1e-5) -> None:
    """Copied weights give the same logits: to `tolerance` in float64 (the math), and in float32 to
    `tolerance` or twice each framework's own float32 rounding, whichever is larger (a deep network
    with batch norm rounds to ~1e-5 in float32; a wrong flatten order or epsilon shows as ~1)."""
    for direction in ("Keras -> torch", "torch -> Keras"):
        logits = _transfer_logits(config, images, direction)
        diff64 = float(np.abs(logits["keras_float64"] - logits["torch_float64"]).max())
        result.add(
            f"weight transfer {direction}, float64: max |logit diff|", diff64, tolerance, f"{len(images)} test images"
        )
        diff32 = float(np.abs(logits["keras_float32"] - logits["torch_float32"]).max())
        noise = max(float(np.abs(logits[f"{fw}_float32"] - logits[f"{fw}_float64"]).max()) for fw in ("keras", "torch"))
        allowed = _float32_allowed(tolerance, noise)
        same = int((logits["keras_float32"].argmax(1) == logits["torch_float32"].argmax(1)).sum())
        result.add(
            f"weight transfer {direction}, float32: max |logit diff|",
            diff32,
            allowed,
            f"{len(images)} test images, {same} identical predictions",
            passed=diff32 <= allowed and same == len(images),
        )


def _keras_step_gradients(model: Any, x: np.ndarray, y: np.ndarray, graph: bool = False) -> dict[str, list[np.ndarray]]:
    """Gradients of the compiled training loss (cross-entropy, label-smoothed if the config says
    so), per layer name, in Keras' weight order. graph: in a tf.function, as model.fit runs (in
    bfloat16 TensorFlow then fuses a dense layer's bias add into its matmul: one rounding, not two)."""
    import keras
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError("the lockstep check computes Keras gradients with TensorFlow (KERAS_BACKEND=tensorflow)")
    loss_fn = model.loss

    def gradients(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        return tape.gradient(loss, model.trainable_weights)

    grads = tf.function(gradients)(x, y) if graph else gradients(x, y)
    by_layer: dict[str, list[np.ndarray]] = {}
    for layer in model.layers:
        for w in layer.trainable_weights:
            index = next(i for i, v in enumerate(model.trainable_weights) if v is w)
            by_layer.setdefault(layer.name, []).append(np.asarray(grads[index]))
    return by_layer


def _float_precision(keras: Any, dtype: str):
    """Keras' global float type for the models built inside the block (restored afterwards)."""
    from contextlib import contextmanager

    @contextmanager
    def block():
        floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
        keras.config.set_floatx(dtype)
        keras.config.set_dtype_policy(dtype)
        try:
            yield
        finally:
            keras.config.set_floatx(floatx)
            keras.config.set_dtype_policy(policy)

    return block()


def lockstep(config: Config, train: Split, steps: int, batch_size: int, dtype: str = "float32") -> dict[str, Any]:
    """Train both frameworks side by side from the same weights on the same batches.

    Returns the raw numbers, in torch layout: per-step losses, step-0 gradients per tensor, and
    the batch-norm running statistics after the last step.
    """
    torch, keras = _frameworks()

    from compare.bf16_dtypes import torch_autocast
    from compare.weight_transfer import copy_keras_to_torch, keras_to_torch_arrays
    from keras_model.backend import compile_model
    from keras_model.model import build_model
    from lightning_model.module import FashionClassifier

    np_dtype = np.dtype(dtype)
    mixed = config.train.precision == "bf16-mixed"  # each side in its own mixed policy, as it trains
    forward_context = (lambda: torch_autocast(torch)) if mixed else contextlib.nullcontext
    keras.utils.set_random_seed(config.seed)
    initial = {layer.name: layer.get_weights() for layer in build_model(config).layers}  # float32 draws
    with _float_precision(keras, dtype):
        model = compile_model(build_model(config), config)
        for layer in model.layers:  # the same starting point in every precision
            layer.set_weights([w.astype(np_dtype) for w in initial[layer.name]])
        module = FashionClassifier.from_config(config).to(getattr(torch, dtype))
        network = module.network.train()
        copy_keras_to_torch(config, model, network)
        optimizer = module.configure_optimizers()["optimizer"]
        order = epoch_permutation(len(train), config.seed, 0)
        batches = [order[s] for s in batch_slices(len(train), batch_size)][:steps]
        out: dict[str, Any] = {"keras_loss": [], "torch_loss": []}
        for step, idx in enumerate(batches):
            x = train.images[idx].astype(np_dtype)
            y = train.labels[idx].astype(np.int64)
            xt, yt = torch.from_numpy(x[:, None]), torch.from_numpy(y)
            if step == 0:
                out["keras_grads"] = keras_to_torch_arrays(
                    config, _keras_step_gradients(model, x[..., None], y, graph=mixed)
                )
                network.zero_grad()
                with forward_context():
                    first = module.loss(network(xt), yt)
                first.backward()
                out["torch_grads"] = {name: p.grad.numpy().copy() for name, p in network.named_parameters()}
            out["keras_loss"].append(float(model.train_on_batch(x[..., None], y.astype(np.int32))[0]))
            optimizer.zero_grad()
            with forward_context():
                loss = module.loss(network(xt), yt)
            loss.backward()
            optimizer.step()
            out["torch_loss"].append(loss.item())
        keras_state = keras_to_torch_arrays(config, {layer.name: layer.get_weights() for layer in model.layers})
    running = [k for k in keras_state if k.endswith(("running_mean", "running_var"))]
    out["keras_running"] = {k: keras_state[k] for k in running}
    out["torch_running"] = {k: network.state_dict()[k].numpy().copy() for k in running}
    return out


def _float32_allowed(tolerance: float, rounding: float) -> float:
    """The float32 tolerance: `tolerance`, or twice the rounding each framework makes against its
    own float64 result if that is larger (only a difference beyond it means different math)."""
    return max(tolerance, 2 * rounding)


float32_allowed = _float32_allowed  # public: compare.export_check holds ONNX exports to the same rule


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
        allowed = {k: _float32_allowed(tolerance, noise[k]) for k in diff32}
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
    allowed = [_float32_allowed(tolerance, n) for n in noise]
    summary["loss"] = {
        f"keras_{low}": r32["keras_loss"],
        f"torch_{low}": r32["torch_loss"],
        f"{high}_rel_diff": rel64,
        f"{low}_rel_diff": rel32,
        f"{low}_allowed": allowed,
        f"{low}_pass": all(d <= a for d, a in zip(rel32, allowed)),
    }
    return summary


def run_parity(
    config: Config, images: np.ndarray, train: Split, steps: int = 10, batch_size: int = 128, sgd_lr: float = 0.01
) -> ParityResult:
    """Every check for one config; `images` are test images for the transfer check.

    The checks compare the math at float32 and float64, so a bf16-mixed config is checked at
    float32 (bfloat16's 8 bits of mantissa would hide every convention this checks)."""
    if config.train.precision != "float32":
        config = with_overrides(config, {"train.precision": "float32"})
    torch, keras = _frameworks()
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = False
    result = ParityResult()
    check_structure(config, result)
    check_weight_transfer(config, images, result)
    optimizers = {
        "sgd_momentum": OptimizerConfig(name="sgd", lr=sgd_lr, momentum=0.9),
        "adam": config.train.optimizer if config.train.optimizer.name == "adam" else OptimizerConfig(name="adam"),
    }
    if config.train.optimizer.name == "adamw":  # decoupled weight decay: Keras' AdamW vs KerasAdam's
        optimizers["adamw"] = config.train.optimizer
    tol = 1e-5
    for label, opt in optimizers.items():
        cfg = without_dropout(config, opt)
        s = compare_lockstep(
            lockstep(cfg, train, steps, batch_size, "float32"), lockstep(cfg, train, steps, batch_size, "float64"), tol
        )
        result.lockstep[label] = s
        grads, loss = s["gradients"], s["loss"]
        result.add(
            f"lockstep {label}, float64: step-0 gradients, max |diff|",
            grads["float64_max_abs_diff"],
            tol,
            f"worst tensor {grads['float64_worst']}",
        )
        result.add(
            f"lockstep {label}, float64: loss over {steps} steps, max rel diff", max(loss["float64_rel_diff"]), tol
        )
        result.add(
            f"lockstep {label}, float32: step-0 gradients, max |diff|",
            grads["float32_max_abs_diff"][grads["float32_worst"]],
            grads["float32_allowed"],
            f"worst tensor {grads['float32_worst']}",
            passed=grads["float32_pass"],
        )
        worst_step = int(np.argmax(np.array(loss["float32_rel_diff"]) / np.array(loss["float32_allowed"])))
        result.add(
            f"lockstep {label}, float32: loss over {steps} steps, max rel diff",
            loss["float32_rel_diff"][worst_step],
            loss["float32_allowed"][worst_step],
            f"final loss Keras {loss['keras_float32'][-1]:.6f} vs torch {loss['torch_float32'][-1]:.6f}",
            passed=loss["float32_pass"],
        )
        if "running_stats" in s:
            bn = s["running_stats"]
            result.add(
                f"lockstep {label}, float64: batch-norm running statistics, max |diff|",
                bn["float64_max_abs_diff"],
                tol,
                f"worst {bn['float64_worst']}",
            )
            result.add(
                f"lockstep {label}, float32: batch-norm running statistics, max |diff|",
                bn["float32_max_abs_diff"][bn["float32_worst"]],
                bn["float32_allowed"],
                f"worst {bn['float32_worst']}",
                passed=bn["float32_pass"],
            )
    return result


def format_table(result: ParityResult) -> str:
    """The checks as an aligned text table: status, value against tolerance, what was measured."""
    width = max(len(c.name) for c in result.checks)
    lines = [f"{'check':<{width}}  result  {'value':>10}  {'tolerance':>9}  detail"]
    for c in result.checks:
        lines.append(
            f"{c.name:<{width}}  {'pass' if c.passed else 'FAIL':<6}  {c.value:>10.3g}  {c.tolerance:>9.3g}  {c.detail}"
        )
    return "\n".join(lines)
