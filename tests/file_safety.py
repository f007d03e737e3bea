"""What the file-safety tests share (test_file_safety.py, test_compare_reuse.py): a folder's
listing to check nothing changed, a tiny config, fake data checksums."""

from __future__ import annotations

from pathlib import Path

from fmnist.config import load_config, with_overrides

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "configs" / "baseline.yaml"
TINY = ["--limit-train", "300", "--limit-test", "100", "--epochs", "1"]
SHA = {"train-images-idx3-ubyte": "a" * 64, "t10k-images-idx3-ubyte": "b" * 64}


def _listing(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its bytes (None for folders): to check nothing changed."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def _tiny_config(**overrides):
    return with_overrides(
        load_config(BASELINE), {"data.limit_train": 300, "data.limit_test": 100, "train.epochs": 1, **overrides}
    )
