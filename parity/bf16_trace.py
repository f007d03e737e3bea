"""The op logs: what each engine computes in which dtype under its bf16 mixed policy, seen on live
tensors, no documentation. Each engine logs one training step itself (the contract's
`bf16_trace`, in a process of its own): Lightning's aten ops as they dispatch inside its own
bf16-mixed autocast context; Keras' ops as its backend runs `model.fit`'s step: TensorFlow's graph
of `model.train_step` in a tf.function, the jaxpr of it on JAX, the aten ops of
`train_on_batch` on torch. parity.bf16_table picks its rows from the logs."""

from __future__ import annotations

from typing import Any

from fmnist.config import Config, with_overrides
from fmnist.engine_job import call, on_device

Op = dict[str, Any]  # {"phase", "layer", "op", "inputs": [dtype, ...], "outputs": [dtype, ...]}
#: Images in the traced step: the dtypes do not depend on the batch, a small one traces fast.
TRACE_BATCH = 4


def bf16_config(config: Config) -> Config:
    return with_overrides(config, {"train.precision": "bf16-mixed"})


def trace_call(config: Config, batch: int = TRACE_BATCH, device: str = "cpu") -> dict[str, Any]:
    """The engine job's call for the op log of one bf16 training step of `config` on `device`."""
    return call("bf16_trace", bf16_config(config), batch=batch, **on_device(device))
