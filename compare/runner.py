"""`fmnist compare`: train every engine asked for (keras and lightning unless told) for each
seed, each in its own process, then report.

Each training is a job on the executor the command chose (`executors`: serial, `--jobs N`, Ray).
One process per training keeps the frameworks apart (no TensorFlow/torch import-order trap,
no shared thread pools) and makes the comparison resumable. A run already in the --out folder
is used only when it was made with what this compare asks for (the resolved config after
overrides, engine, seed, precision, the data files' SHA-256, all recorded in its `run.json`):
a finished one is reused, an unfinished one continued (a job of kind "resume", `fmnist.train_job`). A run made
with other settings stops the compare before anything trains, unless `--rerun-stale` says to
retrain it in place. The engines' order rotates from seed to seed, so drift of the machine hits
them alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from fmnist import job, precision, rundir
from fmnist.engines import DEFAULT_PAIR
from fmnist.config import Config, config_to_dict, with_overrides
from fmnist.config_diff import config_differences
from compare.report import LOGS_DIR, RUNS_DIR
from executors import Job, JobResult
from executors.job import IN, OUT
from fmnist.errors import FmnistError
from fmnist.message import message_bytes


def run_dir_for(out_dir: Path, engine: str, seed: int) -> Path:
    return out_dir / RUNS_DIR / f"{engine}-seed{seed}"


def requested_record(engine: str, config: Config, data_sha256: Mapping[str, str]) -> dict[str, Any]:
    """What a run made for this request records in its `run.json` (`fmnist.rundir.settings_record`);
    its precision as asked ("auto" among them), which `differences` matches against what ran."""
    return rundir.settings_record(engine, config_to_dict(config), data_sha256)


def differences(recorded: Mapping[str, Any], requested: Mapping[str, Any]) -> list[str]:
    """The settings where a run's record differs from a request, as 'key: run X, asked Y'; a
    setting the run does not record is a difference too (a run from before records existed)."""
    named = rundir.named_engine(recorded)  # "engine" in runs made before the project said "engine"
    recorded = {**recorded, "engine": named} if named else recorded
    diffs = []
    for key in ("engine", "seed", "precision"):
        if key not in recorded:
            diffs.append(f"{key}: not recorded by the run")
        elif key == "precision":
            diffs += _precision_difference(recorded, requested[key])
        elif recorded[key] != requested[key]:
            diffs.append(f"{key}: run {recorded[key]!r}, asked {requested[key]!r}")
    if not isinstance(recorded.get("config"), dict):
        diffs.append("config: not recorded by the run")
    else:  # seed and precision are named above already
        found = config_differences(recorded["config"], requested["config"], skip=("seed", "train.precision"))
        diffs += [f"{key}: run {ran!r}, asked {asked!r}" for key, ran, asked in found]
    if not isinstance(recorded.get("data_sha256"), dict) or not recorded["data_sha256"]:
        diffs.append("data checksums: not recorded by the run")
    else:
        for stem in sorted(set(recorded["data_sha256"]) | set(requested["data_sha256"])):
            ran, asked = recorded["data_sha256"].get(stem), requested["data_sha256"].get(stem)
            if ran != asked:
                diffs.append(f"data {stem}: SHA-256 run {str(ran)[:12]}..., asked {str(asked)[:12]}...")
    return diffs


def _precision_difference(recorded: Mapping[str, Any], asked: str) -> list[str]:
    """The precision the run trained in against the request's (`fmnist.precision.matches`: `auto`
    as this machine's CPU resolves it, or a run that asked `auto` too)."""
    here = precision.cpu_device()
    if precision.matches(recorded, asked, here):
        return []
    on_here = f" ({precision.resolve(asked, here)} on this CPU)" if asked == precision.AUTO else ""
    return [f"precision: run {recorded['precision']!r}, asked {asked!r}{on_here}"]


@dataclass
class PlannedRun:
    engine: str
    seed: int
    run_dir: Path
    action: str  # "reuse", "resume", "train" (a new run), "retrain" (a stale run, --rerun-stale)
    why: list[str] = field(default_factory=list)


def plan(
    config: Config,
    seeds: Sequence[int],
    out_dir: Path,
    data_sha256: Mapping[str, str],
    rerun_stale: bool = False,
    engines: Sequence[str] = DEFAULT_PAIR,
) -> list[PlannedRun]:
    """What to do with each engine and seed, decided before anything trains. Refuses (one line)
    a folder that is not a run, and runs made with other settings unless `rerun_stale`."""
    planned, stale = [], []
    for i, seed in enumerate(seeds):
        shift = i % len(engines)
        order = [*engines[shift:], *engines[:shift]]
        for engine in order:
            run_dir = run_dir_for(out_dir, engine, seed)
            if not run_dir.exists() or (run_dir.is_dir() and not any(run_dir.iterdir())):
                planned.append(PlannedRun(engine, seed, run_dir, "train"))
                continue
            info = rundir.read_run_info(run_dir) if run_dir.is_dir() else None
            if info is None:
                raise FmnistError(
                    f"{run_dir} holds files but no run of fmnist (no valid {rundir.RUN_INFO_FILE});"
                    " move them away or choose another --out"
                )
            diffs = differences(info, requested_record(engine, with_overrides(config, {"seed": seed}), data_sha256))
            if diffs:
                stale.append(PlannedRun(engine, seed, run_dir, "retrain", diffs))
                planned.append(stale[-1])
            elif (run_dir / rundir.TEST_METRICS_FILE).exists():
                planned.append(PlannedRun(engine, seed, run_dir, "reuse"))
            else:
                planned.append(PlannedRun(engine, seed, run_dir, "resume"))
    if stale and not rerun_stale:
        first = stale[0]
        shown = "; ".join(first.why[:3]) + (f" (and {len(first.why) - 3} more)" if len(first.why) > 3 else "")
        others = f" ({len(stale)} runs differ)" if len(stale) > 1 else ""
        raise FmnistError(
            f"{first.run_dir} was made with other settings than this compare asks for: {shown}{others};"
            " pass another --out to keep it, or --rerun-stale to retrain the mismatching runs in place"
        )
    return planned


def finished_run_problems(run_dir: Path, requested: Mapping[str, Any]) -> list[str]:
    """Why a run directory an executor brought back is not the finished run that was asked for
    (empty: it is): checked at once, before it is accepted."""
    info = rundir.read_run_info(run_dir)
    if info is None:
        return [f"it holds no valid {rundir.RUN_INFO_FILE}"]
    diffs = differences(info, requested)
    if diffs:
        return [f"its {rundir.RUN_INFO_FILE} does not match the request ({diffs[0]})"]
    if not (run_dir / rundir.TEST_METRICS_FILE).is_file():
        return [f"it did not finish (no {rundir.TEST_METRICS_FILE})"]
    return []


def keep_log(result: JobResult) -> Path | None:
    """A job's console output into its run directory (`console.log`, appended to earlier
    attempts'), where the run directory holds a run; otherwise it stays in the logs folder.
    Returns where it is now."""
    log, run_dir = result.log, result.job.out_dir
    if log is None or not log.is_file():
        return None
    if rundir.read_run_info(run_dir) is None:
        return log
    with (run_dir / rundir.CONSOLE_LOG_FILE).open("ab") as f:
        f.write(log.read_bytes())
    log.unlink()
    return run_dir / rundir.CONSOLE_LOG_FILE


def train_all(
    seeds: Sequence[int],
    out_dir: Path,
    *,
    config: Config,
    data_sha256: Mapping[str, str],
    executor: Any,
    rerun_stale: bool = False,
    engines: Sequence[str] = DEFAULT_PAIR,
) -> list[Path]:
    """Train, continue or reuse one run per engine and seed on `executor` (`executors`);
    returns the run directories. Every run that can train does; the failed ones are named, with
    their logs, in one error at the end.

    `config`: the resolved config this compare asks for (overrides applied, seed aside); each job
    gets it with its seed in its request and trains it (`fmnist.job`, kind "train").
    """
    planned = plan(config, seeds, out_dir, data_sha256, rerun_stale, engines)
    to_train = sum(run.action != "reuse" for run in planned)
    if to_train:  # the count first, then what each run will do
        print(f"[compare] {to_train} run{'s' if to_train != 1 else ''} to train: {executor.describe()}", flush=True)
    jobs = []
    for run in planned:
        label = f"[compare] {run.engine} seed {run.seed}"
        run_config = with_overrides(config, {"seed": run.seed})
        requested = requested_record(run.engine, run_config, data_sha256)
        if run.action == "reuse":
            print(f"{label}: finished earlier with the same settings, reusing {run.run_dir}", flush=True)
            continue
        if run.action == "resume":
            print(f"{label}: unfinished run with the same settings, resuming {run.run_dir}", flush=True)
            request = job.request("resume")
        else:
            if run.action == "retrain":
                print(
                    f"{label}: {run.run_dir} was made with other settings ({run.why[0]}), retraining it"
                    " (--rerun-stale)",
                    flush=True,
                )
            else:
                print(f"{label}: training into {run.run_dir}", flush=True)
            # overwrite: removes that run's own files only (fmnist.rundir.run_artifacts)
            config_asked = config_to_dict(run_config)
            request = job.request("train", engine=run.engine, config=config_asked, overwrite=run.action == "retrain")
        jobs.append(
            Job(
                name=f"{run.engine} seed {run.seed}",
                argv=tuple(job.command(f"{IN}/{job.REQUEST_FILE}", OUT)),
                out_dir=run.run_dir,
                threads=executor.threads,
                inputs={job.REQUEST_FILE: message_bytes(request)},  # a node may have no file of this one
                resumes=run.action == "resume",
                check=partial(finished_run_problems, requested=requested),
                owns=rundir.is_run_artifact,
            )
        )
    if jobs:
        try:
            results = executor.run(jobs, out_dir / LOGS_DIR, "[compare]")
        except KeyboardInterrupt:
            print(
                "[compare] interrupted: each unfinished run keeps its last finished epoch; run the same"
                " command again to continue",
                flush=True,
            )
            raise
        failed = [(result, log) for result, log in ((r, keep_log(r)) for r in results) if not result.ok]
        if not failed and not any((out_dir / LOGS_DIR).iterdir()):
            (out_dir / LOGS_DIR).rmdir()  # every log is in its run directory now
        if failed:
            named = "; ".join(f"{r.job.name} ({r.error}; log: {log})" for r, log in failed)
            raise FmnistError(
                f"{len(failed)} of {len(results)} runs failed: {named}. Run the same command again to"
                " continue: finished runs are reused, unfinished ones resumed, the failed ones trained again"
            )
    return [run.run_dir for run in planned]
