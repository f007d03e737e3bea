"""The PyTorch Lightning implementation: a plain `torch.nn.Module` network, wrapped by a
`LightningModule` that owns loss, metrics, optimizer, schedule and logging.

Imports torch and Lightning only, never Keras or TensorFlow.
"""

from lightning_model.network import build_network

__all__ = ["build_network"]
