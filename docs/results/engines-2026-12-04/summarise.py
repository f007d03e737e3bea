"""The parity table of docs/parity.md ("Four engines") from the parity.json files here:
`python docs/results/engines-2026-12-04/summarise.py` (they were written by
`fmnist parity --backends ENGINE,lightning --config configs/CONFIG.yaml --out parity/ENGINE/CONFIG`)."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENGINES = ("keras", "keras-jax", "keras-torch")


def row(path: Path) -> str:
    found = json.loads(path.read_text())
    checks = found["checks"]
    f64 = [c["value"] for c in checks if "float64" in c["name"]]
    f32 = max(checks, key=lambda c: c["value"] / c["tolerance"] if "float32" in c["name"] else 0)
    passed = sum(c["passed"] for c in checks)
    return f"{passed}/{len(checks)}, float64 ≤ {max(f64):.1e}, float32 {f32['value'] / f32['tolerance']:.2f}"


def main() -> None:
    configs = sorted({p.parent.name for p in HERE.glob("parity/*/*/parity.json")})
    print("| config | " + " | ".join(f"{e} vs lightning" for e in ENGINES) + " |")
    print("|---|" + "---|" * len(ENGINES))
    for config in configs:
        cells = [
            row(p) if (p := HERE / "parity" / e / config / "parity.json").exists() else "not run" for e in ENGINES
        ]
        print(f"| {config} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
