"""Copy weights between a Keras model and a torch network in one process, layer by layer, by
name, through the shared layout (`fmnist.weight_layout`): for the checks that hold both models
side by side (bf16 parity, the export check)."""

from __future__ import annotations

from typing import Any

from fmnist.config import Config
from fmnist.weight_layout import keras_to_torch_arrays, torch_to_keras_arrays


def copy_keras_to_torch(config: Config, model: Any, network: Any) -> None:
    """Set the torch network's parameters and buffers from the Keras model's weights."""
    import torch

    arrays = keras_to_torch_arrays(config, {layer.name: layer.get_weights() for layer in model.layers})
    current = network.state_dict()
    for key, value in arrays.items():
        if tuple(current[key].shape) != value.shape:
            raise ValueError(f"{key}: torch shape {tuple(current[key].shape)} vs mapped Keras shape {value.shape}")
    network.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()}, strict=False)


def copy_torch_to_keras(config: Config, network: Any, model: Any) -> None:
    """Set the Keras model's weights from the torch network's parameters and buffers."""
    state = {k: v.detach().cpu().numpy() for k, v in network.state_dict().items()}
    for name, values in torch_to_keras_arrays(config, state).items():
        model.get_layer(name).set_weights(values)
