"""The runs a compare report reads: loading a finished run directory, and refusing sets of runs
whose comparison would mean nothing (one engine only, mixed configs, different test sets)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fmnist import engines
from fmnist.config import Config, config_to_dict
from fmnist.config_diff import config_differences
from fmnist.errors import FmnistError, RunDirError
from fmnist.runs import open_run
from fmnist.rundir import (
    PREDICTIONS_FILE,
    read_predictions,
)


#: How the report names and colours each engine: what the engine declares.
LABELS, COLOURS = engines.labels(), engines.colours()


@dataclass(frozen=True)
class Run:
    """One finished run directory, with everything the report reads from it."""

    path: Path
    engine: str
    config: Config
    test: dict[str, Any]
    history: list[dict[str, float]]
    logits: np.ndarray
    labels: np.ndarray

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(axis=1)

    @property
    def correct(self) -> np.ndarray:
        return self.predictions == self.labels


def load_run(path: Path, test_labels: np.ndarray | None = None) -> Run:
    """A finished run as the one reader of run directories reads it (`fmnist.runs.open_run`), with
    its test predictions; a missing or foreign file is a one-line FmnistError, not a traceback.
    test_labels: the official test labels, for predictions that keep only their digest
    (`fmnist.rundir.read_predictions`)."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"{path} is not a run directory")
    run = open_run(path)
    if not (path / PREDICTIONS_FILE).is_file():
        raise RunDirError(f"{path / PREDICTIONS_FILE} not found: is {path} a finished run directory?")
    logits, labels = read_predictions(path / PREDICTIONS_FILE, test_labels)
    return Run(path, run.engine, run.config, run.test, run.history, logits, labels)


def _config_difference(a: Config, b: Config) -> str | None:
    """The first config key (seed aside) where two runs differ, as 'key (x vs y)'."""
    found = config_differences(config_to_dict(a), config_to_dict(b), skip=("seed",))
    return next((f"{key} ({x!r} vs {y!r})" for key, x, y in found), None)


def check_comparable(runs: Sequence[Run]) -> None:
    """Refuse run sets whose comparison would mean nothing, naming the runs and the reason."""
    first = runs[0]
    for run in runs[1:]:
        diff = _config_difference(first.config, run.config)
        if diff:
            raise FmnistError(
                f"runs mix configs: {first.path} and {run.path} differ at {diff}; compare runs of one config only"
            )
        if len(run.labels) != len(first.labels):
            raise FmnistError(
                f"runs were tested on different test-set sizes: {first.path} has"
                f" {len(first.labels)} images, {run.path} {len(run.labels)}"
            )
        if not np.array_equal(run.labels, first.labels):
            raise FmnistError(f"runs were tested on different images: {first.path} and {run.path} have other labels")
    present = {r.engine for r in runs}
    if len(present) < 2:
        raise FmnistError(
            f"a comparison needs runs of two engines or more (say keras and lightning); got only {sorted(present)}"
        )
    seen: dict[tuple[str, int], Path] = {}
    for run in runs:
        key = (run.engine, run.seed)
        if key in seen:
            raise FmnistError(f"two {run.engine} runs with seed {run.seed}: {seen[key]} and {run.path}; keep one")
        seen[key] = run.path


def group_runs(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs per engine present, in the registry's order (`fmnist.engines`; engines not installed
    here after them, by name), sorted by seed."""
    present = {r.engine for r in runs}
    order = [e for e in engines.names() if e in present] + sorted(present - set(engines.names()))
    return {e: sorted((r for r in runs if r.engine == e), key=lambda r: r.seed) for e in order}


def engine_pairs(groups: dict[str, list[Run]]) -> list[tuple[str, str]]:
    """Every pair of engines present; the first is the report's lead pair: the first engine
    against the last (keras against lightning when both ran)."""
    names = list(groups)
    lead = (names[0], names[-1])
    return [lead, *(p for p in itertools.combinations(names, 2) if p != lead)]


def paired_runs(groups: dict[str, list[Run]], a: str, b: str) -> tuple[Run, Run] | None:
    """The runs of engines a and b on the first seed both ran (None: no such seed)."""
    common = sorted({r.seed for r in groups[a]} & {r.seed for r in groups[b]})
    if not common:
        return None
    first, second = (next(r for r in groups[e] if r.seed == common[0]) for e in (a, b))
    return first, second
