"""The parity table of docs/parity.md ("The fifth engine") from the parity.json files here:
`python docs/results/engines-2026-12-07/summarise.py` (they were written by
`fmnist parity --engines A,B --config CONFIG --out parity/A-B/CONFIG`)."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAIRS = ("pytorch-lightning", "keras-pytorch")


def row(path: Path) -> str:
    found = json.loads(path.read_text())
    checks = found["checks"]
    f64 = [c["value"] for c in checks if "float64" in c["name"]]
    f32 = max(c["value"] / c["tolerance"] for c in checks if "float32" in c["name"] and c["tolerance"])
    passed = sum(c["passed"] for c in checks)
    return f"{passed}/{len(checks)}, float64 ≤ {max(f64):.1e}, float32 {f32:.2f}"


def main() -> None:
    configs = sorted({p.parent.name for p in HERE.glob("parity/*/*/parity.json")})
    print("| config | " + " | ".join(pair.replace("-", " vs ") for pair in PAIRS) + " |")
    print("|---|" + "---|" * len(PAIRS))
    for config in configs:
        cells = [row(p) if (p := HERE / "parity" / pair / config / "parity.json").exists() else "not run" for pair in PAIRS]
        print(f"| {config} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
