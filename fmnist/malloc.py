"""glibc's allocator told to keep freed memory, so torch's per-step buffers stop faulting pages in.

Why: torch's CPU allocator hands every activation and gradient buffer to malloc and frees it
when the step is done. glibc serves blocks above its mmap threshold (128 KiB, growing only up to
32 MiB) with fresh mmaps and returns them on free, and it trims the heap top above 128 KiB; so
each training step maps tens of MiB anew and the kernel zero-fills them page by page. Measured
on a plain torch training loop (docs/speed.md, "Where torch's time went"): 50-150 minor page
faults and 100-450 us of system time per image, worse at batch 1024 than at 128, which is why
torch got slower with the larger batch while TensorFlow (its own CPU allocator) got faster.
Raising both thresholds keeps the freed blocks in the heap for the next step. The math is
untouched; the cost is that the process keeps its peak memory instead of giving it back.

`fmnist train`, prediction and the benchmark's torch runners call `retain_freed_memory` through
`lightning_model.training.configure_torch`. A user who set the allocator up themselves (the glibc
variables or tunables, or another allocator in LD_PRELOAD) keeps their setting; FMNIST_MALLOC=default
leaves glibc as it is (how docs/speed.md measures the difference).
"""

from __future__ import annotations

import ctypes
import os
import platform
from typing import Any

#: Blocks up to this size are reused from the heap instead of mmapped and unmapped on each step,
#: and the heap is trimmed only above it: larger than any buffer of the largest batch we train.
RETAIN_BYTES = 1 << 30
#: mallopt's parameter numbers (glibc malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: FMNIST_MALLOC=default: leave the allocator as glibc sets it up.
OPT_OUT = "FMNIST_MALLOC"
#: Environment variables by which a user configures the allocator: theirs wins.
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "LD_PRELOAD")


def _user_configured(environ: dict[str, str]) -> str | None:
    """The variable by which the user already chose an allocator setting, if any."""
    if environ.get(OPT_OUT) == "default":
        return OPT_OUT
    for name in USER_SETTINGS:
        if environ.get(name):
            return name
    if "glibc.malloc." in environ.get("GLIBC_TUNABLES", ""):
        return "GLIBC_TUNABLES"
    return None


def retain_freed_memory(retain_bytes: int = RETAIN_BYTES, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Raise glibc's mmap and trim thresholds to `retain_bytes` in this process (idempotent).

    Returns what was done, for a benchmark to record: {"allocator": "glibc", "retain_bytes": n}
    when applied; otherwise the reason it was not ("not glibc", or the user's own variable).
    """
    environ = dict(os.environ) if environ is None else environ
    user = _user_configured(environ)
    if user is not None:
        return {"allocator": "as configured by the user", "setting": user}
    if platform.libc_ver()[0] != "glibc":
        return {"allocator": "default", "reason": "not glibc"}
    libc = ctypes.CDLL(None)  # the C library this process already runs on
    done = libc.mallopt(M_MMAP_THRESHOLD, ctypes.c_int(retain_bytes)) and libc.mallopt(
        M_TRIM_THRESHOLD, ctypes.c_int(retain_bytes)
    )
    if not done:  # glibc refused the value (older releases cap the mmap threshold)
        return {"allocator": "glibc", "reason": "mallopt refused the threshold"}
    return {"allocator": "glibc", "retain_bytes": retain_bytes}
