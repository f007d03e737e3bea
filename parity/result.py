"""What a parity check reports: each check's value against its tolerance, the per-layer structure
table and the lockstep numbers; as JSON (parity.json) and as the aligned table the command prints.
Used by the float32 checks (parity.run) and the bf16 ones (parity.bf16)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Check:
    name: str
    passed: bool
    value: float
    tolerance: float
    detail: str = ""


@dataclass
class ParityResult:
    checks: list[Check] = field(default_factory=list)
    layers: list[dict[str, Any]] = field(default_factory=list)
    lockstep: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what a reader needs beside the checks (printed after them)
    dtypes: dict[str, Any] = field(default_factory=dict)  # bf16: where each engine rounds (parity.bf16_dtypes)
    #: Off the CPU, per engine: the device it computed on and what was set there (`Parity.placement`).
    placement: dict[str, Any] = field(default_factory=dict)
    #: The same lockstep run twice per engine, and how far the two runs differ (parity.repeat).
    run_to_run: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def add(self, name: str, value: float, tolerance: float, detail: str = "", passed: bool | None = None) -> None:
        ok = bool(value <= tolerance) if passed is None else passed
        self.checks.append(Check(name, ok, float(value), float(tolerance), detail))

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "checks": [dataclasses.asdict(c) for c in self.checks],
            "layers": self.layers,
            "lockstep": _plain(self.lockstep),
            "notes": self.notes,
            **({"dtypes": self.dtypes} if self.dtypes else {}),
            **({"placement": self.placement} if self.placement else {}),
            **({"run_to_run": _plain(self.run_to_run)} if self.run_to_run else {}),
        }


def _plain(value: Any) -> Any:
    """numpy values and arrays to JSON-able numbers and lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def format_table(result: ParityResult) -> str:
    """The checks as an aligned text table: status, value against tolerance, what was measured."""
    width = max(len(c.name) for c in result.checks)
    lines = [f"{'check':<{width}}  result  {'value':>10}  {'tolerance':>9}  detail"]
    for c in result.checks:
        lines.append(
            f"{c.name:<{width}}  {'pass' if c.passed else 'FAIL':<6}  {c.value:>10.3g}  {c.tolerance:>9.3g}  {c.detail}"
        )
    return "\n".join(lines)
