"""The `lightning` engine, declared (`fmnist.engine.Engine`): a `LightningModule` trained by
Lightning's `Trainer`. Registered in pyproject.toml's `fmnist.engines` entry points.

Nothing here imports a framework: the registry reads this declaration in any process.
"""

from __future__ import annotations

from fmnist.engine import Engine
from torch_blocks.environment import DEVICE_ENVIRONMENT
from torch_blocks.variants import TORCH_VARIANTS

LIGHTNING = Engine(
    name="lightning",
    label="Lightning",
    colour="#5D3A9B",
    model_format="lightning checkpoint",
    model_file="model.ckpt",
    extra="lightning",
    frameworks=("torch", "lightning", "torchmetrics"),
    capabilities={
        "training": "lightning_model.training",
        "parity": "lightning_model.parity",
        "export": "lightning_model.export",
        "speed": "lightning_model.speed",
        "bf16": "lightning_model.bf16_probe",
        "state": "lightning_model.state",
    },
    import_first=("torch", "torch._dynamo"),  # before TensorFlow: the other order segfaults
    device_environment=DEVICE_ENVIRONMENT,  # no GPU on cpu, deterministic cuBLAS on cuda
    strategies=("auto", "ddp"),
    max_devices=None,
    max_nodes=None,
    constant_casts="follow",  # KerasAdam casts its constants either way (torch_blocks.optim)
    speed_variants=TORCH_VARIANTS,
    # The module's training step as a plain loop (the same network, loss, optimizer and metrics),
    # then the Trainer around it: Lightning's overhead is the second over the first.
    speed_loops=("plain torch", "lightning"),
)
