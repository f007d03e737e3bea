"""Which precision a training runs in: `train.precision: auto` resolved for the device it trains on.

Why: bf16-mixed nearly doubles training speed where the device computes bfloat16 natively (a CPU
with AVX512-BF16 or AMX, a GPU of compute capability 8.0 or later) and slows it several times
where the framework emulates it (a CPU with AVX2 only: docs/speed.md). `auto` picks bf16-mixed
where bfloat16 is native and float32 elsewhere, so one recipe trains at full speed on every
machine. The rule is here, framework-free; which device a training uses, and a GPU's compute
capability, only the framework knows: each engine says it (`training_device`), the core decides.

A run records both: `precision_asked` (what its config said, "auto" among them) and `precision`
(what it trained in, also its config.yaml's), so a run made before `auto` existed reads the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmnist.config import Config, with_overrides
from fmnist.cpu_features import CPUINFO, NATIVE_BF16_FLAGS, cpu_flags, cpu_model

AUTO = "auto"
FLOAT32 = "float32"
BF16 = "bf16-mixed"
#: What a training runs in: what "auto" becomes.
RESOLVED = (FLOAT32, BF16)
#: The first GPU compute capability with bfloat16 tensor cores (Ampere); older GPUs emulate it.
GPU_BF16_CAPABILITY = (8, 0)


@dataclass(frozen=True)
class Device:
    """The device a training runs on, as far as the precision rule needs it."""

    kind: str  # "cpu" or "gpu"
    name: str
    native_bf16: bool | None  # None: unknown (the CPU's flags cannot be read): float32
    evidence: str  # what native_bf16 rests on, for the line a training prints at start


def cpu_device(path: Path = CPUINFO) -> Device:
    """This CPU, with its bfloat16 instructions read from /proc/cpuinfo."""
    flags = cpu_flags(path)
    if flags is None:
        return Device("cpu", cpu_model(path), None, "its flags cannot be read")
    found = sorted(flags.intersection(NATIVE_BF16_FLAGS))
    evidence = f"has {', '.join(found)}" if found else f"has none of {', '.join(NATIVE_BF16_FLAGS)}"
    return Device("cpu", cpu_model(path), bool(found), evidence)


def gpu_device(name: str, capability: tuple[int, int]) -> Device:
    """A GPU by its compute capability, as the engine's framework reports it."""
    major, minor = (int(part) for part in capability)
    native = (major, minor) >= GPU_BF16_CAPABILITY
    return Device("gpu", name, native, f"compute capability {major}.{minor}")


def resolve(asked: str, device: Device) -> str:
    """The precision a training asked for `asked` runs in on `device`: an explicit one as asked."""
    if asked != AUTO:
        return asked
    return BF16 if device.native_bf16 else FLOAT32


def resolve_config(config: Config, device: Device) -> Config:
    """`config` with its precision resolved for `device` (unchanged when explicit)."""
    resolved = resolve(config.train.precision, device)
    return config if resolved == config.train.precision else with_overrides(config, {"train.precision": resolved})


def describe(asked: str, resolved: str, device: Device | None = None) -> str:
    """The line a training prints at start: what it trains in, and why."""
    if asked != AUTO or device is None:
        return f"precision: {resolved}" + (f" (asked {asked})" if asked != resolved else "")
    native = {True: "bfloat16 is native", False: "bfloat16 would be emulated", None: "float32 to be safe"}
    return (
        f"precision: {resolved} (auto: the {device.kind.upper()}, {device.name}, {device.evidence};"
        f" {native[device.native_bf16]})"
    )


def uses_bf16(precision: str) -> bool:
    """Whether a training runs bf16 mixed precision. The engines ask this of a resolved config: an
    "auto" here is a bug upstream (the core resolves it before an engine sees it)."""
    if precision not in RESOLVED:
        raise ValueError(f"precision {precision!r} must be resolved for a device first (fmnist.precision.resolve)")
    return precision == BF16


def ran(record: Mapping[str, Any]) -> str | None:
    """The precision a run trained in, from its run.json or test_metrics.json (None: not recorded)."""
    return record.get("precision")


def asked_of(record: Mapping[str, Any]) -> str | None:
    """The precision a run's config asked for; a run from before `auto` asked what it ran."""
    return record.get("precision_asked", record.get("precision"))


def matches(record: Mapping[str, Any], asked: str, here: Device) -> bool:
    """Whether a run answers a request for `asked`: an explicit precision matches a run that trained
    in it, however it was asked; `auto` matches a run that asked `auto` (it resolved it for the
    device it trained on) or one that trained in what `auto` gives on `here`. A set of runs
    mixing precisions is refused by the report all the same (compare.report_runs)."""
    if asked != AUTO:
        return ran(record) == asked
    return asked_of(record) == AUTO or ran(record) == resolve(AUTO, here)
