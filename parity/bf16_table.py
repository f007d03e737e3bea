"""The bf16 dtype table: each row picks the ops it is about from both engines' logs
(parity.bf16_trace) and says which dtypes they compute in. A row has one rule per op vocabulary
(whose op names a log holds: TensorFlow's graph ops for Keras on TensorFlow, jaxpr primitives for
Keras on JAX, aten ops for Lightning and, composed differently, for Keras on torch)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from parity.bf16_trace import Op
from fmnist.config import Config


def _kinds(config: Config) -> dict[str, str]:
    from fmnist.architecture import layer_plan

    return {spec.name: spec.kind for spec in layer_plan(config)}


def _pick(
    ops: list[Op],
    kinds: dict[str, str],
    phase: str,
    op_names: tuple[str, ...],
    kind: str | tuple[str, ...] | None = None,
    show: Callable[[Op], str] = lambda o: o["outputs"][0],
) -> str:
    """The distinct dtypes of the matching ops, or 'none' when no op matches."""
    seen = [
        v
        for o in ops
        if o["phase"] == phase
        and o["op"] in op_names
        and (kind is None or {kinds.get(o["layer"]), o["layer"]} & ({kind} if isinstance(kind, str) else set(kind)))
        and any(d.startswith(("float", "bfloat")) for d in o["outputs"] + o["inputs"])
        and (v := show(o)) is not None
    ]
    return " / ".join(sorted(set(seen))) or "none"


def _float_inputs(o: Op) -> str:
    floats = [d for d in o["inputs"] if d.startswith(("float", "bfloat"))]
    return " x ".join(floats) + " -> " + o["outputs"][0]


def _cast(o: Op) -> str:
    return o["inputs"][0] + " -> " + o["outputs"][0]


def _float_cast(o: Op) -> str | None:
    """A cast from one float type to another (not a count made a float, nor a no-op cast)."""
    changes = o["inputs"][0] != o["outputs"][0] and o["inputs"][0].startswith(("float", "bfloat"))
    return _cast(o) if changes else None


def _second_input(o: Op) -> str:
    return o["inputs"][1] + " -> " + o["outputs"][0]


def _torch_conv(o: Op) -> str:
    return _float_inputs({**o, "inputs": o["inputs"][:2]})


def _torch_conv_bias(o: Op) -> str | None:
    """torch adds a conv's bias inside the convolution op (its third input)."""
    return o["inputs"][2] + " -> " + o["outputs"][0] if len(o["inputs"]) > 2 else None


TF, TORCH, JAX, KERAS_TORCH = "tensorflow", "torch", "jax", "keras-torch"
#: The op vocabularies the rows read.
VOCABULARIES = (TF, TORCH, JAX, KERAS_TORCH)
_OPTIMIZER = ("sub", "add", "mul", "div", "sqrt", "rsub", "pow", "square")
#: (row, {vocabulary: (phase, op names, layer kind or name, what to show)}). The rows follow the
#: order a training step runs. A log without layer names for backward ops (aten ops run by
#: autograd) is read by op name alone there.
ROWS: list[tuple[str, dict[str, tuple]]] = [
    (
        "input normalisation (x * scale + offset)",
        {
            TF: ("forward", ("Mul", "AddV2"), "normalize"),
            TORCH: ("forward", ("mul", "add"), "normalize"),
            JAX: ("forward", ("mul", "add"), "normalize"),
            KERAS_TORCH: ("forward", ("mul", "add"), "normalize"),
        },
    ),
    (
        "conv: input x weight -> output",
        {
            TF: ("forward", ("Conv2D",), "conv", _float_inputs),
            TORCH: ("forward", ("convolution",), "conv", _torch_conv),
            JAX: ("forward", ("conv_general_dilated",), "conv", _float_inputs),
            KERAS_TORCH: ("forward", ("convolution",), "conv", _torch_conv),
        },
    ),
    (
        "conv bias add: bias -> output",
        {
            TF: ("forward", ("BiasAdd",), "conv", _second_input),
            TORCH: ("forward", ("convolution",), "conv", _torch_conv_bias),
            JAX: ("forward", ("add",), "conv", _second_input),
            KERAS_TORCH: ("forward", ("add",), "conv", _second_input),
        },
    ),
    (
        "batch norm: statistics and normalisation",
        {
            TF: ("forward", ("Mean", "SquaredDifference"), "batch_norm"),
            TORCH: ("forward", ("native_batch_norm", "var_mean"), "batch_norm"),
            JAX: ("forward", ("reduce_sum", "square", "rsqrt"), "batch_norm"),
            KERAS_TORCH: ("forward", ("mean", "pow", "rsqrt_"), "batch_norm"),
        },
    ),
    (
        "batch norm: running-statistics update",
        {
            TF: ("forward", ("AssignVariableOp",), "batch_norm", lambda o: o["inputs"][1]),
            TORCH: ("forward", ("lerp_",), "batch_norm"),
            JAX: ("forward", ("mul", "add"), "batch_norm"),  # the new state, returned by the step
            KERAS_TORCH: ("forward", ("mul_", "add_"), "batch_norm"),
        },
    ),
    (
        "batch norm: casts in and out",
        {
            TF: ("forward", ("Cast",), "batch_norm", _cast),
            TORCH: ("forward", ("_to_copy",), "batch_norm", _cast),
            JAX: ("forward", ("convert_element_type",), "batch_norm", _float_cast),
            KERAS_TORCH: ("forward", ("_to_copy",), "batch_norm", _cast),
        },
    ),
    (
        "ReLU and max-pool",
        {
            TF: ("forward", ("Relu", "MaxPool"), None),
            TORCH: ("forward", ("relu", "relu_", "max_pool2d_with_indices"), None),
            JAX: ("forward", ("max", "reduce_window_max"), ("relu", "max_pool")),
            KERAS_TORCH: ("forward", ("relu", "max_pool2d_with_indices"), None),
        },
    ),
    (
        "dropout: random draws",
        {
            TF: ("forward", ("StatelessRandomUniformV2",), "dropout"),
            TORCH: ("forward", ("bernoulli_",), "dropout"),
            JAX: ("forward", ("bitcast_convert_type",), "dropout"),  # random bits made uniform floats
            KERAS_TORCH: ("forward", ("bernoulli_",), "dropout"),
        },
    ),
    (
        "dropout: scaling and masking",
        {
            TF: ("forward", ("Mul", "SelectV2"), "dropout"),
            TORCH: ("forward", ("mul", "div_"), "dropout"),
            JAX: ("forward", ("div", "select_n"), "dropout"),
            KERAS_TORCH: ("forward", ("mul", "div_"), "dropout"),
        },
    ),
    (
        "dense: input x weight -> output",
        {
            TF: ("forward", ("MatMul",), "dense", _float_inputs),
            TORCH: ("forward", ("addmm", "mm"), "dense", lambda o: _float_inputs({**o, "inputs": o["inputs"][1:]})),
            JAX: ("forward", ("dot_general",), "dense", _float_inputs),
            KERAS_TORCH: ("forward", ("mm", "matmul"), "dense", _float_inputs),
        },
    ),
    (
        "dense bias add: bias -> output",
        {
            TF: ("forward", ("BiasAdd",), "dense", _second_input),
            TORCH: ("forward", ("addmm",), "dense", _cast),
            JAX: ("forward", ("add",), "dense", _second_input),
            KERAS_TORCH: ("forward", ("add",), "dense", _second_input),
        },
    ),
    # Keras on TensorFlow: matched by op type alone (the loss's name scope varies with what the
    # process built before); with deterministic kernels TensorFlow computes it as LogSoftmax and a gather.
    (
        "softmax and loss",
        {
            TF: (
                "forward",
                ("SoftmaxCrossEntropyWithLogits", "SparseSoftmaxCrossEntropyWithLogits", "LogSoftmax"),
                None,
                lambda o: _float_inputs({**o, "inputs": o["inputs"][:1]}),
            ),
            TORCH: ("forward", ("_log_softmax",), "loss", _float_inputs),
            JAX: ("forward", ("reduce_max", "exp", "log"), "loss", _float_inputs),
            KERAS_TORCH: ("forward", ("_log_softmax",), "loss", _float_inputs),
        },
    ),
    (
        "gradient: activations (conv, dense)",
        {
            TF: ("backward", ("Conv2DBackpropInput", "MatMul"), None),
            TORCH: ("backward", ("convolution_backward", "mm"), None),
            JAX: ("backward", ("conv_general_dilated", "dot_general"), None),
            KERAS_TORCH: ("backward", ("convolution_backward", "mm"), None),
        },
    ),
    (
        "gradient: conv weights, as computed",
        {
            TF: ("backward", ("Conv2DBackpropFilter",), None),
            TORCH: ("backward", ("convolution_backward",), None, lambda o: o["outputs"][-1]),
            JAX: ("backward", ("conv_general_dilated",), "conv"),
            KERAS_TORCH: ("backward", ("convolution_backward",), None, lambda o: o["outputs"][-1]),
        },
    ),
    (
        "gradient: biases, as computed",
        {
            TF: ("backward", ("BiasAddGrad",), None),
            TORCH: ("backward", ("sum",), None),
            JAX: ("backward", ("reduce_sum",), ("conv", "dense")),
            KERAS_TORCH: (
                "backward",
                ("sum",),
                None,
                lambda o: o["outputs"][0] if o["inputs"][0] == "bfloat16" else None,
            ),
        },
    ),
    (
        "gradient: batch norm",
        {
            TF: ("backward", ("Sum", "Mul", "RsqrtGrad"), "batch_norm"),
            TORCH: ("backward", ("native_batch_norm_backward",), None),
            JAX: ("backward", ("mul", "reduce_sum"), "batch_norm"),
            # unnamed backward ops: the float32 ones between the casts around batch norm
            KERAS_TORCH: ("backward", ("pow",), None),
        },
    ),
    (
        "optimizer update (weights and moments)",
        {
            TF: (
                "optimizer",
                ("AssignSubVariableOp", "AssignVariableOp", "AssignAddVariableOp"),
                None,
                lambda o: o["inputs"][-1],
            ),
            TORCH: ("optimizer", ("sub_", "add_", "mul_", "addcmul_", "lerp_", "div", "sqrt"), None),
            JAX: ("optimizer", _OPTIMIZER, None),
            KERAS_TORCH: ("optimizer", (*_OPTIMIZER, *(f"_foreach_{o}" for o in ("mul", "add", "sqrt", "div"))), None),
        },
    ),
]


def dtype_rows(config: Config, first: dict[str, Any], second: dict[str, Any]) -> list[dict[str, str]]:
    """The table's rows from two engines' logs (`bf16_trace` answers: the Keras engine's, then
    Lightning's), as {"quantity", "keras", "torch"}; a log the engine could not give, or in a
    vocabulary no rule reads, fills its column with why."""
    kinds = _kinds(config)

    def cell(trace: dict[str, Any], row: tuple) -> str:
        if trace.get("unavailable"):
            return "not measured"
        rule = row[1].get(trace["vocabulary"])
        return _pick(trace["ops"], kinds, *rule) if rule else f"no rule for {trace['vocabulary']} ops"

    return [{"quantity": row[0], "keras": cell(first, row), "torch": cell(second, row)} for row in ROWS]
