"""fmnist.malloc: torch's training steps stop faulting pages in, and a user's own setting wins."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import textwrap

import pytest

from fmnist.malloc import RETAIN_BYTES, retain_freed_memory

# A few training steps of a convolution at a batch whose buffers glibc would mmap afresh; the
# process reports the minor page faults of its median step (fresh process: the allocator starts untouched).
STEPS = textwrap.dedent(
    """
    import json, resource, sys
    import torch
    from fmnist.malloc import retain_freed_memory
    applied = retain_freed_memory() if sys.argv[1] == "retain" else None
    torch.manual_seed(0)
    torch.set_num_threads(1)
    conv = torch.nn.Conv2d(1, 32, 3)
    x = torch.randn(256, 1, 28, 28)
    def step():
        conv.zero_grad()
        conv(x).relu().square().mean().backward()
    for _ in range(6):
        step()
    faults = []
    for _ in range(8):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        step()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    faults = sorted(faults)[len(faults) // 2]  # the median step: a one-off growth of the heap aside
    print(json.dumps({"faults_per_step": faults, "applied": applied}))
    """
)


def _faults(mode: str) -> dict:
    env = {"PATH": "/usr/bin:/bin"}  # none of the user's allocator variables
    out = subprocess.run(
        [sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True, env=env, timeout=120
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")
def test_retained_memory_stops_page_faults_per_step():
    # Each step allocates tens of MB of activations and gradients: glibc maps and zero-fills them
    # anew every step (over 10,000 faults); kept in the heap, they are reused once warm (none).
    default, retained = _faults("default"), _faults("retain")
    assert retained["applied"] == {"allocator": "glibc", "retain_bytes": RETAIN_BYTES}
    assert default["faults_per_step"] > 1000, default
    assert retained["faults_per_step"] < 100, (default, retained)


@pytest.mark.parametrize(
    "environ, setting",
    [
        ({"LD_PRELOAD": "/usr/lib/libtcmalloc_minimal.so.4"}, "LD_PRELOAD"),
        ({"MALLOC_MMAP_THRESHOLD_": "65536"}, "MALLOC_MMAP_THRESHOLD_"),
        ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}, "GLIBC_TUNABLES"),
        ({"FMNIST_MALLOC": "default"}, "FMNIST_MALLOC"),
    ],
)
def test_a_users_own_allocator_setting_is_kept(environ, setting):
    assert retain_freed_memory(environ=environ) == {"allocator": "as configured by the user", "setting": setting}


def test_unrelated_tunables_do_not_count_as_an_allocator_setting():
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("the setting is glibc's")
    assert retain_freed_memory(environ={"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2"})["allocator"] == "glibc"


def test_the_benchmark_report_says_how_the_torch_workers_allocated():
    from benchmarks.report import allocator_line

    kept = {"allocator": "glibc", "retain_bytes": RETAIN_BYTES}
    user = {"allocator": "as configured by the user", "setting": "FMNIST_MALLOC"}
    assert allocator_line([{"malloc": kept}, {"malloc": kept}, {}]) == [
        "",
        "Allocator of the torch workers (fmnist.malloc): glibc keeping freed blocks up to 1,024 MiB in the heap.",
    ]
    assert "as configured by the user (FMNIST_MALLOC)" in allocator_line([{"malloc": user}])[1]
    assert allocator_line([{"runner": "keras"}]) == []


def test_the_page_fault_probe_measures_the_project_s_step(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.page_faults", "--batch-size", "16", "--steps", "3", "--warmup", "1"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "FMNIST_MALLOC": "default"},
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["allocator"] == {"allocator": "as configured by the user", "setting": "FMNIST_MALLOC"}
    assert result["batch_size"] == 16 and result["images_per_s"] > 0
    assert result["minor_faults_per_image"] >= 0 and result["system_us_per_image"] >= 0
