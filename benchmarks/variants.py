"""The one table of benchmark variants: what each measures and the config settings behind it;
which engines run each, they declare. The planner (`orchestrate`, the default list and the accepted names)
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
    precision: str  # train.precision
    channels_last: bool | None = None  # train.channels_last; None: a knob its engines do not have
    jit_compile: bool | None = None  # Keras' jit_compile; None: what compile_model chose
    torch_compile: bool = False  # torch.compile the network
    default: bool = True  # measured when --variants is not given
    gpu: bool = False  # measured by the prepared GPU run (benchmarks.gpu_run)

    def engines(self) -> tuple[str, ...]:
        """The engines (`fmnist.engines`) that run it: those declaring it among their `speed_variants`."""
        return tuple(e.name for e in engines.all_engines() if self.name in e.speed_variants)

    @property
    def overrides(self) -> dict[str, Any]:
        """The config fields this variant sets."""
        out: dict[str, Any] = {}
        if self.channels_last is not None:
            out["train.channels_last"] = self.channels_last
        out["train.precision"] = self.precision
        return out


_F32, _BF16 = "float32", "bf16-mixed"

#: name -> variant, in the order the benchmark runs and reports them. Which engines run each is
#: theirs to declare (`fmnist.engine.Engine.speed_variants`): the torch knobs every torch engine,
#: Keras' backends each Keras engine its own.
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("eager", _F32, channels_last=False, gpu=True),
        Variant("channels_last", _F32, channels_last=True),
        Variant("bf16", _BF16, channels_last=False),
        Variant("channels_last+bf16", _BF16, channels_last=True, gpu=True),
        Variant("compile", _F32, channels_last=False, torch_compile=True),
        # Every torch knob at once: what a GPU run trains with. Asked for by name (or by the GPU run).
        Variant("channels_last+bf16+compile", _BF16, channels_last=True, torch_compile=True, default=False, gpu=True),
        Variant("tf", _F32),
        Variant("tf-xla", _F32, jit_compile=True),
        Variant("tf-bf16", _BF16),
        Variant("jax", _F32, gpu=True),
        # Keras' mixed_bfloat16 on JAX: the GPU counterpart of tf-bf16. Asked for by name (or by the GPU run).
        Variant("jax-bf16", _BF16, default=False, gpu=True),
        Variant("torch", _F32),
        # Keras on TensorFlow without XLA whatever compile_model chose: asked for by name only.
        Variant("tf-graph", _F32, jit_compile=False, default=False),
    )
}


def names(engine: str | None = None) -> tuple[str, ...]:
    """Every variant's name (of one engine if given), in table order."""
    return tuple(v.name for v in VARIANTS.values() if engine is None or engine in v.engines())


def gpu_names() -> tuple[str, ...]:
    """The variants of the prepared GPU run, in table order."""
    return tuple(v.name for v in VARIANTS.values() if v.gpu)


def lookup(name: str) -> Variant:
    """The variant called `name`; ValueError for a name the table lacks."""
    variant = VARIANTS.get(name)
    if variant is None:
        raise ValueError(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
    return variant


def variant_for(engine: str, name: str) -> Variant:
    """The variant `name` as `engine` runs it; ValueError for a name the table lacks or one the
    engine does not run (a worker refuses what the planner would never send)."""
    variant = lookup(name)
    if engine not in variant.engines():
        raise ValueError(f"variant {name!r} is run by {' and '.join(variant.engines())}, not by {engine!r}")
    return variant


def variant_config(config: Config, name: str) -> Config:
    """`config` with the settings of variant `name` (ValueError for an unknown name)."""
    return with_overrides(config, lookup(name).overrides)
