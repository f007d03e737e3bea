"""What `fmnist benchmark` measures: its list flags parsed, the measurements planned from the
variant table and the engines' declarations, the engines interleaved, and the order each repeat
runs them in. No framework imported."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from benchmarks.variants import VARIANTS, names
from fmnist import comma_list, engines
from fmnist.errors import FmnistError


class BenchmarkError(FmnistError):
    """A bad `fmnist benchmark` flag or an impossible request (no GPU for --device cuda...)."""


@dataclass(frozen=True)
class Measurement:
    engine: str  # the engine (`fmnist.engines`) whose speed capability times it
    runner: str  # which of the engine's loops (`Engine.speed_loops`), the first its reference
    variant: str
    batch_size: int

    @property
    def key(self) -> str:
        return f"{self.engine}:{self.runner}/{self.variant}/b{self.batch_size}"


#: The project's list reader (`fmnist.comma_list`), refusing in the benchmark's own error.
parse_list = partial(comma_list.parse_list, error=BenchmarkError)


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


def plan(chosen: list[str], variants: list[str] | None, batch_sizes: list[int]) -> list[Measurement]:
    """Every measurement, the engines interleaved so each repeat alternates between them. Per
    engine: batch size by batch size, the variants it runs in table order, each by every loop it
    times (`Engine.speed_loops`, the reference first)."""
    per_engine: dict[str, list[Measurement]] = {}
    for name in chosen:
        spec = engines.engine(name)
        for bs in batch_sizes:
            for v in VARIANTS.values():
                if name in v.engines() and (v.default if variants is None else v.name in variants):
                    per_engine.setdefault(name, []).extend(Measurement(name, r, v.name, bs) for r in spec.speed_loops)
    if not any(per_engine.values()):
        offered = "; ".join(f"{e}: {', '.join(names(e))}" for e in chosen)
        raise BenchmarkError(f"--variants: none of the chosen variants is run by the chosen engines ({offered})")
    out: list[Measurement] = []
    lists = [per_engine[e] for e in chosen if e in per_engine]
    for i in range(max(len(x) for x in lists)):
        for lst in lists:
            if i < len(lst):
                out.append(lst[i])
    return out


def run_order(measurements: list[Measurement], repeat: int) -> list[Measurement]:
    """The order repeat `repeat` (from 0) runs `measurements` in: the plan's, except that the loops
    of one engine, variant and batch size (a reference loop and what wraps it: the plain loop and
    Lightning's Trainer) run back to back, a pair; every other repeat the whole order is reversed,
    so drift hits all alike and the pairs alternate which runs first."""
    pairs: dict[tuple[str, str, int], list[Measurement]] = {}
    for m in measurements:
        pairs.setdefault((m.engine, m.variant, m.batch_size), []).append(m)
    order = [m for pair in pairs.values() for m in pair]
    return order if repeat % 2 == 0 else order[::-1]


def schedule(measurements: list[Measurement], repeats: int, together: bool = False) -> list[tuple[int, Measurement]]:
    """(repeat, measurement) in the order they run: repeat by repeat, each in `run_order`'s order;
    or, `together`, each pair of loops (or lone measurement) through all its repeats before the
    next starts, the pair's order alternating as `run_order` alternates it, so a time budget that
    runs out leaves whole measurements with every repeat rather than first repeats only."""
    if not together:
        return [(r, m) for r in range(repeats) for m in run_order(measurements, r)]
    pairs: dict[tuple[str, str, int], list[Measurement]] = {}
    for m in run_order(measurements, 0):
        pairs.setdefault((m.engine, m.variant, m.batch_size), []).append(m)
    return [(r, m) for pair in pairs.values() for r in range(repeats) for m in (pair if r % 2 == 0 else pair[::-1])]
