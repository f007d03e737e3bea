"""Which code a host would run: the project's version, a digest of its Python sources (so another
commit, or an uncommitted edit, is seen) and, for the message, its git commit where it is a
checkout. A Ray node whose project differs from the driver's would train something else under the
same name, so it is refused by name. The commit alone decides nothing: a commit that changed only
documentation trains the same, and a node installed from a wheel has none."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import fmnist

ROOT = Path(fmnist.__file__).resolve().parents[1]
#: The packages whose code a training runs or that start it.
PACKAGES = ("fmnist", "fmnist_cli", "keras_model", "lightning_model", "compare", "benchmarks", "executors")


def source_digest(root: Path = ROOT) -> str:
    digest = hashlib.sha256()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def git_commit(root: Path = ROOT) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:  # not a checkout (a wheel install), or no git
        return None
    return done.stdout.strip() or None


def project_identity() -> dict[str, Any]:
    return {"version": fmnist.__version__, "commit": git_commit(), "sources": source_digest()}


def identity_differences(driver: dict[str, Any], node: dict[str, Any]) -> list[str]:
    """What differs, as 'version 0.2.0 there, 0.1.0 here'; empty when the same code. Where the
    sources differ, the commits are named too."""
    out = []
    if driver.get("version") != node.get("version"):
        out.append(f"version {node.get('version')} there, {driver.get('version')} here")
    if driver.get("sources") != node.get("sources"):
        out.append(
            f"Python sources (SHA-256) {str(node.get('sources'))[:12]} there, {str(driver.get('sources'))[:12]} here"
        )
        if driver.get("commit") != node.get("commit"):
            out.append(f"commit {str(node.get('commit'))[:12]} there, {str(driver.get('commit'))[:12]} here")
    return out
