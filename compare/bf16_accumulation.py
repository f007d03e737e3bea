"""What no op log shows, how a kernel accumulates and where it rounds, found by experiment: the
share of a kernel's bfloat16 outputs equal to the exact result rounded once to bfloat16 (near 1:
float32 accumulation and one rounding; far below: bfloat16 accumulation, or a second rounding)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from compare.bf16_trace import _frameworks, bf16_config

#: A kernel whose outputs equal the once-rounded exact result this often accumulates in float32
#: and rounds once: different float32 summation orders straddle a bfloat16 rounding boundary for
#: well under 1% of outputs (about sqrt(K) * 2^-24 / 2^-9 for K terms), while a bfloat16
#: accumulator or a second rounding changes 25-90% of them (both measured in docs/parity.md).
ONE_ROUNDING_SHARE = 0.99


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
