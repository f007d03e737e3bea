"""`fmnist compare --executor ray` with a real Ray: refused in one line without Ray or without a
cluster at the address; on a local instance and on a two-node cluster (tests/ray_cluster.py:
network namespaces, the worker reached only over the network) the runs are the serial runs bit
for bit, the driver's data and config travelling through Ray (the worker cannot see the driver's
folders), a node never running more trainings than its CPUs; a training or Ray worker killed
mid-run ends in a named failure or a retry, never a report with wrong numbers; a node running
another fmnist-parity, or whose trainings would import one, is refused by name."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import ray_cluster
from fmnist import rundir
from fmnist.message import read_message

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "configs" / "baseline.yaml"
TINY = ("--seeds", "0", "1", "--epochs", "1", "--limit-train", "600", "--limit-test", "300")
RUNS = [f"{engine}-seed{seed}" for seed in (0, 1) for engine in ("keras", "lightning")]
#: The packages a node's project is made of (executors.identity.PACKAGES, and serving).
PACKAGES = ("fmnist", "fmnist_cli", "keras_model", "lightning_model", "compare", "benchmarks", "executors", "serving")


def _compare_args(out: Path, data_dir: Path, *extra: str, settings=TINY) -> list[str]:
    return ["compare", "--config", str(BASELINE), *settings, "--data-dir", str(data_dir), "--out", str(out), *extra]


def _results(run_dir: Path) -> dict:
    """What must not depend on where a run ran: its metrics but their timing, its test metrics,
    its logits to the last bit."""
    metrics = [{k: v for k, v in row.items() if k != "seconds"} for row in rundir.read_metrics(run_dir / "metrics.csv")]
    test = json.loads((run_dir / rundir.TEST_METRICS_FILE).read_text())
    logits = rundir.read_logits(run_dir / rundir.PREDICTIONS_FILE)
    kept = ("test_accuracy", "test_loss", "confusion_matrix", "per_class")
    return {"metrics": metrics, "test": {k: test[k] for k in kept}, "logits": logits.tobytes()}


def _placement(run_dir: Path) -> dict:
    return json.loads((run_dir / rundir.RUN_INFO_FILE).read_text())["placement"]


def _assert_same_runs(got: Path, reference: Path, names: list[str]) -> None:
    for name in names:
        assert _results(got / "runs" / name) == _results(reference / "runs" / name), f"{name} differs from serial"


def _free_port() -> int:
    """A loopback port nothing listens on (bound, then released: a connection is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------ refused at once

_WITHOUT_RAY = """
import sys
class NoRay:  # as when Ray is not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "ray":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoRay())
from fmnist_cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_ray_not_installed_is_one_line_naming_the_extra(real_data_dir, tmp_path):
    out = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_RAY, *_compare_args(out, real_data_dir, "--executor", "ray")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    shown = f"exit {done.returncode}, stderr:\n{done.stderr[-3000:]}"
    assert done.returncode == 2, shown
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fmnist: error: "), shown
    assert "pip install 'fmnist-parity[ray]'" in lines[0], shown
    assert not out.exists()


def test_an_unreachable_ray_address_is_refused_in_seconds(fmnist_cli, real_data_dir, tmp_path):
    out, address = tmp_path / "report", f"127.0.0.1:{_free_port()}"
    began = time.monotonic()
    done = fmnist_cli(*_compare_args(out, real_data_dir, "--executor", "ray", "--ray-address", address), timeout=60)
    took = time.monotonic() - began
    shown = f"exit {done.returncode} after {took:.0f} s, stderr:\n{done.stderr[-3000:]}"
    assert done.returncode == 2 and took < 30, shown
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fmnist: error: cannot reach the Ray cluster at "), shown
    assert address in lines[0] and "Traceback" not in done.stderr, shown
    assert not out.exists()


# ------------------------------------------------------------------------------ slow: real Ray runs


@pytest.fixture(scope="module")
def serial_reference(fmnist, real_data_dir, tmp_path_factory) -> Path:
    """The tiny compare (2 seeds x 2 engines), serial with one thread: what every Ray run must equal."""
    out = tmp_path_factory.mktemp("serial") / "report"
    fmnist(*_compare_args(out, real_data_dir, "--threads", "1"))
    for name in RUNS:
        assert _placement(out / "runs" / name)["executor"] == "serial"
    return out


@pytest.mark.slow
def test_a_local_ray_instance_gives_the_serial_runs_bit_for_bit(serial_reference, fmnist_cli, real_data_dir, tmp_path):
    out = tmp_path / "report"
    done = fmnist_cli(
        *_compare_args(out, real_data_dir, "--executor", "ray"),
        env={"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "a local Ray instance" in done.stdout and "[4 done, 0 running, 0 waiting]" in done.stdout
    _assert_same_runs(out, serial_reference, RUNS)
    for name in RUNS:
        placement = _placement(out / "runs" / name)
        assert (placement["executor"], placement["threads"]) == ("ray", 1), placement
        assert placement["node"] == "127.0.0.1", placement  # the local instance stays on loopback
        assert "Epoch 1/1" in (out / "runs" / name / rundir.CONSOLE_LOG_FILE).read_text()
    assert (out / "report.md").is_file() and not (out / "logs").exists()


def _cluster_or_skip() -> None:
    why = ray_cluster.unavailable()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the Ray cluster tests cannot run: {why} (CI must run them)", pytrace=False)
        pytest.skip(f"no Ray cluster in network namespaces: {why}")


@pytest.fixture(scope="module")
def driver_side(tmp_path_factory) -> Path:
    """The driver's own folder (its working directory, its --out): on another machine to the worker."""
    return tmp_path_factory.mktemp("driver-side")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, real_data_dir, driver_side):
    """A head with no CPUs and a worker node with 2 (10.251.0.2), for the module's cluster tests.
    The driver's data folder and its own folder look empty on the worker: what the worker needs
    must travel through Ray."""
    _cluster_or_skip()
    made = ray_cluster.Cluster(
        tmp_path_factory.mktemp("cluster"), worker_cpus=2, hidden_from_worker=[real_data_dir, driver_side]
    )
    yield made
    made.close()


def _training_processes(cluster) -> dict[int, list[str]]:
    """The trainings running on the worker node, each the process a Ray worker started (not the
    processes a training forks, which keep its command line): pid -> command line."""
    found = {}
    for pid in cluster.worker_processes():
        argv = ray_cluster.cmdline(pid)
        if "fmnist.job" in argv:
            found[pid] = argv
    return {pid: argv for pid, argv in found.items() if ray_cluster.parent(pid) not in found}


class _Watch(threading.Thread):
    """Counts the trainings running at once on the worker node while a compare runs."""

    def __init__(self, cluster) -> None:
        super().__init__(daemon=True)
        self.cluster, self.most, self.done = cluster, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.most = max(self.most, len(_training_processes(self.cluster)))
            time.sleep(0.3)


@pytest.fixture(scope="module")
def cluster_compare(cluster, real_data_dir, driver_side):
    """The tiny compare on the cluster, driven beside the head, with the most trainings seen at once."""
    workdir = driver_side / "tiny"
    workdir.mkdir()
    out = workdir / "report"
    watch = _Watch(cluster)
    watch.start()
    try:
        done = cluster.run_driver(
            *_compare_args(out, real_data_dir, "--executor", "ray", "--ray-address", cluster.address, "--threads", "1"),
            cwd=workdir,
            timeout=900,
        )
    finally:
        watch.done.set()
        watch.join()
    return done, out, watch.most


@pytest.mark.slow
def test_a_two_node_cluster_runs_everything_on_the_worker_bit_for_bit(cluster_compare, cluster, serial_reference):
    done, out, _ = cluster_compare
    assert done.returncode == 0, f"{done.stderr[-3000:]}\nworker node:\n{cluster.nodes[-1].tail()}"
    assert f"the Ray cluster at {cluster.address}" in done.stdout
    _assert_same_runs(out, serial_reference, RUNS)
    for name in RUNS:
        placement = _placement(out / "runs" / name)
        assert (placement["node"], placement["executor"], placement["threads"]) == (
            ray_cluster.WORKER_IP,
            "ray",
            1,
        ), placement
        assert f"started on {ray_cluster.WORKER_IP}" in done.stdout
    assert (out / "report.md").is_file()
    # The data came through Ray into the worker's own cache, not from the driver's folder.
    assert list((cluster.worker_cache / "fmnist-parity" / "ray-data").iterdir())


@pytest.mark.slow
def test_a_node_never_runs_more_trainings_at_once_than_its_cpus(cluster_compare):
    done, _, most = cluster_compare
    assert done.returncode == 0, done.stderr[-3000:]
    said = max(int(m) for m in re.findall(r", (\d+) running, ", done.stdout))  # the executor's own count
    assert most <= 2 and said <= 2, (
        f"{most} trainings seen at once ({said} said running) on a node with 2 CPUs, 1 thread each:\n{done.stdout}"
    )


@pytest.mark.slow
def test_the_config_travels_to_the_node(cluster, serial_reference, real_data_dir, driver_side):
    """A config the worker cannot read where the driver has it (another machine's folder)."""
    workdir = driver_side / "own-config"
    workdir.mkdir()
    (workdir / "mine.yaml").write_text(BASELINE.read_text())
    out = workdir / "report"
    args = ["compare", "--config", "mine.yaml", "--seeds", "0", *TINY[3:], "--data-dir", str(real_data_dir)]
    done = cluster.run_driver(
        *args, "--out", str(out), "--executor", "ray", "--ray-address", cluster.address, cwd=workdir, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_same_runs(out, serial_reference, ["keras-seed0", "lightning-seed0"])


LONGER = ("--seeds", "0", "--epochs", "3", "--limit-train", "3000", "--limit-test", "300")
LONGER_RUNS = ["keras-seed0", "lightning-seed0"]


def _job_of(argv: list[str]) -> tuple[str | None, Path]:
    """(engine, run directory) of a training job, `python -m fmnist.job REQUEST RUN_DIR`: the
    engine its request names (None: the job ended and took its request along)."""
    i = argv.index("fmnist.job")
    try:
        engine = read_message(Path(argv[i + 1])).get("engine")
    except (OSError, ValueError):
        engine = None
    return engine, Path(argv[i + 2])


def _epochs_done(run_dir: Path) -> int:
    try:
        return len(rundir.read_metrics(run_dir / "metrics.csv"))
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.slow
def test_a_training_or_ray_worker_killed_mid_run_fails_by_name_or_retries_never_a_wrong_report(
    cluster, fmnist, real_data_dir, tmp_path, driver_side
):
    serial = tmp_path / "serial"
    fmnist(*_compare_args(serial, real_data_dir, "--threads", "1", settings=LONGER))
    workdir = driver_side / "killed"
    workdir.mkdir()
    out = workdir / "report"
    args = _compare_args(
        out, real_data_dir, "--executor", "ray", "--ray-address", cluster.address, "--threads", "1", settings=LONGER
    )
    driver = cluster.driver(*args, cwd=workdir)
    killed: dict[str, str] = {}
    try:
        # Both trainings running and past their first epoch: kill one training, and the Ray
        # worker that started the other (the training dies with it).
        deadline = time.monotonic() + 300
        while len(killed) < 2 and time.monotonic() < deadline and driver.poll() is None:
            for pid, argv in _training_processes(cluster).items():
                engine, run_dir = _job_of(argv)
                if engine is None or engine in killed or _epochs_done(run_dir) < 1:
                    continue
                if engine == "keras":
                    victim, what = pid, "training"
                else:
                    victim, what = ray_cluster.parent(pid), "Ray worker"
                    assert victim and ray_cluster.cmdline(victim)[0].startswith("ray::"), ray_cluster.cmdline(victim)
                os.kill(victim, signal.SIGKILL)
                killed[engine] = what
            time.sleep(0.2)
        stdout, stderr = driver.communicate(timeout=900)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    assert len(killed) == 2, f"killed only {killed} (the runs ended first?):\n{stderr[-3000:]}"
    shown = f"killed {killed}; exit {driver.returncode}; stderr:\n{stderr[-3000:]}\nstdout:\n{stdout[-3000:]}"
    if driver.returncode == 0:  # both retried: the same numbers as serial
        _assert_same_runs(out, serial, LONGER_RUNS)
        assert (out / "report.md").is_file(), shown
    else:
        line = stderr.strip().splitlines()[-1]
        assert driver.returncode == 2 and line.startswith("fmnist: error: "), shown
        assert "runs failed" in line and "Traceback" not in stderr, shown
        named = 0
        for name in LONGER_RUNS:
            engine = name.split("-")[0]
            if f"{engine} seed 0 (" in line:  # a named failure, with the log it left
                named += 1
                log = line.split(f"{engine} seed 0 (", 1)[1].split("log: ", 1)[1].split(")", 1)[0]
                assert Path(log).is_file(), shown
            else:  # it finished (retried): the serial numbers
                _assert_same_runs(out, serial, [name])
        assert named >= 1, shown
        assert not (out / "report.md").exists() and not (out / "summary.json").exists(), shown
        print(f"killed {killed}: {line}")
        # The same command again trains what failed; then everything is the serial runs.
        again = cluster.run_driver(*args, cwd=workdir, timeout=900)
        assert again.returncode == 0, again.stderr[-3000:]
        _assert_same_runs(out, serial, LONGER_RUNS)
    for name in LONGER_RUNS:
        assert _placement(out / "runs" / name)["node"] == ray_cluster.WORKER_IP


def _other_version(root: Path) -> Path:
    """A copy of the project whose version differs from the driver's."""
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    init = root / "fmnist" / "__init__.py"
    text = init.read_text()
    assert '__version__ = "' in text
    init.write_text(text.replace('__version__ = "', '__version__ = "9.9.9+other-', 1))
    return root


@pytest.mark.slow
def test_a_node_running_another_version_is_refused_by_name_before_training(real_data_dir, tmp_path):
    _cluster_or_skip()
    other = _other_version(tmp_path / "other-project")
    probe = "import fmnist; print(fmnist.__version__, fmnist.__file__)"
    shadowed = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(other)},
        cwd=tmp_path,
    )
    assert shadowed.stdout.startswith("9.9.9+other-") and str(other) in shadowed.stdout, shadowed
    cluster = ray_cluster.Cluster(tmp_path / "cluster", worker_cpus=2, worker_env={"PYTHONPATH": str(other)})
    try:
        out = tmp_path / "report"
        # Driven from a folder holding no project: Ray puts the driver's working directory on its
        # workers' sys.path, where this checkout's packages would shadow the node's.
        workdir = tmp_path / "driver"
        workdir.mkdir()
        began = time.monotonic()
        done = cluster.run_driver(
            *_compare_args(out, real_data_dir, "--executor", "ray", "--ray-address", cluster.address, "--threads", "1"),
            cwd=workdir,
            timeout=300,
        )
        took = time.monotonic() - began
        shown = f"exit {done.returncode} after {took:.0f} s, stderr:\n{done.stderr[-3000:]}"
        assert done.returncode == 2, shown
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, shown
        assert lines[0].startswith(f"fmnist: error: Ray node {ray_cluster.WORKER_IP} "), shown
        from fmnist import __version__

        assert f"version 9.9.9+other-{__version__} there, {__version__} here" in lines[0], shown
        assert not out.exists(), shown  # nothing written
        assert not _training_processes(cluster)
        assert not list(cluster.worker_tmp.glob("fmnist-ray-job-*")), "a training started on the refused node"
        assert not (cluster.worker_cache / "fmnist-parity" / "ray-data").exists(), "data sent to a refused node"
    finally:
        cluster.close()


@pytest.mark.slow
def test_a_node_started_in_another_projects_folder_trains_the_drivers_project_or_is_refused(real_data_dir, tmp_path):
    """The check must look at the project the trainings import. A Ray worker's working directory
    is the folder its node's `ray start` ran in; a training started there with `python -m`
    imports the packages found in that folder first, whatever the Ray worker itself imports."""
    _cluster_or_skip()
    other = _other_version(tmp_path / "other-project")
    cluster = ray_cluster.Cluster(tmp_path / "cluster", worker_cpus=2, worker_cwd=other)
    try:
        out, workdir = tmp_path / "report", tmp_path / "driver"
        workdir.mkdir()
        one_seed = ("--seeds", "0", *TINY[3:])
        done = cluster.run_driver(
            *_compare_args(
                out, real_data_dir, "--executor", "ray", "--ray-address", cluster.address, settings=one_seed
            ),
            cwd=workdir,
            timeout=600,
        )
    finally:
        cluster.close()
    from fmnist import __version__

    if done.returncode == 2:  # refused: the node's trainings would run another version
        line = done.stderr.strip().splitlines()[-1]
        assert line.startswith(f"fmnist: error: Ray node {ray_cluster.WORKER_IP} "), done.stderr[-3000:]
        assert not out.exists()
        return
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("keras-seed0", "lightning-seed0"):
        ran = json.loads((out / "runs" / name / rundir.TEST_METRICS_FILE).read_text())["versions"]["fmnist-parity"]
        assert ran == __version__, f"{name} was trained by fmnist-parity {ran}, the driver runs {__version__}"
