"""The one table of benchmark variants: what each measures, which runners measure it, and the
config settings behind it. The planner (`orchestrate`, the default list and the accepted names)
and the worker (what a variant sets) both read it, so they cannot disagree.

A variant is what `fmnist train` does with the matching config, not a benchmark-only path: each
sets every speed knob it names, so "eager" or "tf" is float32 even on a bf16 config.

`gpu` marks the variants of the prepared GPU run (`benchmarks.gpu_run`): what one would train
with on a GPU (bf16, channels_last, torch.compile; Keras on JAX, the GPU image having no
TensorFlow) beside the float32 baseline each is measured against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fmnist.config import Config, with_overrides
from fmnist import engines


@dataclass(frozen=True)
class Variant:
    name: str
    backend: str  # the `--backend` it belongs to: "lightning" or "keras"
    runners: tuple[str, ...]  # measured by each, in this order
    precision: str  # train.precision
    channels_last: bool | None = None  # train.channels_last; None: a knob the runner does not have
    keras_backend: str | None = None  # KERAS_BACKEND of the worker, also the package it needs
    jit_compile: bool | None = None  # Keras' jit_compile; None: what compile_model chose
    torch_compile: bool = False  # torch.compile the network
    default: bool = True  # measured when --variants is not given
    gpu: bool = False  # measured by the prepared GPU run (benchmarks.gpu_run)

    @property
    def engine(self) -> str:
        """The engine (`fmnist.engines`) whose step loops measure it: the one declaring it among
        its `speed_variants`."""
        for spec in engines.all_engines():
            if self.name in spec.speed_variants:
                return spec.name
        raise ValueError(f"no installed engine runs the variant {self.name!r}")

    @property
    def overrides(self) -> dict[str, Any]:
        """The config fields this variant sets."""
        out: dict[str, Any] = {}
        if self.channels_last is not None:
            out["train.channels_last"] = self.channels_last
        out["train.precision"] = self.precision
        return out


_TORCH = ("plain torch", "lightning")  # the plain loop first: Lightning's reference
_F32, _BF16 = "float32", "bf16-mixed"

#: name -> variant, in the order the benchmark runs and reports them.
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("eager", "lightning", _TORCH, _F32, channels_last=False, gpu=True),
        Variant("channels_last", "lightning", _TORCH, _F32, channels_last=True),
        Variant("bf16", "lightning", _TORCH, _BF16, channels_last=False),
        Variant("channels_last+bf16", "lightning", _TORCH, _BF16, channels_last=True, gpu=True),
        Variant("compile", "lightning", _TORCH, _F32, channels_last=False, torch_compile=True),
        # Every torch knob at once: what a GPU run trains with. Asked for by name (or by the GPU run).
        Variant(
            "channels_last+bf16+compile",
            "lightning",
            _TORCH,
            _BF16,
            channels_last=True,
            torch_compile=True,
            default=False,
            gpu=True,
        ),
        Variant("tf", "keras", ("keras",), _F32, keras_backend="tensorflow"),
        Variant("tf-xla", "keras", ("keras",), _F32, keras_backend="tensorflow", jit_compile=True),
        Variant("tf-bf16", "keras", ("keras",), _BF16, keras_backend="tensorflow"),
        Variant("jax", "keras", ("keras",), _F32, keras_backend="jax", gpu=True),
        # Keras' mixed_bfloat16 on JAX: the GPU counterpart of tf-bf16. Asked for by name (or by the GPU run).
        Variant("jax-bf16", "keras", ("keras",), _BF16, keras_backend="jax", default=False, gpu=True),
        Variant("torch", "keras", ("keras",), _F32, keras_backend="torch"),
        # Keras on TensorFlow without XLA whatever compile_model chose: asked for by name only.
        Variant("tf-graph", "keras", ("keras",), _F32, keras_backend="tensorflow", jit_compile=False, default=False),
    )
}


def names(backend: str | None = None) -> tuple[str, ...]:
    """Every variant's name (of one `--backend` if given), in table order."""
    return tuple(v.name for v in VARIANTS.values() if backend is None or v.backend == backend)


def gpu_names() -> tuple[str, ...]:
    """The variants of the prepared GPU run, in table order."""
    return tuple(v.name for v in VARIANTS.values() if v.gpu)


def lookup(name: str) -> Variant:
    """The variant called `name`; ValueError for a name the table lacks."""
    variant = VARIANTS.get(name)
    if variant is None:
        raise ValueError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
    return variant


def variant_for(runner: str, name: str) -> Variant:
    """The variant `name` as `runner` measures it; ValueError for a name the table lacks or
    one of another runner (a worker refuses what the planner would never send)."""
    variant = lookup(name)
    if runner not in variant.runners:
        raise ValueError(f"variant {name!r} is measured by {' and '.join(variant.runners)}, not by {runner!r}")
    return variant


def variant_config(config: Config, name: str) -> Config:
    """`config` with the settings of variant `name` (ValueError for an unknown name)."""
    return with_overrides(config, lookup(name).overrides)
