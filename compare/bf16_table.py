"""The bf16 dtype table: each row picks the ops it is about from both frameworks' logs
(compare.bf16_trace) and says which dtypes they compute in."""

from __future__ import annotations

from collections.abc import Callable

from compare.bf16_trace import Op
from fmnist.config import Config


def _kinds(config: Config) -> dict[str, str]:
    from fmnist.architecture import layer_plan

    return {spec.name: spec.kind for spec in layer_plan(config)}


def _pick(
    ops: list[Op],
    kinds: dict[str, str],
    phase: str,
    op_names: tuple[str, ...],
    kind: str | None = None,
    show: Callable[[Op], str] = lambda o: o["outputs"][0],
) -> str:
    """The distinct dtypes of the matching ops, or 'none' when no op matches."""
    seen = [
        v
        for o in ops
        if o["phase"] == phase
        and o["op"] in op_names
        and (kind is None or kinds.get(o["layer"]) == kind or o["layer"] == kind)
        and any(d.startswith(("float", "bfloat")) for d in o["outputs"] + o["inputs"])
        and (v := show(o)) is not None
    ]
    return " / ".join(sorted(set(seen))) or "none"


def _float_inputs(o: Op) -> str:
    floats = [d for d in o["inputs"] if d.startswith(("float", "bfloat"))]
    return " x ".join(floats) + " -> " + o["outputs"][0]


def _cast(o: Op) -> str:
    return o["inputs"][0] + " -> " + o["outputs"][0]


def _second_input(o: Op) -> str:
    return o["inputs"][1] + " -> " + o["outputs"][0]


def _torch_conv(o: Op) -> str:
    return _float_inputs({**o, "inputs": o["inputs"][:2]})


def _torch_conv_bias(o: Op) -> str | None:
    """torch adds a conv's bias inside the convolution op (its third input)."""
    return o["inputs"][2] + " -> " + o["outputs"][0] if len(o["inputs"]) > 2 else None


#: (row, Keras ops, torch ops): phase, op names, layer kind, what to show. The rows follow the
#: order a training step runs.
ROWS: list[tuple[str, tuple, tuple]] = [
    (
        "input normalisation (x * scale + offset)",
        ("forward", ("Mul", "AddV2"), "normalize"),
        ("forward", ("mul", "add"), "normalize"),
    ),
    (
        "conv: input x weight -> output",
        ("forward", ("Conv2D",), "conv", _float_inputs),
        ("forward", ("convolution",), "conv", _torch_conv),
    ),
    (
        "conv bias add: bias -> output",
        ("forward", ("BiasAdd",), "conv", _second_input),
        ("forward", ("convolution",), "conv", _torch_conv_bias),
    ),
    (
        "batch norm: statistics and normalisation",
        ("forward", ("Mean", "SquaredDifference"), "batch_norm"),
        ("forward", ("native_batch_norm", "var_mean"), "batch_norm"),
    ),
    (
        "batch norm: running-statistics update",
        ("forward", ("AssignVariableOp",), "batch_norm", lambda o: o["inputs"][1]),
        ("forward", ("lerp_",), "batch_norm"),
    ),
    (
        "batch norm: casts in and out",
        ("forward", ("Cast",), "batch_norm", _cast),
        ("forward", ("_to_copy",), "batch_norm", _cast),
    ),
    (
        "ReLU and max-pool",
        ("forward", ("Relu", "MaxPool"), None),
        ("forward", ("relu", "relu_", "max_pool2d_with_indices"), None),
    ),
    (
        "dropout: random draws",
        ("forward", ("StatelessRandomUniformV2",), "dropout"),
        ("forward", ("bernoulli_",), "dropout"),
    ),
    (
        "dropout: scaling and masking",
        ("forward", ("Mul", "SelectV2"), "dropout"),
        ("forward", ("mul", "div_"), "dropout"),
    ),
    (
        "dense: input x weight -> output",
        ("forward", ("MatMul",), "dense", _float_inputs),
        ("forward", ("addmm", "mm"), "dense", lambda o: _float_inputs({**o, "inputs": o["inputs"][1:]})),
    ),
    (
        "dense bias add: bias -> output",
        ("forward", ("BiasAdd",), "dense", _second_input),
        ("forward", ("addmm",), "dense", _cast),
    ),
    # Keras: matched by op type alone (the loss's name scope varies with what the process built
    # before); with deterministic kernels TensorFlow computes it as LogSoftmax and a gather.
    (
        "softmax and loss",
        (
            "forward",
            ("SoftmaxCrossEntropyWithLogits", "SparseSoftmaxCrossEntropyWithLogits", "LogSoftmax"),
            None,
            lambda o: _float_inputs({**o, "inputs": o["inputs"][:1]}),
        ),
        ("forward", ("_log_softmax",), "loss", _float_inputs),
    ),
    (
        "gradient: activations (conv, dense)",
        ("backward", ("Conv2DBackpropInput", "MatMul"), None),
        ("backward", ("convolution_backward", "mm"), None),
    ),
    (
        "gradient: conv weights, as computed",
        ("backward", ("Conv2DBackpropFilter",), None),
        ("backward", ("convolution_backward",), None, lambda o: o["outputs"][-1]),
    ),
    ("gradient: biases, as computed", ("backward", ("BiasAddGrad",), None), ("backward", ("sum",), None)),
    (
        "gradient: batch norm",
        ("backward", ("Sum", "Mul", "RsqrtGrad"), "batch_norm"),
        ("backward", ("native_batch_norm_backward",), None),
    ),
    (
        "optimizer update (weights and moments)",
        (
            "optimizer",
            ("AssignSubVariableOp", "AssignVariableOp", "AssignAddVariableOp"),
            None,
            lambda o: o["inputs"][-1],
        ),
        ("optimizer", ("sub_", "add_", "mul_", "addcmul_", "lerp_", "div", "sqrt"), None),
    ),
]


def dtype_rows(config: Config, keras_ops: list[Op], torch_ops: list[Op]) -> list[dict[str, str]]:
    kinds = _kinds(config)
    rows = []
    for name, keras_rule, torch_rule in ROWS:
        rows.append(
            {
                "quantity": name,
                "keras": _pick(keras_ops, kinds, *keras_rule),
                "torch": _pick(torch_ops, kinds, *torch_rule),
            }
        )
    return rows
