"""CPU feature detection from /proc/cpuinfo, and the warning for emulated bfloat16."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmnist import cpu_features as cf

AVX2_ONLY = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\n"
WITH_AMX = (
    "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum\nflags\t\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
)


def _cpuinfo(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return path


def test_flags_model_and_native_bf16(tmp_path):
    amd = _cpuinfo(tmp_path, AVX2_ONLY)
    assert cf.cpu_model(amd) == "AMD EPYC" and cf.native_bf16(amd) is False
    assert cf.kernel_flags(amd) == ["avx2", "fma"]
    (tmp_path / "x").mkdir()
    xeon = _cpuinfo(tmp_path / "x", WITH_AMX)
    assert cf.native_bf16(xeon) is True
    assert cf.kernel_flags(xeon) == ["amx_bf16", "amx_tile", "avx2", "avx512_bf16", "avx512f"]


def test_unknown_cpu_is_neither_yes_nor_no(tmp_path):
    missing = tmp_path / "no-cpuinfo"
    assert cf.cpu_flags(missing) is None and cf.native_bf16(missing) is None and cf.kernel_flags(missing) == []
    assert cf.cpu_model(missing)  # falls back to the platform's name
    assert cf.bf16_cpu_warning("bf16-mixed", missing) is None  # no claim without facts


def test_warning_only_for_bf16_on_a_cpu_without_it(tmp_path):
    amd = _cpuinfo(tmp_path, AVX2_ONLY)
    message = cf.bf16_cpu_warning("bf16-mixed", amd)
    assert message and "AMD EPYC" in message and "--precision float32" in message
    assert cf.bf16_cpu_warning("float32", amd) is None
    (tmp_path / "x").mkdir()
    assert cf.bf16_cpu_warning("bf16-mixed", _cpuinfo(tmp_path / "x", WITH_AMX)) is None


@pytest.mark.parametrize("on_cpu", [True, False])
def test_warning_goes_to_stderr_when_training_on_the_cpu(tmp_path, capsys, on_cpu):
    cf.warn_if_emulated_bf16("bf16-mixed", on_cpu=on_cpu, path=_cpuinfo(tmp_path, AVX2_ONLY))
    captured = capsys.readouterr()
    assert captured.out == "" and ("without bfloat16 instructions" in captured.err) == on_cpu


def test_bf16_kernels_needs_all_four_avx512_flags_both_frameworks_check(tmp_path):
    assert cf.bf16_kernels(_cpuinfo(tmp_path, AVX2_ONLY)) == "no_avx512"
    partial = "model name\t: Intel(R) Xeon(R)\nflags\t\t: avx2 avx512f avx512_bf16\n"  # no BW/VL/DQ: torch falls back
    assert cf.bf16_kernels(_cpuinfo(tmp_path, partial)) == "no_avx512"
    full = "model name\t: Intel(R) Xeon(R)\nflags\t\t: avx2 avx512f avx512bw avx512vl avx512dq amx_bf16\n"
    assert cf.bf16_kernels(_cpuinfo(tmp_path, full)) == "avx512"
    assert cf.bf16_kernels(tmp_path / "no-cpuinfo") is None
    assert {cf.bf16_kernels(_cpuinfo(tmp_path, t)) for t in (AVX2_ONLY, full)} == set(cf.BF16_KERNEL_KINDS)
