"""Sharding of batches over processes and telling the first process from the others: the parts
of a multi-process training that need no second process to test."""

from __future__ import annotations

import numpy as np
import pytest

from fmnist import distributed


@pytest.mark.parametrize("world_size", [2, 3, 4])
@pytest.mark.parametrize("shuffle", [True, False])
def test_shards_cover_each_global_batch_exactly_once(world_size, shuffle):
    from torch_blocks.batches import BatchIndexSampler

    n, batch = 103, 10  # the last batch (3 images) is smaller than some world sizes
    single = list(BatchIndexSampler(n, batch, seed=5, shuffle=shuffle))
    shards = [
        BatchIndexSampler(n, batch, seed=5, shuffle=shuffle, rank=r, world_size=world_size) for r in range(world_size)
    ]
    per_rank = [list(s) for s in shards]
    assert [len(batches) for batches in per_rank] == [len(s) for s in shards]  # __len__ tells the truth
    if shuffle:  # training: every process takes the same number of steps (else DDP waits forever)
        assert len({len(batches) for batches in per_rank}) == 1
    for i, whole in enumerate(single):
        parts = [batches[i] for batches in per_rank if i < len(batches)]
        if shuffle and len(whole) < world_size:
            continue  # dropped in training: too small to give every process an image
        assert np.array_equal(np.concatenate(parts), whole)  # in order, no padding, no duplicate
    if not shuffle:  # evaluation: every image exactly once
        everything = np.concatenate([b for batches in per_rank for b in batches])
        assert np.array_equal(np.sort(everything), np.arange(n))


def test_split_batch_sizes_differ_by_at_most_one():
    sizes = [len(distributed.split_batch(np.arange(11), 4, r)) for r in range(4)]
    assert sizes == [3, 3, 3, 2]


@pytest.mark.parametrize(
    "env,primary",
    [
        ({}, True),
        ({"LOCAL_RANK": "0", "NODE_RANK": "0"}, True),
        ({"LOCAL_RANK": "1"}, False),
        ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, False),
        ({"RANK": "0", "LOCAL_RANK": "0"}, True),
        ({"RANK": "3", "LOCAL_RANK": "1"}, False),
        ({"SLURM_NTASKS": "4", "SLURM_PROCID": "2"}, False),
        ({"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}, True),
    ],
)
def test_only_global_rank_zero_is_primary(monkeypatch, env, primary):
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_NTASKS", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert distributed.is_primary() is primary


def test_launched_processes_find_the_run_directory(monkeypatch, tmp_path):
    monkeypatch.setenv(distributed.RUN_DIR_ENV, "")  # restored after the test
    assert distributed.shared_run_dir() is None
    distributed.share_run_dir(tmp_path / "run")
    assert distributed.shared_run_dir() == tmp_path / "run"
