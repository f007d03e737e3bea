"""Where two configs differ, key by key: the one comparison behind a compare's stale-run check
(a run's recorded config against the request) and the report's mixed-config refusal."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any


def flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys and leaf values of a nested mapping ('train.optimizer.lr', 'augment.ops[0]'),
    so a difference can be named exactly."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(flat(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list):
        out = {}
        for i, inner in enumerate(value):
            out.update(flat(inner, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def config_differences(
    a: Mapping[str, Any], b: Mapping[str, Any], skip: Collection[str] = ()
) -> list[tuple[str, Any, Any]]:
    """(key, value in a, value in b) for each dotted key where the two differ, sorted; a key one
    side lacks reads None there. `skip`: keys a caller judges on its own (the seed, say)."""
    fa, fb = flat(a), flat(b)
    return [(k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if k not in skip and fa.get(k) != fb.get(k)]
