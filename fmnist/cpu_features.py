"""What this CPU computes natively, read from /proc/cpuinfo (no framework needed).

Why: `precision: bf16-mixed` is a speed knob. On a CPU with bfloat16 instructions (AVX512-BF16
or AMX) it nearly doubles training speed; on one without them (AVX2 only) the frameworks emulate
bfloat16, and a strong.yaml step took 4x (Keras) and 10x (Lightning) longer than in float32
(benchmarks/results/2026-12-01-cpu-avx2-strong). So `precision: auto` trains in float32 there
(`fmnist.precision` reads `native_bf16`), and an explicit bf16-mixed is warned about before an
hour-long run, not after. The benchmark records the same facts.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

#: Flags (as Linux names them) of the instructions that make bfloat16 matmuls and convolutions fast.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
#: Flag prefixes of the features that decide which kernels run: what a benchmark records.
KERNEL_FLAG_PREFIXES = ("avx512", "amx", "avx2", "fma")
#: Flags both frameworks' oneDNN bfloat16 matmuls and convolutions need (TensorFlow checks AVX512F,
#: torch AVX512BW/VL/DQ). With them a bf16 kernel accumulates in float32 and rounds once in either
#: framework; without them each falls back to its own emulation and the two round differently, so
#: bf16 parity holds on one kind of CPU and not on the other (docs/parity.md, "CPUs without AVX-512").
ONEDNN_BF16_FLAGS = ("avx512f", "avx512bw", "avx512vl", "avx512dq")
#: The kinds of CPU by bf16 kernels, as bf16_kernels names them.
BF16_KERNEL_KINDS = ("avx512", "no_avx512")
CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo_field(name: str, path: Path = CPUINFO) -> str | None:
    """The first value of a /proc/cpuinfo field, or None where there is no such file or field."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def cpu_flags(path: Path = CPUINFO) -> set[str] | None:
    """The CPU's feature flags; None where they cannot be read (not Linux)."""
    flags = _cpuinfo_field("flags", path)
    return None if flags is None else set(flags.split())


def kernel_flags(path: Path = CPUINFO) -> list[str]:
    """The flags among KERNEL_FLAG_PREFIXES, sorted; empty where unknown."""
    return sorted(f for f in cpu_flags(path) or () if f.startswith(KERNEL_FLAG_PREFIXES))


def cpu_model(path: Path = CPUINFO) -> str:
    return _cpuinfo_field("model name", path) or platform.processor() or platform.machine()


def native_bf16(path: Path = CPUINFO) -> bool | None:
    """True if the CPU has bfloat16 instructions, False if it has not, None if unknown."""
    flags = cpu_flags(path)
    return None if flags is None else bool(flags.intersection(NATIVE_BF16_FLAGS))


def bf16_kernels(path: Path = CPUINFO) -> str | None:
    """'avx512' where both frameworks run bf16 kernels in oneDNN, 'no_avx512' where they fall
    back to their own emulation, None where the flags cannot be read."""
    flags = cpu_flags(path)
    if flags is None:
        return None
    return "avx512" if flags.issuperset(ONEDNN_BF16_FLAGS) else "no_avx512"


def bf16_cpu_warning(precision: str, path: Path = CPUINFO) -> str | None:
    """A warning for bf16-mixed training on a CPU that emulates bfloat16; None when there is no cause."""
    if precision != "bf16-mixed" or native_bf16(path) is not False:
        return None
    return (
        f"warning: precision bf16-mixed on a CPU without bfloat16 instructions ({cpu_model(path)};"
        f" none of {', '.join(NATIVE_BF16_FLAGS)}): the frameworks emulate it, 4-10x slower than float32"
        " on such a CPU (measured). --precision float32 (or auto) trains at full speed (other rounding: do not mix"
        " such runs with bf16 ones in one comparison)."
    )


def warn_if_emulated_bf16(precision: str, on_cpu: bool, path: Path = CPUINFO) -> None:
    """Print bf16_cpu_warning to stderr when training on the CPU; engines call it once, rank 0."""
    message = bf16_cpu_warning(precision, path) if on_cpu else None
    if message:
        print(message, file=sys.stderr, flush=True)
