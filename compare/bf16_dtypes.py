"""What each framework computes in which dtype under its bf16 mixed policy, seen on live tensors.

Two instruments, no documentation: torch's ops are logged as they dispatch (a TorchDispatchMode
around one training step of the project's LightningModule, inside Lightning's own bf16-mixed
autocast context), Keras' ops as TensorFlow traces them (the graph of `model.train_step` in a
tf.function, as `model.fit` runs it). Each row of the table picks the ops it is about from both
logs. What no log shows, how a kernel accumulates and where it rounds, is found by experiment:
the share of a kernel's bfloat16 outputs equal to the exact result rounded once to bfloat16
(near 1: float32 accumulation and one rounding; far below: bfloat16 accumulation, or a second
rounding). The committed table (`bf16_dtype_table.json`) is what a test compares these with; it
holds one table per kind of CPU (`fmnist.cpu_features.bf16_kernels`), since which kernels run, and
so how they round, depends on whether the CPU has AVX-512.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fmnist.config import Config, with_overrides
from fmnist.cpu_features import bf16_kernels, cpu_model

TABLE_FILE = Path(__file__).with_name("bf16_dtype_table.json")
#: The configs the committed table covers: batch norm and dropout (improved), conv biases (fast).
TABLE_CONFIGS = ("improved", "fast")
#: A kernel whose outputs equal the once-rounded exact result this often accumulates in float32
#: and rounds once: different float32 summation orders straddle a bfloat16 rounding boundary for
#: well under 1% of outputs (about sqrt(K) * 2^-24 / 2^-9 for K terms), while a bfloat16
#: accumulator or a second rounding changes 25-90% of them (both measured in docs/parity.md).
ONE_ROUNDING_SHARE = 0.99

Op = dict[str, Any]  # {"phase", "layer", "op", "inputs": [dtype, ...], "outputs": [dtype, ...]}


def _frameworks():
    from compare.parity_frameworks import _frameworks as load

    return load()


def bf16_config(config: Config) -> Config:
    return with_overrides(config, {"train.precision": "bf16-mixed"})


# ---------------------------------------------------------------- torch: ops as they dispatch


def torch_trace(config: Config, batch: int = 4) -> list[Op]:
    """One training step of the LightningModule (forward and loss under Lightning's autocast,
    backward, optimizer step), every aten op with its tensors' dtypes."""
    from lightning_model.precision import autocast

    torch, _ = _frameworks()
    from torch.utils._python_dispatch import TorchDispatchMode

    from lightning_model.module import FashionClassifier

    config = bf16_config(config)
    torch.manual_seed(config.seed)
    module = FashionClassifier.from_config(config).train()
    optimizer = module.configure_optimizers()["optimizer"]
    ops: list[Op] = []
    where = {"phase": "forward", "layer": ""}

    def dtypes(value: Any) -> list[str]:
        if isinstance(value, torch.Tensor):
            return [str(value.dtype).removeprefix("torch.")]
        if isinstance(value, (list, tuple)):
            return [d for v in value for d in dtypes(v)]
        return []

    class Log(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            ops.append(
                {**where, "op": str(func.overloadpacket.__name__), "inputs": dtypes(list(args)), "outputs": dtypes(out)}
            )
            return out

    def enter(name: str) -> Callable:
        return lambda *_: where.update(layer=name)

    hooks = [m.register_forward_pre_hook(enter(name)) for name, m in module.network.named_children()]
    hooks.append(module.network.register_forward_hook(enter("loss")))  # what follows the network
    x = torch.rand(batch, 1, 28, 28) * 255
    y = torch.arange(batch) % 10
    try:
        with Log():
            with autocast():
                loss = module.loss(module(x), y)
            where.update(phase="backward", layer="")
            loss.backward()
            where.update(phase="optimizer")
            optimizer.step()
    finally:
        for hook in hooks:
            hook.remove()
    return ops


# ---------------------------------------------------------------- Keras: ops as TensorFlow traces them


def keras_trace(config: Config, batch: int = 4) -> list[Op]:
    """The ops of `model.train_step` traced in a tf.function (the graph `model.fit` runs), with
    the layer each belongs to and its tensors' dtypes."""
    _, keras = _frameworks()
    import tensorflow as tf

    from keras_model.backend import compile_model, seed_everything
    from keras_model.model import build_model

    config = bf16_config(config)
    seed_everything(config)  # the kernels training picks (deterministic ones change the loss's ops)
    model = compile_model(build_model(config), config)
    model.optimizer.build(model.trainable_variables)
    x = tf.constant(np.random.default_rng(0).uniform(0, 255, (batch, 28, 28, 1)).astype(np.float32))
    y = tf.constant(np.arange(batch, dtype=np.int32) % 10)
    graph = tf.function(model.train_step).get_concrete_function((x, y)).graph
    names = {layer.name for layer in model.layers}
    optimizer_scope = model.optimizer.name
    ops = []
    for op in graph.get_operations():
        parts = op.name.split("/")
        layer = next((p.rsplit("_", 1)[0] for p in parts if p.rsplit("_", 1)[0] in names), "")
        phase = (
            "backward"
            if parts[0] == "gradient_tape"
            else "optimizer"
            if parts[0].startswith(optimizer_scope)
            else "forward"
        )
        ops.append(
            {
                "phase": phase,
                "layer": layer,
                "op": op.type,
                "inputs": [t.dtype.name for t in op.inputs],
                "outputs": [t.dtype.name for t in op.outputs],
            }
        )
    return ops


# ---------------------------------------------------------------- the table


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


# ---------------------------------------------------------------- accumulation, by experiment


def _round_bf16(a: np.ndarray) -> np.ndarray:
    """Round to the nearest bfloat16 (ties to even), returned as float32."""
    import torch

    return torch.from_numpy(np.array(a, np.float32)).bfloat16().float().numpy()


def _share_once_rounded(out: Any, exact: np.ndarray) -> float:
    return float((np.asarray(out, np.float32) == _round_bf16(exact)).mean())


def accumulation_experiments(seed: int = 0) -> list[dict[str, Any]]:
    """Each kernel a bf16 training step runs, fed bfloat16 numbers, in each framework as training
    runs it (Keras layers inside a tf.function, as model.fit; torch under Lightning's autocast):
    the share of outputs equal to the exact (float64) result rounded once to bfloat16."""
    from lightning_model.precision import autocast

    torch, keras = _frameworks()
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    bf = lambda a: _round_bf16(a)  # noqa: E731  bfloat16-valued inputs, so both start exact
    x, w, b = (
        bf(rng.standard_normal((128, 1024))),
        bf(rng.standard_normal((1024, 64)) * 0.03),
        bf(rng.standard_normal(64) * 0.1),
    )
    g = bf(rng.standard_normal((128, 64)))
    xi, wk, bk = (
        bf(rng.standard_normal((8, 14, 14, 32))),
        bf(rng.standard_normal((3, 3, 32, 64)) * 0.05),
        bf(rng.standard_normal(64) * 0.1),
    )
    gi = bf(rng.standard_normal((8, 14, 14, 64)))
    out = []

    # Keras: a Dense and a Conv2D layer under mixed_bfloat16, forward and gradients in one tf.function.
    dense = keras.layers.Dense(64, dtype="mixed_bfloat16")
    conv = keras.layers.Conv2D(64, 3, padding="same", dtype="mixed_bfloat16")
    dense.build((None, 1024))
    conv.build((None, 14, 14, 32))
    dense.set_weights([w, b])
    conv.set_weights([wk, bk])

    @tf.function
    def keras_step(x, g, xi, gi):
        with tf.GradientTape(persistent=True) as tape:
            yd, yc = dense(x), conv(xi)
            loss_d = tf.reduce_sum(tf.cast(yd, tf.float32) * g)
            loss_c = tf.reduce_sum(tf.cast(yc, tf.float32) * gi)
        return (
            yd,
            yc,
            tape.gradient(loss_d, dense.bias),
            tape.gradient(loss_c, conv.kernel),
            tape.gradient(loss_c, conv.bias),
        )

    kd, kc, kdb, kck, kcb = (np.asarray(tf.cast(t, tf.float32)) for t in keras_step(x, g, xi, gi))

    # torch: the same numbers through nn.Linear / nn.Conv2d under Lightning's autocast.
    lin, cv = torch.nn.Linear(1024, 64), torch.nn.Conv2d(32, 64, 3, padding=1)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w.T.copy()))
        lin.bias.copy_(torch.from_numpy(b))
        cv.weight.copy_(torch.from_numpy(wk.transpose(3, 2, 0, 1).copy()))
        cv.bias.copy_(torch.from_numpy(bk))
    xin = torch.from_numpy(xi.transpose(0, 3, 1, 2).copy())
    with autocast():
        td, tc = lin(torch.from_numpy(x)), cv(xin)
    td.backward(torch.from_numpy(g).bfloat16())
    tc.backward(torch.from_numpy(gi.transpose(0, 3, 1, 2).copy()).bfloat16())
    nhwc = lambda t: t.detach().float().permute(0, 2, 3, 1).numpy()  # noqa: E731

    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    conv64 = tf.nn.conv2d(xi.astype(np.float64), wk.astype(np.float64), 1, "SAME").numpy()
    filt64 = tf.raw_ops.Conv2DBackpropFilter(
        input=xi.astype(np.float64),
        filter_sizes=[3, 3, 32, 64],
        out_backprop=gi.astype(np.float64),
        strides=[1, 1, 1, 1],
        padding="SAME",
    ).numpy()
    cases = [
        ("dense forward, bias add included (1024 terms)", kd, td.detach().float().numpy(), x64 @ w64 + b),
        ("conv forward, bias add included (3x3x32 terms)", kc, nhwc(tc), conv64 + bk),
        ("conv weight gradient (8x14x14 terms)", kck, cv.weight.grad.permute(2, 3, 1, 0).numpy(), filt64),
        ("dense bias gradient (sum over 128 images)", kdb, lin.bias.grad.numpy(), g.astype(np.float64).sum(0)),
        (
            "conv bias gradient (sum over 8x14x14 positions)",
            kcb,
            cv.bias.grad.numpy(),
            gi.astype(np.float64).sum((0, 1, 2)),
        ),
    ]
    for name, k, t, exact in cases:
        out.append(_experiment_row(name, _share_once_rounded(k, exact), _share_once_rounded(t, exact)))
    out.append(_normalisation_experiment(keras, torch, tf, rng))
    out.extend(_dropout_experiments(keras, torch, tf))
    return out


def _experiment_row(name: str, keras_share: float, torch_share: float) -> dict[str, Any]:
    verdict = lambda s: "float32, one rounding" if s >= ONE_ROUNDING_SHARE else "bfloat16 or two roundings"  # noqa: E731
    return {
        "experiment": name,
        "keras_share": round(keras_share, 4),
        "torch_share": round(torch_share, 4),
        "keras": verdict(keras_share),
        "torch": verdict(torch_share),
    }


def _normalisation_experiment(keras: Any, torch: Any, tf: Any, rng: np.random.Generator) -> dict[str, Any]:
    """The models' own first layer on all 256 pixel values: the value the first conv sees."""
    from lightning_model.precision import autocast

    from fmnist.config import load_config
    from keras_model.model import build_model
    from lightning_model.network import build_network

    root = Path(__file__).resolve().parents[1]
    config = bf16_config(load_config(root / "configs" / "improved.yaml"))
    pixels = np.tile(np.arange(256, dtype=np.float32), 4).reshape(1, 32, 32)[:, :28, :28]
    model, network = build_model(config), build_network(config)
    normalize = model.get_layer("normalize")
    k = tf.function(lambda x: tf.cast(tf.cast(normalize(x), tf.bfloat16), tf.float32))(pixels[..., None])[..., 0]
    with autocast():
        t = network.normalize(torch.from_numpy(pixels[:, None])).bfloat16().float()[:, 0]
    exact = pixels.astype(np.float64) * (1 / config.data.std) - config.data.mean / config.data.std
    return _experiment_row(
        "input normalisation (first conv's input)",
        _share_once_rounded(np.asarray(k), exact),
        _share_once_rounded(t.numpy(), exact),
    )


def _dropout_experiments(keras: Any, torch: Any, tf: Any) -> list[dict[str, Any]]:
    """The share of units a bf16 model's dropout keeps, and mean(output) / mean(input) on random
    bfloat16 activations, as the next layer sees them (expected: 1 - rate, and 1 within 0.0015,
    4 standard errors of a million units)."""
    from keras_model.model import FLOAT32_IN_MIXED_PRECISION
    from lightning_model.network import Float32Dropout

    rows = []
    x = _round_bf16(np.random.default_rng(1).uniform(1, 2, (1000, 1000)))
    for rate in (0.1, 0.2):
        dtype = "float32" if "dropout" in FLOAT32_IN_MIXED_PRECISION else "mixed_bfloat16"
        layer = keras.layers.Dropout(rate, dtype=dtype, seed=1)
        k = np.asarray(
            tf.function(
                lambda v: tf.cast(tf.cast(layer(tf.cast(v, tf.bfloat16), training=True), tf.bfloat16), tf.float32)
            )(x)
        )
        torch.manual_seed(1)
        t = Float32Dropout(rate).train()(torch.from_numpy(x).bfloat16()).float().numpy()
        kept, ratio = (
            {"keras": (k > 0).mean(), "torch": (t > 0).mean()},
            {"keras": k.mean() / x.mean(), "torch": t.mean() / x.mean()},
        )
        row: dict[str, Any] = {
            "experiment": f"dropout rate {rate}: kept share / mean out over mean in (expected {1 - rate:g} / 1)"
        }
        for fw in ("keras", "torch"):
            row[f"{fw}_share"] = round(float(kept[fw]), 4)
            row[fw] = f"{kept[fw]:.4f} / {ratio[fw]:.4f}"
            row[f"{fw}_unbiased"] = bool(abs(ratio[fw] - 1) < 0.0015)
        rows.append(row)
    return rows


# ---------------------------------------------------------------- the whole picture


def measure(config: Config) -> dict[str, Any]:
    """The live table: dtype rows from both traces, and the accumulation experiments."""
    rows = dtype_rows(config, keras_trace(config), torch_trace(config))
    return {"config": config.name, "cpu": cpu_model(), "rows": rows, "experiments": accumulation_experiments()}


def comparable(table: dict[str, Any]) -> dict[str, Any]:
    """What must stay as committed: dtypes and verdicts (the measured shares vary by CPU)."""
    exps = [
        {k: e[k] for k in ("experiment", "keras", "torch") if not e["experiment"].startswith("dropout")}
        for e in table["experiments"]
    ]
    drops = [
        {k: e[k] for k in ("experiment", "keras_unbiased", "torch_unbiased")}
        for e in table["experiments"]
        if e["experiment"].startswith("dropout")
    ]
    return {"rows": table["rows"], "experiments": exps + drops}


def load_committed(config_name: str, kind: str | None = None) -> dict[str, Any] | None:
    """The committed table for a config on a kind of CPU (default: this one's); None if not measured."""
    return json.loads(TABLE_FILE.read_text()).get(kind or bf16_kernels() or "", {}).get(config_name)


def markdown(table: dict[str, Any]) -> str:
    lines = ["| quantity | Keras (mixed_bfloat16) | Lightning (bf16-mixed) |", "|---|---|---|"]
    lines += [f"| {r['quantity']} | {r['keras']} | {r['torch']} |" for r in table["rows"]]
    lines += ["", "| experiment (bfloat16 inputs) | Keras | Lightning |", "|---|---|---|"]
    for e in table["experiments"]:
        if e["experiment"].startswith("dropout"):
            lines.append(f"| {e['experiment']} | {e['keras']} | {e['torch']} |")
        else:
            lines.append(
                f"| {e['experiment']}: share equal to the exact result rounded once | "
                f"{e['keras_share']:.4f} ({e['keras']}) | {e['torch_share']:.4f} ({e['torch']}) |"
            )
    return "\n".join(lines)


def main() -> None:
    """`python -m compare.bf16_dtypes`: measure again, rewrite this kind of CPU's committed table
    (the other kinds' stay), print it as markdown (for docs/parity.md). Run it after a framework
    upgrade that the test flags, once on each kind of CPU."""
    from fmnist.config import load_config
    from fmnist.quiet import tensorflow_environment

    tensorflow_environment()
    root = Path(__file__).resolve().parents[1]
    kind = bf16_kernels()
    if kind is None:
        raise SystemExit("cannot tell this CPU's kind (no /proc/cpuinfo flags): nothing measured")
    tables = {name: measure(load_config(root / "configs" / f"{name}.yaml")) for name in TABLE_CONFIGS}
    committed = json.loads(TABLE_FILE.read_text()) if TABLE_FILE.exists() else {}
    TABLE_FILE.write_text(json.dumps({**committed, kind: tables}, indent=1, sort_keys=True) + "\n")
    print(f"# {cpu_model()} (bf16 kernels: {kind})\n")
    for name, table in tables.items():
        print(f"## configs/{name}.yaml\n\n{markdown(table)}\n")


if __name__ == "__main__":
    main()
