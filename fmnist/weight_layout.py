"""One layout for a network's weights, shared by every engine: torch's `state_dict` names and
shapes, as numpy arrays. Engines export to it and import from it, so weights move between any two
(parity's weight transfer and lockstep start, `fmnist.engine_job`).

Keras lays three things out differently: conv kernels (Keras H, W, in, out; torch out, in, H, W),
dense kernels (Keras in, out; torch out, in), and the first dense layer after Flatten, whose input
order is H, W, C in Keras but C, H, W in torch, so its rows are permuted. Batch-norm running
statistics travel too, so inference-mode outputs match. Per-parameter tensors of the same shapes
(Adam's moments, gradients) travel in the same layout, keyed by the parameters' names (batch-norm
layers then have no running statistics). Layer outputs have a shared layout too
(NHWC, and H, W, C flatten order), for the checks that compare them layer by layer. Numpy only.
"""

from __future__ import annotations

import numpy as np

from fmnist.architecture import LayerSpec, layer_plan
from fmnist.config import Config


def _flatten_inputs(plan: list[LayerSpec]) -> dict[str, tuple[int, int, int]]:
    """Dense layers fed straight from Flatten, with the (C, H, W) shape they flatten."""
    fed: dict[str, tuple[int, int, int]] = {}
    for prev, layer in zip(plan, plan[1:]):
        if prev.kind == "flatten" and layer.kind == "dense":
            fed[layer.name] = prev.args["chw"]
    return fed


#: A batch-norm layer's entries in the layout: its two parameters, then its running statistics.
BATCH_NORM_KEYS = ("weight", "bias", "running_mean", "running_var")


def layout_keys(config: Config, parameters_only: bool = False) -> list[str]:
    """The names the layout holds for `config`'s network, in the plan's order; parameters_only:
    the trainable parameters alone (what an optimizer keeps state for)."""
    keys: list[str] = []
    for layer in layer_plan(config):
        if layer.kind == "conv":
            keys += [f"{layer.name}.weight", *([f"{layer.name}.bias"] if layer.args["use_bias"] else [])]
        elif layer.kind == "batch_norm":
            keys += [f"{layer.name}.{k}" for k in BATCH_NORM_KEYS[: 2 if parameters_only else 4]]
        elif layer.kind == "dense":
            keys += [f"{layer.name}.weight", f"{layer.name}.bias"]
    return keys


def keras_to_torch_arrays(config: Config, keras_weights: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """Keras `layer.get_weights()` per layer name -> a torch `state_dict` of numpy arrays."""
    plan = layer_plan(config)
    flat = _flatten_inputs(plan)
    state: dict[str, np.ndarray] = {}
    for layer in plan:
        w = keras_weights.get(layer.name)
        if layer.kind == "conv":
            state[f"{layer.name}.weight"] = w[0].transpose(3, 2, 0, 1)
            if layer.args["use_bias"]:
                state[f"{layer.name}.bias"] = w[1]
        elif layer.kind == "batch_norm":
            for key, value in zip(BATCH_NORM_KEYS, w):
                state[f"{layer.name}.{key}"] = value
        elif layer.kind == "dense":
            kernel = w[0]
            if layer.name in flat:
                c, h, wd = flat[layer.name]
                kernel = kernel.reshape(h, wd, c, -1).transpose(2, 0, 1, 3).reshape(c * h * wd, -1)
            state[f"{layer.name}.weight"] = kernel.T
            state[f"{layer.name}.bias"] = w[1]
    return {k: np.ascontiguousarray(v) for k, v in state.items()}


def torch_to_keras_arrays(config: Config, state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """A torch `state_dict` (numpy arrays) -> Keras `layer.set_weights()` lists per layer name
    (a batch-norm layer's running statistics where `state` holds them: per-parameter tensors have none)."""
    plan = layer_plan(config)
    flat = _flatten_inputs(plan)
    weights: dict[str, list[np.ndarray]] = {}
    for layer in plan:
        n = layer.name
        if layer.kind == "conv":
            weights[n] = [state[f"{n}.weight"].transpose(2, 3, 1, 0)]
            if layer.args["use_bias"]:
                weights[n].append(state[f"{n}.bias"])
        elif layer.kind == "batch_norm":
            weights[n] = [state[f"{n}.{k}"] for k in BATCH_NORM_KEYS if f"{n}.{k}" in state]
        elif layer.kind == "dense":
            kernel = state[f"{n}.weight"].T
            if n in flat:
                c, h, wd = flat[n]
                kernel = kernel.reshape(c, h, wd, -1).transpose(1, 2, 0, 3).reshape(c * h * wd, -1)
            weights[n] = [kernel, state[f"{n}.bias"]]
    return {k: [np.ascontiguousarray(a) for a in v] for k, v in weights.items()}


def activation(array: np.ndarray, spec: LayerSpec, layout: str) -> np.ndarray:
    """A layer's output moved to `layout`: "nchw" (C, H, W flatten order, torch's) from the shared
    layout, or "shared" (NHWC; H, W, C flatten order) from NCHW."""
    axes = (0, 3, 1, 2) if layout == "nchw" else (0, 2, 3, 1)
    if array.ndim == 4:
        return array.transpose(axes)
    if spec.kind == "flatten":
        c, h, w = spec.args["chw"]
        source = (h, w, c) if layout == "nchw" else (c, h, w)
        return array.reshape(-1, *source).transpose(axes).reshape(len(array), -1)
    return array
