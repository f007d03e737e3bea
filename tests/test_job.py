"""The one entry point of every job (`python -m fmnist.job REQUEST OUT`) and its one wire format
(`fmnist.message`): what goes in comes out, a refusal is one line, an unknown kind is named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from fmnist import job
from fmnist.errors import USER_ERROR_EXIT
from fmnist.message import message_bytes, read_message, write_message


def test_a_message_carries_json_and_arrays_both_ways(tmp_path):
    weights = np.arange(12, dtype=np.float32).reshape(3, 4)
    tree = {"job": "calls", "n": np.int64(3), "path": Path("/x"), "calls": [{"w": weights, "t": (1, 2.5, None)}]}
    write_message(tmp_path / "m.npz", tree)
    back = read_message(tmp_path / "m.npz")
    assert back["n"] == 3 and back["path"] == "/x" and back["calls"][0]["t"] == [1, 2.5, None]
    assert back["calls"][0]["w"].dtype == np.float32 and np.array_equal(back["calls"][0]["w"], weights)
    assert (tmp_path / "m.npz").read_bytes() == message_bytes(tree)  # the same bytes shipped to a node


def test_every_kind_of_job_is_declared_and_loads():
    assert {"train", "resume", "calls", "export", "benchmark", "peak", "time-to-accuracy"} <= set(job.kinds())
    for kind in job.kinds():
        assert callable(job.function(kind))


def _run(request: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    write_message(tmp_path / job.REQUEST_FILE, request)
    argv = job.command(tmp_path / job.REQUEST_FILE, tmp_path / "out")
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=120)


def test_an_unknown_kind_is_refused_by_name_in_one_line(tmp_path):
    done = _run(job.request("no-such-kind"), tmp_path)
    assert done.returncode == USER_ERROR_EXIT
    assert len(done.stderr.strip().splitlines()) == 1
    assert "no job kind 'no-such-kind' is declared; declared: benchmark, calls, export" in done.stderr
    assert not (tmp_path / "out" / job.RESULT_FILE).exists()


def test_a_job_answers_in_its_result_message(tmp_path):
    """An engine's calls through the entry point: the answer comes back as a message in OUT."""
    from fmnist.config import load_config
    from fmnist.engine_job import call
    from fmnist.packaged_configs import config_file

    asked = [call("initial_weights", load_config(config_file("baseline")))]
    done = _run(job.request("calls", engine="lightning", calls=asked), tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = job.read_result(tmp_path / "out")
    assert "torch" in answer["versions"]
    arrays = [a for a in _leaves(answer["results"][0]) if isinstance(a, np.ndarray)]
    assert arrays and all(a.dtype == np.float32 for a in arrays)


def _leaves(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from _leaves(v)
    elif isinstance(tree, list):
        for v in tree:
            yield from _leaves(v)
    else:
        yield tree
