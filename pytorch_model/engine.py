"""The `pytorch` engine, declared (`fmnist.engine.Engine`): the shared torch network
(`torch_blocks`) trained by a plain PyTorch loop, no Lightning. Registered in pyproject.toml's
`fmnist.engines` entry points.

Nothing here imports a framework: the registry reads this declaration in any process.
"""

from __future__ import annotations

from fmnist.engine import Engine
from torch_blocks.environment import DEVICE_ENVIRONMENT
from torch_blocks.variants import TORCH_VARIANTS

PYTORCH = Engine(
    name="pytorch",
    label="PyTorch",
    colour="#CC79A7",  # the Okabe-Ito palette's reddish purple, apart from the other engines' colours
    model_format="torch state dict",
    model_file="model.pt",
    extra="pytorch",
    frameworks=("torch",),
    capabilities={
        "training": "pytorch_model.training",
        "parity": "pytorch_model.parity",
        "export": "pytorch_model.export",
        "speed": "pytorch_model.speed",
        "bf16": "pytorch_model.bf16_probe",
        "state": "pytorch_model.state",
    },
    import_first=("torch", "torch._dynamo"),  # before TensorFlow: the other order segfaults
    device_environment=DEVICE_ENVIRONMENT,  # no GPU on cpu, deterministic cuBLAS on cuda
    constant_casts="follow",  # KerasAdam casts its constants either way (torch_blocks.optim)
    speed_variants=TORCH_VARIANTS,
    speed_loops=("pytorch",),  # its own training loop (torch_blocks.plain_loop) on its own network
)
