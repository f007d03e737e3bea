"""`fmnist parity`: numerical proof that the Keras model and the torch network are the same math.

Three checks, all float32 on CPU with TF32 off, none needing a full training:
1. structure: per layer, output shape and parameter count equal;
2. weight transfer both ways: logits on test images agree to 1e-5 and predictions are identical
   (batch-norm running statistics included, inference mode);
3. lockstep training: same initial weights, same batches, dropout off; the first step's
   gradients agree per tensor, and the per-step loss agrees over the first steps, for SGD with
   momentum and for Adam (the torch side runs `KerasAdam`); with batch norm, the running
   statistics after those steps agree too.
Loads both frameworks in one process: torch (with torch._dynamo) is imported before TensorFlow.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fmnist.architecture import layer_plan
from fmnist.config import Config, OptimizerConfig, config_from_dict, config_to_dict
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

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def add(self, name: str, value: float, tolerance: float, detail: str = "", passed: bool | None = None) -> None:
        ok = bool(value <= tolerance) if passed is None else passed
        self.checks.append(Check(name, ok, float(value), float(tolerance), detail))

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [dataclasses.asdict(c) for c in self.checks],
                "layers": self.layers, "lockstep": self.lockstep}


def _frameworks():
    """torch first (with dynamo, which loads triton), then Keras: the other order segfaults."""
    import torch
    import torch._dynamo  # noqa: F401

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
        result.layers.append({"name": spec.name, "kind": spec.kind, "keras_shape": list(keras_shape),
                              "torch_shape_hwc": list(torch_shape), "keras_params": keras_params,
                              "torch_params": torch_params, "match": ok})
    total_k = sum(row["keras_params"] for row in result.layers)
    total_t = sum(row["torch_params"] for row in result.layers)
    result.add("structure: layers, shapes and parameter counts", mismatches, 0,
               f"{len(result.layers)} layers, {total_k:,} Keras vs {total_t:,} torch parameters",
               passed=mismatches == 0 and total_k == total_t)


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


def check_weight_transfer(config: Config, images: np.ndarray, result: ParityResult) -> None:
    torch, keras = _frameworks()
    from compare.weight_transfer import copy_keras_to_torch, copy_torch_to_keras
    from keras_model import build_model
    from lightning_model import build_network

    x = images.astype(np.float32)
    for direction in ("Keras -> torch", "torch -> Keras"):
        keras.utils.set_random_seed(config.seed)
        torch.manual_seed(config.seed)
        model, network = build_model(config), build_network(config).eval()
        if direction == "Keras -> torch":
            copy_keras_to_torch(config, model, network)
        else:
            _randomise_batch_norm(network, config.seed)
            copy_torch_to_keras(config, network, model)
        keras_logits = np.asarray(model.predict(x[..., None], batch_size=500, verbose=0))
        with torch.no_grad():
            torch_logits = network(torch.from_numpy(x[:, None])).numpy()
        diff = float(np.abs(keras_logits - torch_logits).max())
        same = int((keras_logits.argmax(1) == torch_logits.argmax(1)).sum())
        result.add(f"weight transfer {direction}: max |logit diff|", diff, 1e-5,
                   f"{len(x)} test images, {same} identical predictions", passed=diff <= 1e-5 and same == len(x))


def _keras_step_gradients(model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, list[np.ndarray]]:
    """Gradients of the mean cross-entropy, per layer name, in Keras' weight order."""
    import keras
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError("the lockstep check computes Keras gradients with TensorFlow (KERAS_BACKEND=tensorflow)")
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_weights)
    by_layer: dict[str, list[np.ndarray]] = {}
    for layer in model.layers:
        for w in layer.trainable_weights:
            index = next(i for i, v in enumerate(model.trainable_weights) if v is w)
            by_layer.setdefault(layer.name, []).append(np.asarray(grads[index]))
    return by_layer


def lockstep(config: Config, train: Split, steps: int, batch_size: int) -> dict[str, Any]:
    """Train both frameworks side by side from the same weights on the same batches."""
    torch, keras = _frameworks()
    import torch.nn.functional as F

    from compare.weight_transfer import copy_keras_to_torch, keras_to_torch_arrays
    from keras_model.backend import compile_model
    from keras_model.model import build_model
    from lightning_model.module import FashionClassifier

    keras.utils.set_random_seed(config.seed)
    model = compile_model(build_model(config), config)
    module = FashionClassifier.from_config(config)
    network = module.network.train()
    copy_keras_to_torch(config, model, network)
    optimizer = module.configure_optimizers()["optimizer"]

    order = epoch_permutation(len(train), config.seed, 0)
    batches = [order[s] for s in batch_slices(len(train), batch_size)][:steps]
    out: dict[str, Any] = {"keras_loss": [], "torch_loss": [], "rel_diff": []}
    for step, idx in enumerate(batches):
        x = train.images[idx].astype(np.float32)
        y = train.labels[idx].astype(np.int64)
        xt, yt = torch.from_numpy(x[:, None]), torch.from_numpy(y)
        if step == 0:
            keras_grads = keras_to_torch_arrays(config, _keras_step_gradients(model, x[..., None], y))
            network.zero_grad()
            F.cross_entropy(network(xt), yt).backward()
            out["grad_max_abs_diff"] = {
                name: float(np.abs(p.grad.numpy() - keras_grads[name]).max())
                for name, p in network.named_parameters()
            }
        keras_loss = float(model.train_on_batch(x[..., None], y.astype(np.int32))[0])
        optimizer.zero_grad()
        loss = F.cross_entropy(network(xt), yt)
        loss.backward()
        optimizer.step()
        out["keras_loss"].append(keras_loss)
        out["torch_loss"].append(float(loss))
        out["rel_diff"].append(abs(keras_loss - float(loss)) / abs(keras_loss))
    keras_state = keras_to_torch_arrays(config, {layer.name: layer.get_weights() for layer in model.layers})
    torch_state = {k: v.detach().numpy() for k, v in network.state_dict().items() if k in keras_state}
    out["weights_max_abs_diff"] = max(float(np.abs(torch_state[k] - keras_state[k]).max()) for k in torch_state)
    running = [k for k in keras_state if k.endswith(("running_mean", "running_var"))]
    if running:
        out["bn_running_stats_max_rel_diff"] = max(
            float((np.abs(torch_state[k] - keras_state[k]) / (np.abs(keras_state[k]) + 1e-6)).max()) for k in running
        )
    return out


def run_parity(config: Config, images: np.ndarray, train: Split, steps: int = 10, batch_size: int = 128,
               sgd_lr: float = 0.01) -> ParityResult:
    """Every check for one config; `images` are test images for the transfer check."""
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
    for label, opt in optimizers.items():
        run = lockstep(without_dropout(config, opt), train, steps, batch_size)
        result.lockstep[label] = run
        worst_grad = max(run["grad_max_abs_diff"].items(), key=lambda kv: kv[1])
        result.add(f"lockstep {label}: step-0 gradients, max |diff| per tensor", worst_grad[1], 1e-5,
                   f"worst tensor {worst_grad[0]}")
        result.add(f"lockstep {label}: loss over {steps} steps, max relative diff", max(run["rel_diff"]), 1e-5,
                   f"final loss Keras {run['keras_loss'][-1]:.6f} vs torch {run['torch_loss'][-1]:.6f}")
        if "bn_running_stats_max_rel_diff" in run:
            result.add(f"lockstep {label}: batch-norm running statistics, max relative diff",
                       run["bn_running_stats_max_rel_diff"], 1e-4,
                       "momentum/epsilon converted; torch's running variance is the unbiased estimate")
    return result
