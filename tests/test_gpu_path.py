"""The prepared GPU run (`benchmarks/gpu_run.sh`, docs/speed.md), every part that needs no CUDA,
so a session lent a GPU spends its minutes measuring: the device-resident batches (on CPU, the
very tensors the host loader makes), the GPU variants in the one table, Keras on JAX measured
where neither TensorFlow nor torch can be imported (as on the GPU image), the time budgets, the
bundle's contents and size check, where the results are written and copied, and the script: its
three parts (parity, the benchmark, the trainings) rehearsed on CPU without TensorFlow."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from benchmarks import gpu_bundle, gpu_parts, gpu_run
from benchmarks.plan import Measurement, plan, schedule
from benchmarks.variants import VARIANTS, gpu_names, variant_config

REPO = Path(__file__).resolve().parents[1]
NOW = dt.datetime(2026, 12, 3, 9, 30, tzinfo=dt.timezone.utc)
H200 = "NVIDIA H200, 143771 MiB"  # as nvidia-smi --query-gpu=name,memory.total prints it


# ---------------------------------------------------------------------------------- the data on the device


@pytest.mark.parametrize("channels_last", [False, True])
def test_device_resident_batches_are_the_host_loaders_batches(tiny_images, channels_last):
    """On CPU the device-resident path yields exactly what the project's own loader does (and the
    Keras runner's input, transposed), in the shared order: on a GPU only the device differs."""
    import torch

    from benchmarks.measuring import batch_order
    from fmnist.splits import Split, to_float_nhwc
    from torch_blocks.batches import BatchDataset
    from torch_blocks.speed import DeviceBatches

    split = Split(*tiny_images)
    order = batch_order(len(split), 32, 8, seed=3)  # 6 full batches an epoch: the order wraps into a second
    batches = DeviceBatches(split, order, torch.device("cpu"), channels_last=channels_last)
    host = BatchDataset(split)
    assert len(batches) == 8 and batches.images.dtype == torch.uint8  # kept as uint8 where it lives
    for i, idx in enumerate(order):
        x, y = batches[i]
        hx, hy = host[idx]
        assert x.dtype == torch.float32 and x.shape == (32, 1, 28, 28) and y.dtype == torch.int64
        assert torch.equal(x, hx) and torch.equal(y, hy)
        assert np.array_equal(x.permute(0, 2, 3, 1).numpy(), to_float_nhwc(split.images[idx]))
        assert x.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert not np.array_equal(order[0], order[6])  # the second epoch is another permutation


# ---------------------------------------------------------------------------------- the variants


def test_the_gpu_variants_come_from_the_one_table(baseline_config):
    """What the GPU run measures: the float32 baseline, channels_last + bf16, that with torch.compile,
    and Keras on JAX in both precisions; none needs TensorFlow (the GPU image has none), and the
    CPU benchmark's default list is unchanged by them."""
    assert gpu_names() == ("eager", "channels_last+bf16", "channels_last+bf16+compile", "jax", "jax-bf16")
    combo = VARIANTS["channels_last+bf16+compile"]
    assert combo.torch_compile and combo.engines() == ("pytorch", "lightning") and not combo.default
    t = variant_config(baseline_config, combo.name).train
    assert t.channels_last and t.precision == "bf16-mixed"
    assert variant_config(baseline_config, "jax-bf16").train.precision == "bf16-mixed"
    assert VARIANTS["jax-bf16"].engines() == ("keras-jax",) and not VARIANTS["jax-bf16"].default
    assert "keras" not in {e for name in gpu_names() for e in VARIANTS[name].engines()}  # no TensorFlow there
    default = {m.variant for m in plan(["keras", "keras-jax", "lightning"], None, [128])}
    assert not {"channels_last+bf16+compile", "jax-bf16"} & default
    assert gpu_run.BATCH_SIZES == (8192,)  # the GPU's size; batch 128 is the CPU tables'
    planned = plan(gpu_run.BENCHMARK_ENGINES.split(","), list(gpu_names()), list(gpu_run.BATCH_SIZES))
    assert len(planned) == 8 and planned[:3] == [
        Measurement("keras-jax", "keras", "jax", 8192),
        Measurement("lightning", "plain torch", "eager", 8192),
        Measurement("keras-jax", "keras", "jax-bf16", 8192),
    ]


def test_each_measurement_can_run_all_its_repeats_before_the_next():
    """Repeat by repeat (the CPU benchmark's order), or each measurement's repeats together (the
    GPU run's, so a budget cut leaves whole measurements), a pair's order alternating either way."""
    planned = plan(["keras-jax", "lightning"], ["eager", "jax"], [8192])
    jax, plain, lightning = (Measurement("keras-jax", "keras", "jax", 8192), *planned[1:])
    assert [m for _, m in schedule(planned, 2)] == [jax, plain, lightning, lightning, plain, jax]
    assert schedule(planned, 2, together=True) == [
        (0, jax),
        (1, jax),
        (0, plain),
        (0, lightning),
        (1, lightning),
        (1, plain),
    ]


# ---------------------------------------------------------------------------------- Keras on JAX

_JAX_RUN = """
import json, os
os.environ["KERAS_BACKEND"] = "jax"
from benchmarks.worker import run
from keras_model.speed import device_sync, jax_wait
spec = {"engine": "keras-jax", "runner": "keras", "device": "cpu", "batch_size": 32, "steps": 2, "warmup": 1,
        "config": "configs/baseline.yaml", "data": "synthetic", "data_dir": None, "torch_threads": None, "repeat": 0}
out = {"jax-bf16": run({**spec, "variant": "jax-bf16"})}
out["cuda"] = run({**spec, "variant": "jax", "device": "cuda"})
import jax.numpy as jnp
class Model:
    _jax_state = {"trainable_variables": [jnp.ones(3) * 2]}
jax_wait(Model())
jax_wait(object())  # outside fit/predict there is no state to wait for
out["sync_on_gpu_is_jax_wait"] = device_sync("jax", "cuda") is jax_wait
print("RESULT" + json.dumps(out))
"""


@pytest.mark.slow  # XLA compiles for half a minute: the slow tier, which CI runs too
def test_keras_on_jax_is_measured_without_tensorflow_or_torch(run_with_blocked_imports):
    """The GPU image has JAX but no TensorFlow (and a JAX worker has no use for torch): the JAX runner
    measures mixed bfloat16 (the float32 variant differs only in the policy) with them blocked, and
    refuses --device cuda where JAX has no GPU rather than measure the CPU under the GPU's name."""
    assert importlib.util.find_spec("jax"), "jax is not installed: pip install -e '.[test]' (its jax extra)"
    result = run_with_blocked_imports(("tensorflow", "torch", "lightning"), _JAX_RUN, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.split("RESULT", 1)[1])
    r = out["jax-bf16"]
    assert r["status"] == "ok", r.get("traceback")
    assert r["train"]["steps"] == 2 and r["inference"]["steps"] == 2
    assert r["train"]["images_per_s"] > 0 and np.isfinite(r["final_loss"])
    assert r["flags"]["dtype_policy"] == "mixed_bfloat16" and r["flags"]["jit_compile"]
    assert "jax" in r["versions"] and "tensorflow" not in r["versions"]
    assert out["cuda"]["status"] == "error" and "--device cuda: JAX runs on cpu" in out["cuda"]["error"]
    assert out["sync_on_gpu_is_jax_wait"]


# ---------------------------------------------------------------------------------- the time budget


def _fake_result(spec):
    from benchmarks.measuring import timing_from_stamps

    start = time.perf_counter()
    stamps = [start + 0.01 * (i + 1) for i in range(spec["warmup"] + spec["steps"])]
    timing = timing_from_stamps(start, stamps, spec["warmup"], spec["batch_size"])
    return {"status": "ok", "spec": spec, "train": timing, "inference": timing, "peak_memory_mib": 1.0}


def test_a_spent_budget_skips_what_is_left_and_still_writes_the_results(tmp_path, monkeypatch):
    from benchmarks import orchestrate

    def fake_worker(m, spec, timeout):
        time.sleep(0.3)
        return _fake_result(spec)

    monkeypatch.setattr(orchestrate, "run_worker", fake_worker)
    kwargs = dict(
        engines_chosen=["lightning"],
        device="cpu",
        batch_sizes=[32],
        steps=3,
        warmup=1,
        config=REPO / "configs" / "baseline.yaml",
        variants=["eager"],
        data="synthetic",
        log=lambda line: None,
        peak_matrix_size=64,  # no full-size peak in a test
    )
    result = orchestrate.run_benchmark(repeats=2, out=tmp_path / "budget", budget_seconds=0.2, **kwargs)
    plain, lightning = result["measurements"]
    assert plain["status"] == "ok" and plain["repeats"] == 2 and len(plain["per_repeat_train_images_per_s"]) == 1
    assert lightning["status"] == "skipped" and lightning["error"].startswith("not started: the run's time budget")
    assert result["settings"]["budget_seconds"] == 0.2
    written = json.loads((tmp_path / "budget" / "benchmark.json").read_text())
    assert written["measurements"][1]["status"] == "skipped"
    assert "skipped: not started" in (tmp_path / "budget" / "benchmark.md").read_text()

    unbudgeted = orchestrate.run_benchmark(repeats=1, out=tmp_path / "all", **kwargs)
    assert [m["status"] for m in unbudgeted["measurements"]] == ["ok", "ok"]
    assert "budget_seconds" not in unbudgeted["settings"]  # the CPU benchmark's output is unchanged
    assert "repeats_together" not in unbudgeted["settings"]

    # Each measurement's repeats together: the budget leaves the first whole, the second not begun.
    kwargs.update(engines_chosen=["pytorch"], variants=["eager", "channels_last"])
    together = orchestrate.run_benchmark(
        repeats=2, out=tmp_path / "together", budget_seconds=0.5, repeats_together=True, **kwargs
    )
    eager, channels_last = together["measurements"]
    assert eager["status"] == "ok" and len(eager["per_repeat_train_images_per_s"]) == 2
    assert channels_last["status"] == "skipped" and together["settings"]["repeats_together"] is True


# ---------------------------------------------------------------------------------- where the results go


def test_the_results_folder_names_the_gpu_and_never_replaces_earlier_results(tmp_path):
    assert gpu_run.gpu_slug(H200) == "nvidia-h200" and gpu_run.gpu_slug(None) == ""
    first = gpu_run.results_folder(tmp_path, "cuda", NOW, H200)
    assert first == tmp_path / "2026-12-03-gpu-nvidia-h200"
    first.mkdir()
    assert gpu_run.results_folder(tmp_path, "cuda", NOW, H200) == first  # an empty folder is free
    (first / "benchmark.json").write_text("{}")
    assert gpu_run.results_folder(tmp_path, "cuda", NOW, H200) == tmp_path / "2026-12-03-gpu-nvidia-h200-2"
    assert gpu_run.results_folder(tmp_path, "cuda", NOW, None) == tmp_path / "2026-12-03-gpu"
    assert gpu_run.results_folder(tmp_path, "cpu", NOW, H200) == tmp_path / "2026-12-03-cpu"  # a rehearsal


def test_the_gpu_run_measures_its_plan_and_copies_the_results_and_log_out(tmp_path, monkeypatch):
    """gpu_run's benchmark part reaches the benchmark with its plan (the table's GPU variants at
    batch 8192, real data, its budget, each measurement's repeats together), and what it writes
    comes back under --copy-to, one folder down, as the device tool brings files back."""
    from benchmarks import orchestrate
    from benchmarks.environment import hardware
    from benchmarks.outputs import write_outputs

    seen = {}

    def fake_run_benchmark(**kwargs):
        seen.update(kwargs)
        kwargs["log"](f"[benchmark] a progress line, written in {kwargs['out'].resolve()}")
        result = {
            "created": "2026-12-03 09:30 UTC",
            "settings": {
                "device": "cuda",
                "config": "configs/baseline.yaml",
                "data": "real",
                "steps": 100,
                "warmup": 10,
                "repeats": 2,
            },
            "environment": {"hardware": {**hardware(), "gpu": H200}, "versions": {}, "load_average_start": None},
            "measurements": [],
            "time_to_accuracy": None,
        }
        write_outputs(result, kwargs["out"])
        return result

    monkeypatch.setattr(orchestrate, "run_benchmark", fake_run_benchmark)
    monkeypatch.setattr(gpu_run, "gpu_name", lambda: H200)
    out = tmp_path / "OUT"
    code = gpu_run.main(["--parts", "benchmark", "--results-root", str(tmp_path / "results"), "--copy-to", str(out)])
    assert code == 1  # no measurement succeeded
    assert seen["device"] == "cuda" and seen["variants"] == list(gpu_names()) and seen["data"] == "real"
    assert seen["engines_chosen"] == ["keras-jax", "lightning"] and seen["batch_sizes"] == [8192]
    assert seen["budget_seconds"] == gpu_run.BENCHMARK_BUDGET and seen["repeats_together"]
    assert seen["repeats"] == gpu_run.REPEATS and seen["timeout"] == gpu_run.TIMEOUT_SECONDS
    assert seen["config"] == Path("configs/baseline.yaml")  # relative: results carry no machine paths
    folder = seen["out"]
    assert folder.parent == tmp_path / "results" and folder.name.endswith("-gpu-nvidia-h200")
    copied = out / folder.name
    assert sorted(p.name for p in copied.iterdir()) == ["benchmark.json", "benchmark.md"]
    assert (copied / "benchmark.md").read_text() == (folder / "benchmark.md").read_text()
    assert "GPU NVIDIA H200" in (copied / "benchmark.md").read_text()
    log = (out / gpu_run.LOG_NAME).read_text()
    assert f"[benchmark] a progress line, written in {folder.name}\n" in log
    assert "copied benchmark.json, benchmark.md" in log and "benchmark: failed: no measurement ran" in log
    assert str(tmp_path) not in log  # published beside the results: no paths of the machine that ran it


def test_the_gpu_run_refuses_a_machine_without_a_gpu_and_parts_it_has_not(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_run, "gpu_name", lambda: None)
    assert gpu_run.main(["--results-root", str(tmp_path)]) == 2
    assert "--device cuda: nvidia-smi finds no GPU here" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written
    for bad in (["--parts", "parity,train"], ["--parity-precisions", "float16"]):
        with pytest.raises(SystemExit):
            gpu_run.parse_args(bad)
    assert gpu_run.parse_args(["--parts", "strong,parity"]).parts == ["parity", "strong"]  # always in order
    files_back = sum(map(len, gpu_parts.PART_FILES.values())) + 1  # and the log
    assert files_back <= gpu_run.FILES_BACK == 8  # what the device tool brings back from $OUT


def test_the_executors_leave_the_gpus_a_training_sees_alone(monkeypatch):
    """`fmnist compare --jobs` on a GPU machine: every training sees the GPU (the executor sets no
    CUDA_VISIBLE_DEVICES); parity's CPU jobs are the ones that hide it (`Engine.device_environment`)."""
    from fmnist.launch import job_env

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert "CUDA_VISIBLE_DEVICES" not in job_env(4, "jobs", "host", None)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert job_env(4, "jobs", "host", None)["CUDA_VISIBLE_DEVICES"] == "0"


def test_a_published_log_shows_paths_inside_the_checkout_relative_and_others_by_name(tmp_path):
    from benchmarks.outputs import shown

    assert shown(Path.cwd() / "benchmarks" / "results" / "x") == str(Path("benchmarks", "results", "x"))
    assert shown(tmp_path / "elsewhere") == "elsewhere"


def test_outside_a_checkout_the_bundle_names_the_commit_measured(monkeypatch):
    from benchmarks import environment

    monkeypatch.setattr(environment, "_git_revision", lambda: None)
    monkeypatch.setenv(environment.SOURCE_REVISION_ENV, "abc1234")
    assert environment.source_revision() == "abc1234"
    monkeypatch.delenv(environment.SOURCE_REVISION_ENV)
    assert environment.source_revision() is None
    monkeypatch.setattr(environment, "_git_revision", lambda: "def5678")
    monkeypatch.setenv(environment.SOURCE_REVISION_ENV, "abc1234")
    assert environment.source_revision() == "def5678"  # git, where it can tell, wins


# ---------------------------------------------------------------------------------- the bundle


def _fake_download(tag: str = "py3-none-any"):
    calls = []

    def download(requirements, dest, python_version):
        calls.append((list(requirements), python_version))
        for req in requirements:
            name, version = req.split("==")
            (dest / f"{name}-{version}-{tag}.whl").write_bytes(b"PK" + bytes(1000))

    download.calls = calls
    return download


def test_the_bundle_holds_the_pinned_wheels_and_the_data(tmp_path, real_data_dir):
    out = tmp_path / "gpu-bundle"
    download = _fake_download()
    built = gpu_bundle.build(out, data_dir=real_data_dir, download=download, log=lambda line: None)
    pins = [f"{name}=={metadata.version(name)}" for name in ("keras", "namex", "optree")]
    assert download.calls == [(pins, "3.12")]  # the GPU image's Python, the versions measured here
    assert built["requirements"] == pins and built["python_version"] == "3.12"
    assert [e["file"] for e in built["data"]] == sorted(f"{stem}.gz" for stem in gpu_bundle.FILES)
    for entry in built["data"]:
        assert (out / "data" / entry["file"]).stat().st_size == (real_data_dir / entry["file"]).stat().st_size
    assert built["bundle_bytes"] == sum(e["bytes"] for e in built["wheels"] + built["data"])
    assert json.loads((out / "manifest.json").read_text()) == built
    assert sorted(p.name for p in (out / "wheels").iterdir()) == sorted(e["file"] for e in built["wheels"])

    # Rebuilt for another Python: the old wheels go (two versions of a package stop the install).
    gpu_bundle.build(out, data_dir=real_data_dir, python_version="3.13", download=_fake_download("cp313"), log=print)
    assert all(p.name.endswith("-cp313.whl") for p in (out / "wheels").iterdir())
    assert len(list((out / "wheels").iterdir())) == 3 and not list(out.glob(".wheels-*"))

    def failing(requirements, dest, python_version):
        raise gpu_bundle.BundleError("pip download keras failed: no network")

    with pytest.raises(gpu_bundle.BundleError, match="no network"):
        gpu_bundle.build(out, data_dir=real_data_dir, download=failing, log=print)
    assert len(list((out / "wheels").iterdir())) == 3 and not list(out.glob(".wheels-*"))  # the last good ones stay


def test_the_bundle_refuses_missing_data_and_what_the_device_tool_cannot_carry(tmp_path):
    with pytest.raises(gpu_bundle.BundleError, match="lacks train-images-idx3-ubyte.gz, train-labels"):
        gpu_bundle.data_files(tmp_path)
    mib = 2**20
    gpu_bundle.check_size(32 * mib, 3 * mib)
    gpu_bundle.check_size(32 * mib, None)
    with pytest.raises(gpu_bundle.BundleError, match="make 61.0 MiB: the device tool carries 64 MiB at most"):
        gpu_bundle.check_size(58 * mib, 3 * mib)
    with pytest.raises(gpu_bundle.BundleError, match="is not installed here"):
        gpu_bundle.pinned_requirements(("no-such-package-fmnist",))
    tree = gpu_bundle.tree_bytes()
    assert tree is None or 0 < tree < (gpu_bundle.CARRY_LIMIT_MIB - 40) * mib  # room for the 32 MiB bundle
