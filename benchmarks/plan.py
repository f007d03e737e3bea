"""What `fmnist benchmark` measures: its list flags parsed, the measurements planned from the
variant table, the backends interleaved, and the order each repeat runs them in. No framework
imported."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.variants import VARIANTS, names
from fmnist.errors import FmnistError


class BenchmarkError(FmnistError):
    """A bad `fmnist benchmark` flag or an impossible request (no GPU for --device cuda...)."""


@dataclass(frozen=True)
class Measurement:
    runner: str  # "keras", "lightning" or "plain torch"
    variant: str
    batch_size: int

    @property
    def key(self) -> str:
        return f"{self.runner}/{self.variant}/b{self.batch_size}"


def parse_list(text: str | None, allowed: tuple[str, ...] | None, what: str) -> list[str]:
    """'a,b' -> ['a', 'b'] (order kept, duplicates dropped); a name not in `allowed` is refused."""
    if text is None:
        return []
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise BenchmarkError(f"{what}: expected a comma-separated list, got {text!r}")
    if allowed is not None:
        for item in items:
            if item not in allowed:
                raise BenchmarkError(f"{what}: unknown {item!r}; choose from {', '.join(allowed)}")
    return list(dict.fromkeys(items))


def parse_batch_sizes(text: str) -> list[int]:
    sizes = []
    for item in parse_list(text, None, "--batch-size"):
        try:
            value = int(item)
        except ValueError:
            raise BenchmarkError(f"--batch-size: expected whole numbers, got {item!r}") from None
        if value < 1:
            raise BenchmarkError(f"--batch-size: must be at least 1, got {value}")
        sizes.append(value)
    return sizes


def parse_variants(text: str | None) -> list[str] | None:
    """`--variants`: names from the variant table; None (not given) means the default ones."""
    return None if text is None else parse_list(text, names(), "--variants")


def plan(backends: list[str], variants: list[str] | None, batch_sizes: list[int]) -> list[Measurement]:
    """Every measurement, backends interleaved so each repeat alternates between them. Per
    backend: batch size by batch size, the variants in table order, each by its runners."""
    per_backend: dict[str, list[Measurement]] = {}
    for bs in batch_sizes:
        for v in VARIANTS.values():
            chosen = v.default if variants is None else v.name in variants
            if v.backend in backends and chosen:
                per_backend.setdefault(v.backend, []).extend(Measurement(r, v.name, bs) for r in v.runners)
    if not any(per_backend.values()):
        raise BenchmarkError(
            "--variants: none of the chosen variants belongs to the chosen backends"
            f" (torch: {', '.join(names('lightning'))}; keras: {', '.join(names('keras'))})"
        )
    out: list[Measurement] = []
    lists = [per_backend[b] for b in backends if b in per_backend]
    for i in range(max(len(x) for x in lists)):
        for lst in lists:
            if i < len(lst):
                out.append(lst[i])
    return out


def run_order(measurements: list[Measurement], repeat: int) -> list[Measurement]:
    """The order repeat `repeat` (from 0) runs `measurements` in: the plan's, except that the
    measurements of one variant and batch size (the plain loop and Lightning) run back to back, a
    pair; every other repeat the whole order is reversed, so drift hits all alike and the pairs
    alternate which runs first (plain then Lightning, then Lightning then plain)."""
    pairs: dict[tuple[str, int], list[Measurement]] = {}
    for m in measurements:
        pairs.setdefault((m.variant, m.batch_size), []).append(m)
    order = [m for pair in pairs.values() for m in pair]
    return order if repeat % 2 == 0 else order[::-1]
