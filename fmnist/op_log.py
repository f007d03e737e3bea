"""One row of an op log, as the bf16 probes write it while torch dispatches a training step (the
Lightning engine under its autocast, Keras on its torch backend): parity.bf16_table reads them
all alike. Framework-free: a tensor is anything with a `dtype`."""

from __future__ import annotations

from typing import Any


def dtype_names(value: Any) -> list[str]:
    """The dtypes of a tensor, or of the tensors in a (nested) list, named without "torch."."""
    if isinstance(value, (list, tuple)):
        return [d for v in value for d in dtype_names(v)]
    dtype = getattr(value, "dtype", None)
    return [] if dtype is None else [str(dtype).removeprefix("torch.")]


def op_record(where: dict[str, str], func: Any, args: Any, out: Any) -> dict[str, Any]:
    """{"phase", "layer"} from `where`, the aten op's name, its inputs' and outputs' dtypes."""
    return {
        **where,
        "op": str(func.overloadpacket.__name__),
        "inputs": dtype_names(list(args)),
        "outputs": dtype_names(out),
    }
