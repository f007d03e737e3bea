"""The executors of `fmnist compare` and the time-to-accuracy runs (serial, --jobs N; Ray in
test_ray_executor.py): jobs in fresh processes with their threads and cores, failures named,
output landed atomically, the data verified on a node, the project checked by identity."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from executors import ExecutorChoice, Job
from executors import landing
from fmnist import launch
from executors.identity import identity_differences, source_digest
from executors.local import LocalExecutor, core_sets
from executors.node_data import ensure_data, pack_data
from executors.progress import Progress
from fmnist import rundir
from fmnist.errors import DataError, FmnistError
from fmnist.placement import THREAD_VARIABLES, placement, resumed_threads, thread_env

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "configs" / "baseline.yaml"

#: A job that records what its process was given: environment, cores, arguments.
REPORT = """
import json, os, sys
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
json.dump({"env": dict(os.environ), "cpus": sorted(os.sched_getaffinity(0)), "argv": sys.argv[1:]},
          open(os.path.join(out, "seen.json"), "w"))
print("hello from", out)
"""


def _job(name: str, out: Path, code: str = REPORT, threads: int = 1, **kw) -> Job:
    return Job(name=name, argv=("-c", code, "{out}", "{in}"), out_dir=out, threads=threads, **kw)


# ------------------------------------------------------------------------------ choosing


def test_core_sets_are_disjoint_while_there_are_cores_then_wrap():
    assert core_sets(2, 1, [0, 1]) == [[0], [1]]
    assert core_sets(2, 2, [0, 1, 2, 3]) == [[0, 1], [2, 3]]
    assert core_sets(3, 1, [4, 5]) == [[4], [5], [4]]


def test_executor_choice_from_flags():
    assert ExecutorChoice.from_args(None, None, None, None).executor == "serial"
    assert ExecutorChoice.from_args(None, 2, None, None) == ExecutorChoice("jobs", 2, None, None)
    assert ExecutorChoice.from_args("jobs", None, None, None).jobs == 2
    assert ExecutorChoice.from_args(None, None, None, "10.0.0.1:6379").executor == "ray"
    assert ExecutorChoice.from_args("ray", None, None, None).threads_per_run() == 1
    assert ExecutorChoice.from_args("jobs", 4, 3, None).threads_per_run() == 3
    for bad in (("serial", 3, None, None), ("ray", 2, None, None), ("jobs", None, None, "h:1")):
        with pytest.raises(FmnistError):
            ExecutorChoice.from_args(*bad)


def test_thread_env_names_every_pool_and_placement_reads_it(monkeypatch):
    env = thread_env(3)
    assert {k: env[k] for k in THREAD_VARIABLES} == dict.fromkeys(THREAD_VARIABLES, "3")
    monkeypatch.setenv("FMNIST_THREADS", "3")
    monkeypatch.setenv("FMNIST_EXECUTOR", "jobs")
    got = placement()
    assert got["threads"] == 3 and got["threads_asked"] == 3 and got["executor"] == "jobs" and got["cpus"]
    assert resumed_threads({"placement": got}) == 3  # what `fmnist train --resume` asks for again
    monkeypatch.delenv("FMNIST_THREADS")
    unasked = placement()
    assert unasked["threads_asked"] is None and unasked["threads"] == len(unasked["cpus"])
    for old in ({"placement": unasked}, {"placement": {"threads": 2}}, {}, {"placement": {"threads_asked": True}}):
        assert resumed_threads(old) is None  # the frameworks' own, as the run began (or unknown)
    with pytest.raises(ValueError):
        thread_env(0)


# ------------------------------------------------------------------------------ running jobs


def test_jobs_run_pinned_with_their_threads_and_inputs(tmp_path):
    cpus = sorted(os.sched_getaffinity(0))
    executor = LocalExecutor("jobs", 2, 1, tmp_path / "data", pin=True, log=lambda line: None)
    code = REPORT + "\nprint(open(sys.argv[2] + '/note.txt').read())"
    jobs = [_job(f"job {i}", tmp_path / f"out{i}", code, inputs={"note.txt": b"given"}) for i in range(3)]
    results = executor.run(jobs, tmp_path / "logs", "[test]")
    assert [r.job.name for r in results] == ["job 0", "job 1", "job 2"] and all(r.ok for r in results)
    seen = [json.loads((tmp_path / f"out{i}" / "seen.json").read_text()) for i in range(3)]
    for s in seen:
        assert {k: s["env"][k] for k in THREAD_VARIABLES} == dict.fromkeys(THREAD_VARIABLES, "1")
        assert s["env"]["FMNIST_EXECUTOR"] == "jobs" and s["env"]["FMNIST_DATA_DIR"] == str(tmp_path / "data")
        assert len(s["cpus"]) == 1
    assert [s["cpus"] for s in seen[:2]] == core_sets(2, 1, cpus)
    assert "given" in results[2].log.read_text() and "hello from" in results[0].log.read_text()


def test_a_failed_job_is_named_and_the_others_still_run(tmp_path):
    lines = []
    executor = LocalExecutor("jobs", 2, 1, None, pin=True, log=lines.append)
    crash = "import sys; print('about to fail'); print('the real reason', file=sys.stderr); sys.exit(3)"
    jobs = [_job("bad", tmp_path / "bad", crash), _job("good 1", tmp_path / "g1"), _job("good 2", tmp_path / "g2")]
    results = executor.run(jobs, tmp_path / "logs", "[test]")
    assert [r.ok for r in results] == [False, True, True]
    assert results[0].error.startswith("exit 3: ") and "the real reason" in results[0].error
    assert results[0].log.is_file() and "about to fail" in results[0].log.read_text()
    assert any("bad: FAILED" in line for line in lines)
    assert lines[-1].endswith("[3 done, 1 failed, 0 running, 0 waiting]")


def test_a_check_refusing_the_output_fails_the_job(tmp_path):
    executor = LocalExecutor("serial", 1, 1, None, pin=False, log=lambda line: None)
    job = _job("checked", tmp_path / "out", check=lambda out: [f"{out.name} is not what was asked for"])
    (result,) = executor.run([job], tmp_path / "logs", "[test]")
    assert not result.ok and result.error == "out is not what was asked for"


def test_stop_interrupts_a_job_like_ctrl_c_and_kills_one_that_ignores_it(tmp_path):
    polite = tmp_path / "polite"
    code = (
        "import time, sys\ntry:\n    print('ready', flush=True)\n    time.sleep(60)\nexcept KeyboardInterrupt:\n"
        f"    open({str(polite)!r}, 'w').write('saved'); sys.exit(130)"
    )
    stubborn = (
        "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(60)"
    )
    logs = [tmp_path / f"{i}.log" for i in range(2)]
    # Started as from a driver in the background (nohup, &), where SIGINT is ignored: the jobs must
    # still take stop()'s Ctrl-C (they would inherit the ignore, and the polite one could not save).
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        procs = [launch.start(["-c", c], dict(os.environ), log) for c, log in zip((code, stubborn), logs)]
    finally:
        signal.signal(signal.SIGINT, previous)
    deadline = time.monotonic() + 30  # both started and waiting (slow to start on a loaded machine)
    while not all("ready" in log.read_text() for log in logs) and time.monotonic() < deadline:
        time.sleep(0.1)
    began = time.monotonic()
    launch.stop(procs, grace=3)
    assert polite.read_text() == "saved" and procs[0].returncode == 130
    assert procs[1].returncode == -signal.SIGKILL and time.monotonic() - began < 10


def test_a_job_dies_with_the_process_that_started_it(tmp_path):
    """A Ray worker cancelled or lost must not leave its training running."""
    pid_file = tmp_path / "pid"
    parent = (
        "import sys, time\nfrom pathlib import Path\nfrom fmnist import launch\n"
        f"p = launch.start(['-c', 'import time; time.sleep(60)'], {{}}, Path({str(tmp_path / 'log')!r}))\n"
        f"Path({str(pid_file)!r}).write_text(str(p.pid))\ntime.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", parent], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 30
    while not pid_file.exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    child = int(pid_file.read_text())
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while _alive(child):
        assert time.monotonic() < deadline, "the job outlived the process that started it"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_progress_counts_done_running_waiting():
    lines = []
    progress = Progress(3, "[p]", lines.append)
    job = _job("a", Path("x"))
    progress.started(job, "node1")
    assert lines[-1] == "[p] a: started on node1 (1 thread) [0 done, 1 running, 2 waiting]"


# ------------------------------------------------------------------------------ landing


def test_landing_is_all_or_nothing_and_keeps_the_users_files(tmp_path):
    made = tmp_path / "made"
    made.mkdir()
    (made / "run.json").write_text("new")
    (made / "sub").mkdir()
    (made / "sub" / "x").write_text("deep")
    archive = landing.pack(made)
    dest = tmp_path / "runs" / "keras-seed0"
    assert landing.land(archive, dest) == []
    assert (dest / "sub" / "x").read_text() == "deep"

    (dest / "run.json").write_text("old")
    (dest / "notes.md").write_text("mine")
    problems = landing.land(archive, dest, check=lambda d: ["wrong run"])
    assert problems == ["wrong run"] and (dest / "run.json").read_text() == "old"
    assert landing.land(archive, dest, owns=rundir.is_run_artifact) == []
    assert (dest / "run.json").read_text() == "new" and (dest / "notes.md").read_text() == "mine"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["keras-seed0"]  # no temp folder left


# ------------------------------------------------------------------------------ data on a node


def _fake_data(folder: Path) -> dict[str, str]:
    folder.mkdir()
    sha = {}
    for i, stem in enumerate(("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte")):
        raw = bytes([i]) * 100
        (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
        sha[stem] = hashlib.sha256(raw).hexdigest()
    raw = b"labels"
    (folder / "t10k-labels-idx1-ubyte").write_bytes(raw)  # raw files travel too
    sha["t10k-labels-idx1-ubyte"] = hashlib.sha256(raw).hexdigest()
    return sha


def test_the_data_arrives_once_per_node_and_is_verified(tmp_path):
    sha = _fake_data(tmp_path / "driver")
    packed = pack_data(tmp_path / "driver", sha)
    node = ensure_data(packed, tmp_path / "node-cache")
    assert sorted(p.name for p in node.iterdir()) == sorted(p.name for p in (tmp_path / "driver").iterdir())
    assert ensure_data(packed, tmp_path / "node-cache") == node  # reused

    (node / "t10k-labels-idx1-ubyte").write_bytes(b"tampered")
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: SHA-256"):
        ensure_data(packed, tmp_path / "node-cache")
    wrong = {**packed, "sha256": {**sha, "train-images-idx3-ubyte": "0" * 64}}
    with pytest.raises(DataError, match="sent by the driver"):
        ensure_data(wrong, tmp_path / "other-cache")
    assert [p.name for p in (tmp_path / "other-cache").iterdir()] == []  # nothing half-written kept


# ------------------------------------------------------------------------------ identity


def test_identity_differences_name_what_differs(tmp_path):
    here = {"version": "0.1.0", "commit": "a" * 40, "sources": "b" * 64}
    assert identity_differences(here, dict(here)) == []
    there = {**here, "version": "0.2.0", "sources": "c" * 64}
    assert identity_differences(here, there) == [
        "version 0.2.0 there, 0.1.0 here",
        "Python sources (SHA-256) cccccccccccc there, bbbbbbbbbbbb here",
    ]


def test_the_source_digest_sees_an_uncommitted_edit(tmp_path):
    for package in ("fmnist", "executors"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("x = 1\n")
    before = source_digest(tmp_path)
    (tmp_path / "fmnist" / "__init__.py").write_text("x = 2\n")
    assert source_digest(tmp_path) != before


# ------------------------------------------------------------------------------ fmnist compare


def _compare(fmnist_cli, data_dir: Path, out: Path, *extra: str, config: Path = BASELINE):
    """One seed, both engines: two runs, at once with --jobs 2."""
    return fmnist_cli(
        "compare",
        *("--config", str(config), "--seeds", "0", "--epochs", "1"),
        *("--limit-train", "600", "--limit-test", "300", "--data-dir", str(data_dir), "--out", str(out)),
        *extra,
    )


def _results(run_dir: Path) -> dict:
    metrics = [{k: v for k, v in row.items() if k != "seconds"} for row in rundir.read_metrics(run_dir / "metrics.csv")]
    test = json.loads((run_dir / rundir.TEST_METRICS_FILE).read_text())
    logits = rundir.read_logits(run_dir / rundir.PREDICTIONS_FILE)
    kept = ("test_accuracy", "test_loss", "confusion_matrix", "per_class")
    return {"metrics": metrics, "test": {k: test[k] for k in kept}, "logits": logits.tobytes()}


def test_compare_with_jobs_gives_the_serial_runs_bit_for_bit(fmnist_cli, real_data_dir, tmp_path):
    serial = _compare(fmnist_cli, real_data_dir, tmp_path / "serial", "--threads", "1")
    assert serial.returncode == 0, serial.stderr[-3000:]
    jobs = _compare(fmnist_cli, real_data_dir, tmp_path / "jobs", "--jobs", "2")
    assert jobs.returncode == 0, jobs.stderr[-3000:]
    assert "2 jobs at once" in jobs.stdout and "[2 done, 0 running, 0 waiting]" in jobs.stdout
    for name in ("keras-seed0", "lightning-seed0"):
        a, b = (tmp_path / root / "runs" / name for root in ("serial", "jobs"))
        assert _results(a) == _results(b), name
        placements = [json.loads((d / rundir.RUN_INFO_FILE).read_text())["placement"] for d in (a, b)]
        assert [p["executor"] for p in placements] == ["serial", "jobs"]
        assert [p["threads"] for p in placements] == [1, 1]
        assert "Epoch 1/1" in (b / rundir.CONSOLE_LOG_FILE).read_text()  # its output, in its folder
    assert not (tmp_path / "jobs" / "logs").exists()

    # Where and how a run ran is recorded, not matched: both are reused with other threads.
    again = _compare(fmnist_cli, real_data_dir, tmp_path / "jobs", "--threads", "2")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("reusing") == 2 and "to train" not in again.stdout


def test_failed_runs_are_named_with_their_logs(fmnist_cli, one_line_error, real_data_dir, tmp_path):
    diverging = tmp_path / "diverging.yaml"
    diverging.write_text(BASELINE.read_text().replace("lr: 0.001", "lr: 1.0e+6"))
    assert diverging.read_text() != BASELINE.read_text()
    out = tmp_path / "report"
    result = _compare(fmnist_cli, real_data_dir, out, "--jobs", "2", config=diverging)
    line = one_line_error(result, "2 of 2 runs failed", "keras seed 0", "lightning seed 0", "training diverged")
    for name in ("keras-seed0", "lightning-seed0"):
        log = out / "runs" / name / rundir.CONSOLE_LOG_FILE
        assert f"log: {log}" in line and "loss became nan" in log.read_text()
    assert not (out / "report.md").exists()


@pytest.mark.parametrize("engine", ["keras", "lightning"])
def test_the_thread_count_reaches_the_framework(engine, fmnist, real_data_dir, tmp_path):
    """`--threads N` is more than a record: the training process's framework reports the pools it
    trained with (torch.get_num_threads; TensorFlow's intra- and inter-op settings), and they are
    N, a count other than torch's default here. The setting itself is read, not its effect on the
    last bits, which depends on the kernels a CPU runs (identical losses with 1 and 2 threads on
    some). torch caps its pool at the cores it sees, so N is at most that."""
    import torch

    default = torch.get_num_threads()  # this process was given no thread count
    asked = 1 if default > 1 else 2
    if asked > len(os.sched_getaffinity(0)):
        pytest.skip("one core: no thread count other than torch's default to ask for")
    run_dir = tmp_path / "threads"
    fmnist(
        *("train", "--engine", engine, "--config", str(BASELINE), "--epochs", "1", "--limit-train", "600"),
        *("--limit-test", "100", "--data-dir", str(real_data_dir), "--run-dir", str(run_dir)),
        *("--threads", str(asked)),
    )
    assert json.loads((run_dir / rundir.RUN_INFO_FILE).read_text())["placement"]["threads"] == asked  # as asked
    reported = json.loads((run_dir / rundir.TEST_METRICS_FILE).read_text())["framework_threads"]  # as it ran
    if engine == "keras":
        assert (reported["tf_intra_op"], reported["tf_inter_op"]) == (asked, asked), reported
    else:
        assert reported["torch_intra_op"] == asked != default, reported


def test_resume_refuses_other_data_than_the_run_started_on(keras_run, fmnist_cli, one_line_error, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(keras_run, run_dir)
    (run_dir / rundir.TEST_METRICS_FILE).unlink()  # unfinished, as after a crash
    info = json.loads((run_dir / rundir.RUN_INFO_FILE).read_text())
    info["data_sha256"]["t10k-images-idx3-ubyte"] = "f" * 64
    (run_dir / rundir.RUN_INFO_FILE).write_text(json.dumps(info))
    began = time.monotonic()
    one_line_error(fmnist_cli("train", "--resume", str(run_dir)), "t10k-images-idx3-ubyte SHA-256 ffffffffffff")
    assert time.monotonic() - began < 15  # refused before the framework loads
    del info["data_sha256"]
    (run_dir / rundir.RUN_INFO_FILE).write_text(json.dumps(info))
    one_line_error(fmnist_cli("train", "--resume", str(run_dir)), "records no data checksums")


def test_parity_refuses_to_replace_a_file_it_did_not_write(fmnist_cli, one_line_error, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "parity.json").write_text('{"my": "results"}')
    began = time.monotonic()
    one_line_error(fmnist_cli("parity", "--out", str(out)), "parity.json exists and was not written by fmnist parity")
    assert time.monotonic() - began < 15  # before the frameworks load
    assert (out / "parity.json").read_text() == '{"my": "results"}'
    (out / "parity-bf16-mixed.json").write_text("not json")
    one_line_error(fmnist_cli("parity", "--out", str(out), "--precision", "bf16-mixed"), "was not written")


@pytest.mark.slow
def test_ctrl_c_stops_every_job_resumably_and_a_rerun_finishes_them(fmnist_cli, real_data_dir, tmp_path):
    """Ctrl-C reaches the compare alone (each job runs in a session of its own); the compare hands
    it on, each run keeps its last finished epoch, and the same command continues both."""
    out = tmp_path / "report"
    args = [
        *("compare", "--config", str(BASELINE), "--seeds", "0", "--epochs", "4", "--jobs", "2"),
        *("--limit-train", "6000", "--limit-test", "300", "--data-dir", str(real_data_dir), "--out", str(out)),
    ]
    script = Path(sys.executable).parent / "fmnist"
    proc = subprocess.Popen(
        [str(script), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    runs = [out / "runs" / f"{b}-seed0" for b in ("keras", "lightning")]
    deadline = time.monotonic() + 300
    while min(_epochs(r) for r in runs) < 1:  # both under way, an epoch done
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    assert "interrupted: each unfinished run keeps its last finished epoch" in output
    for run_dir in runs:
        assert not (run_dir / rundir.TEST_METRICS_FILE).exists(), "interrupted too late"
        assert 1 <= len(rundir.read_metrics(run_dir / "metrics.csv")) < 4
    again = fmnist_cli(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("unfinished run with the same settings, resuming") == 2
    for run_dir in runs:
        assert [r["epoch"] for r in rundir.read_metrics(run_dir / "metrics.csv")] == [1, 2, 3, 4]
        assert json.loads((run_dir / rundir.TEST_METRICS_FILE).read_text())["resumed"] is True


def _epochs(run_dir: Path) -> int:
    path = run_dir / rundir.METRICS_FILE
    return len(rundir.read_metrics(path)) if path.exists() else 0
