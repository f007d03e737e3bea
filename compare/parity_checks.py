"""The checks themselves: the same layers (structure), the same function with copied weights (weight
transfer both ways) and the same training steps (lockstep), each measured on both frameworks and
judged by the tolerance rule (compare.parity_tolerance)."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import numpy as np

from compare.parity_frameworks import _float_precision, _frameworks
from compare.parity_result import ParityResult
from compare.parity_tolerance import float32_allowed
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
        allowed = float32_allowed(tolerance, noise)
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
