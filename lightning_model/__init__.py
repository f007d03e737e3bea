"""The PyTorch Lightning implementation: a plain `torch.nn.Module` network, wrapped by a
`LightningModule` that owns loss, metrics, optimizer, schedule and logging.

Imports torch and Lightning only, never Keras or TensorFlow; importing the package imports no
framework (the engine's declaration, `lightning_model.engine`, is read without one).
"""

from typing import Any


def __getattr__(name: str) -> Any:
    """`from lightning_model import build_network`, with torch imported only then."""
    if name == "build_network":
        from lightning_model.network import build_network

        return build_network
    raise AttributeError(name)


__all__ = ["build_network"]
