"""The one reader of comma-separated options (`--engines keras,lightning`, `--variants`,
`--batch-size 128,256`), so every command refuses a bad list in the same words."""

from __future__ import annotations

from collections.abc import Sequence

from fmnist.errors import FmnistError


def parse_list(
    text: str | None,
    allowed: Sequence[str] | None,
    what: str,
    *,
    error: type[FmnistError] = FmnistError,
    repeats: bool = True,
) -> list[str]:
    """'a, b,a' -> ['a', 'b'] (order kept, a repeat dropped, or refused when `repeats` is False);
    None -> []. A name outside `allowed` (where given) is refused, naming the choices."""
    if text is None:
        return []
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise error(f"{what}: expected a comma-separated list, got {text!r}")
    if allowed is not None:
        for item in items:
            if item not in allowed:
                raise error(f"{what}: unknown {item!r}; choose from {', '.join(allowed)}")
    if not repeats and len(set(items)) != len(items):
        twice = next(item for item in items if items.count(item) > 1)
        raise error(f"{what} names {twice!r} twice: {text}")
    return list(dict.fromkeys(items))
