"""The per-engine summary of time-to-accuracy runs (no framework imported): how many runs, the
share that reached the target, and the medians (with min and max) of the seconds and of the
final test accuracy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks.stats import summarize as median_min_max


def summarize(rows: Sequence[dict[str, Any]], engines: Sequence[str]) -> list[dict[str, Any]]:
    """One entry per engine. A failed run counts among the runs and as not reached (the share is
    of all runs); the medians are over the runs that finished (None when none did)."""
    out = []
    for engine in engines:
        runs = [r for r in rows if r["engine"] == engine]
        ok = [r for r in runs if r.get("status") == "ok"]
        reached = sum(1 for r in ok if r["reached"])
        out.append(
            {
                "engine": engine,
                "runs": len(runs),
                "failed": len(runs) - len(ok),
                "reached": reached,
                "reached_share": reached / len(runs) if runs else None,
                "seconds": median_min_max([r["seconds"] for r in ok]) if ok else None,
                "test_accuracy": median_min_max([r["test_accuracy"] for r in ok]) if ok else None,
            }
        )
    return out
