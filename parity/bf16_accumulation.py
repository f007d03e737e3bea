"""What no op log shows, how a kernel accumulates and where it rounds, found by experiment: the
share of a kernel's bfloat16 outputs equal to the exact result rounded once to bfloat16 (near 1:
float32 accumulation and one rounding; far below: bfloat16 accumulation, or a second rounding).

The numbers are drawn here, each engine runs its kernels on them (the contract's `bf16_kernels`,
in a process of its own), and the exact results are computed here in float64 numpy."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from parity.bf16_trace import bf16_config
from fmnist.config import Config, load_config
from fmnist.engine_job import call, on_device

#: A kernel whose outputs equal the once-rounded exact result this often accumulates in float32
#: and rounds once: different float32 summation orders straddle a bfloat16 rounding boundary for
#: well under 1% of outputs (about sqrt(K) * 2^-24 / 2^-9 for K terms), while a bfloat16
#: accumulator or a second rounding changes 25-90% of them (both measured in docs/parity.md).
ONE_ROUNDING_SHARE = 0.99
#: The dropout rates of the project's configs, whose kept share and mean a bf16 model must keep.
DROPOUT_RATES = (0.1, 0.2)
#: The config whose input normalisation is measured (it has batch norm and dropout, as the table).
PROBE_CONFIG = "improved"


def round_bf16(a: Any) -> np.ndarray:
    """Round to float32, then to the nearest bfloat16 (ties to even), returned as float32: the
    bits as every framework's cast sets them."""
    bits = np.array(a, np.float32).view(np.uint32)
    rounded = (bits.astype(np.uint64) + 0x7FFF + ((bits >> 16) & 1)).astype(np.uint32) & np.uint32(0xFFFF0000)
    return np.where(np.isnan(bits.view(np.float32)), bits.view(np.float32), rounded.view(np.float32))


def _share_once_rounded(out: Any, exact: np.ndarray) -> float:
    return float((np.asarray(out, np.float32) == round_bf16(exact)).mean())


def kernel_inputs(seed: int = 0) -> dict[str, np.ndarray]:
    """bfloat16-valued numbers for every kernel (so both frameworks start exact): a dense layer of
    1024 inputs, a 3x3 conv of 32 channels, the gradients fed back, all 256 pixel values, and
    activations for dropout."""
    rng = np.random.default_rng(seed)
    arrays = {
        "dense_input": rng.standard_normal((128, 1024)),
        "dense_kernel": rng.standard_normal((1024, 64)) * 0.03,
        "dense_bias": rng.standard_normal(64) * 0.1,
        "dense_grad": rng.standard_normal((128, 64)),
        "conv_input": rng.standard_normal((8, 14, 14, 32)),
        "conv_kernel": rng.standard_normal((3, 3, 32, 64)) * 0.05,
        "conv_bias": rng.standard_normal(64) * 0.1,
        "conv_grad": rng.standard_normal((8, 14, 14, 64)),
    }
    arrays = {k: round_bf16(v) for k, v in arrays.items()}
    arrays["pixels"] = np.tile(np.arange(256, dtype=np.float32), 4).reshape(1, 32, 32)[:, :28, :28].copy()
    arrays["dropout_input"] = round_bf16(np.random.default_rng(1).uniform(1, 2, (1000, 1000)))
    return arrays


def probe_config() -> Config:
    return bf16_config(load_config(PROBE_CONFIG))


def kernel_call(arrays: dict[str, np.ndarray], device: str = "cpu") -> dict[str, Any]:
    """The engine job's call that runs every kernel on `arrays` on `device`."""
    return call("bf16_kernels", probe_config(), arrays=arrays, dropout_rates=list(DROPOUT_RATES), **on_device(device))


def _windows(x: np.ndarray, size: int) -> np.ndarray:
    """'same'-padded, stride-1 size x size windows of NHWC x: N, H, W, C, size, size."""
    pad = ((0, 0), (size // 2, size - 1 - size // 2), (size // 2, size - 1 - size // 2), (0, 0))
    return sliding_window_view(np.pad(x, pad), (size, size), axis=(1, 2))


def exact_results(arrays: dict[str, np.ndarray], config: Config) -> dict[str, np.ndarray]:
    """What each kernel computes, in float64: the reference each engine's bfloat16 numbers are held to."""
    f64 = {k: v.astype(np.float64) for k, v in arrays.items()}
    windows = _windows(f64["conv_input"], f64["conv_kernel"].shape[0])
    return {
        "dense": f64["dense_input"] @ f64["dense_kernel"] + arrays["dense_bias"],
        "conv": np.einsum("nhwcij,ijco->nhwo", windows, f64["conv_kernel"]) + arrays["conv_bias"],
        "conv_kernel_grad": np.einsum("nhwcij,nhwo->ijco", windows, f64["conv_grad"]),
        "dense_bias_grad": f64["dense_grad"].sum(0),
        "conv_bias_grad": f64["conv_grad"].sum((0, 1, 2)),
        "normalize": f64["pixels"] * (1 / config.data.std) - config.data.mean / config.data.std,
    }


#: (experiment, the kernel's result) in the order a training step runs them.
KERNELS = (
    ("dense forward, bias add included (1024 terms)", "dense"),
    ("conv forward, bias add included (3x3x32 terms)", "conv"),
    ("conv weight gradient (8x14x14 terms)", "conv_kernel_grad"),
    ("dense bias gradient (sum over 128 images)", "dense_bias_grad"),
    ("conv bias gradient (sum over 8x14x14 positions)", "conv_bias_grad"),
    ("input normalisation (first conv's input)", "normalize"),
)


def _verdict(share: float | None, unavailable: str | None, out: Any = None) -> str:
    if share is None:
        return f"not measured: {unavailable}"
    if share >= ONE_ROUNDING_SHARE:
        return "float32, one rounding"
    if out is not None and _share_once_rounded(out, out) < ONE_ROUNDING_SHARE:  # excess precision (XLA)
        return "float32, not rounded to bfloat16"
    return "bfloat16 or two roundings"


def experiments(arrays: dict[str, np.ndarray], found: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each kernel's share of outputs equal to the exact result rounded once, per side ("keras",
    "torch": each engine's `bf16_kernels` answer); then dropout's kept share and mean out over
    mean in on bfloat16 activations, as the next layer sees them (expected: 1 - rate, and 1
    within 0.0015, 4 standard errors of a million units). A side that could not run them says why."""
    exact = exact_results(arrays, probe_config())
    why = {side: answer.get("unavailable") for side, answer in found.items()}
    rows = []
    for name, key in KERNELS:
        shares = {s: None if why[s] else _share_once_rounded(a[key], exact[key]) for s, a in found.items()}
        row: dict[str, Any] = {"experiment": name}
        row.update({f"{s}_share": None if v is None else round(v, 4) for s, v in shares.items()})
        row.update(
            {s: _verdict(v, why[s], None if why[s] else a[key]) for (s, v), a in zip(shares.items(), found.values())}
        )
        rows.append(row)
    x = arrays["dropout_input"]
    for rate in DROPOUT_RATES:
        row = {"experiment": f"dropout rate {rate}: kept share / mean out over mean in (expected {1 - rate:g} / 1)"}
        for side, answer in found.items():
            if why[side]:
                row.update({f"{side}_share": None, side: _verdict(None, why[side]), f"{side}_unbiased": None})
                continue
            out = answer[f"dropout_{rate:g}"]
            kept, ratio = (out > 0).mean(), out.mean() / x.mean()
            row[f"{side}_share"] = round(float(kept), 4)
            row[side] = f"{kept:.4f} / {ratio:.4f}"
            row[f"{side}_unbiased"] = bool(abs(ratio - 1) < 0.0015)
        rows.append(row)
    return rows
