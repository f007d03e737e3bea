"""`train.precision: auto`: bf16-mixed where the device computes bfloat16 natively, float32 where
it would be emulated; an explicit precision as asked. The CPU's flags are faked (conftest's
`fake_cpu`), so every kind of CPU is covered on any machine: the rule, the line a training
prints, what run.json and test_metrics.json record, how `fmnist compare` matches runs by it, the
report refusing runs that mix precisions, and the shipped recipes."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import AMX_CPU, AVX2_CPU, AVX512_BF16_CPU, REPO
from fmnist import precision, rundir
from fmnist.config import load_config, with_overrides
from fmnist.errors import FmnistError

RECIPES = ("fast91", "fast93", "fast", "improved", "strong")


@pytest.mark.parametrize(
    "cpu, native", [(AVX2_CPU, False), (AMX_CPU, True), (AVX512_BF16_CPU, True)], ids=["avx2", "amx", "avx512_bf16"]
)
def test_auto_follows_the_cpus_bfloat16_instructions(fake_cpu, cpu, native):
    fake_cpu(cpu)
    device = precision.cpu_device()
    assert device.kind == "cpu" and device.native_bf16 is native
    assert precision.resolve("auto", device) == ("bf16-mixed" if native else "float32")
    # an explicit precision wins on every CPU
    assert precision.resolve("float32", device) == "float32"
    assert precision.resolve("bf16-mixed", device) == "bf16-mixed"


def test_a_cpu_whose_flags_cannot_be_read_trains_in_float32(tmp_path):
    device = precision.cpu_device(tmp_path / "no-cpuinfo")
    assert device.native_bf16 is None and precision.resolve("auto", device) == "float32"


@pytest.mark.parametrize("capability, expected", [((8, 0), "bf16-mixed"), ((9, 0), "bf16-mixed"), ((7, 5), "float32")])
def test_a_gpu_computes_bfloat16_natively_from_ampere_on(capability, expected):
    device = precision.gpu_device("some GPU", capability)
    assert device.kind == "gpu" and precision.resolve("auto", device) == expected


def test_the_line_a_training_prints(fake_cpu):
    fake_cpu(AVX2_CPU)
    line = precision.describe("auto", "float32", precision.cpu_device())
    assert line == (
        "precision: float32 (auto: the CPU, AMD EPYC 7R32, has none of avx512_bf16, amx_bf16;"
        " bfloat16 would be emulated)"
    )
    fake_cpu(AMX_CPU)
    assert "precision: bf16-mixed (auto: the CPU, Intel(R) Xeon(R) Platinum, has amx_bf16; bfloat16 is native)" == (
        precision.describe("auto", "bf16-mixed", precision.cpu_device())
    )
    assert precision.describe("bf16-mixed", "bf16-mixed", precision.cpu_device()) == "precision: bf16-mixed"


def test_an_engine_never_sees_auto():
    assert precision.uses_bf16("bf16-mixed") and not precision.uses_bf16("float32")
    with pytest.raises(ValueError, match="must be resolved"):
        precision.uses_bf16("auto")


def test_the_shipped_recipes_ask_for_auto_and_resolve_by_the_cpu(fake_cpu):
    for name in RECIPES:
        config = load_config(REPO / "configs" / f"{name}.yaml")
        assert config.train.precision == "auto", name
        fake_cpu(AVX2_CPU)
        assert precision.resolve_config(config, precision.cpu_device()).train.precision == "float32", name
        fake_cpu(AMX_CPU)
        assert precision.resolve_config(config, precision.cpu_device()).train.precision == "bf16-mixed", name
    assert load_config(REPO / "configs" / "baseline.yaml").train.precision == "float32"


def test_the_command_line_takes_auto_and_parity_only_what_it_checks():
    from fmnist_cli.main import build_parser

    parser = build_parser()
    for command in ("train", "compare"):
        assert parser.parse_args([command, "--precision", "auto"]).precision == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(["parity", "--precision", "auto"])


def test_parity_says_which_precision_it_checks(fake_cpu):
    from fmnist_cli.parity import checked_line

    fake_cpu(AVX2_CPU)
    assert checked_line("float32", "auto") == (
        "parity checks float32 (--precision); the config trains in auto: float32 on this CPU"
    )
    fake_cpu(AMX_CPU)
    assert checked_line("bf16-mixed", "auto").endswith("auto: bf16-mixed on this CPU")
    assert checked_line("float32", "bf16-mixed").endswith("the config trains in bf16-mixed")


# ---------------------------------------------------------------------------------- a training, end to end


@pytest.mark.parametrize(
    "engine, cpu, expected",
    [("lightning", AVX2_CPU, "float32"), ("keras", AVX2_CPU, "float32"), ("lightning", AMX_CPU, "bf16-mixed")],
    ids=["lightning-avx2", "keras-avx2", "lightning-amx"],
)
def test_fast91_trains_in_the_precision_the_cpu_computes_natively_and_says_so(
    engine, cpu, expected, fake_cpu, real_data_dir, tmp_path, capsys
):
    from fmnist.training import train_run

    fake_cpu(cpu)
    config = with_overrides(
        load_config(REPO / "configs" / "fast91.yaml"),
        {"train.epochs": 1, "data.limit_train": 600, "data.limit_test": 100},
    )
    run_dir = tmp_path / "run"
    result = train_run(engine, config, run_dir, data_dir=str(real_data_dir))
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"precision: {expected} (auto: the CPU, "), first
    info = json.loads((run_dir / rundir.RUN_INFO_FILE).read_text())
    assert (info["precision"], info["precision_asked"]) == (expected, "auto")
    assert info["config"]["train"]["precision"] == expected  # the config it trained, as config.yaml
    assert load_config(run_dir / rundir.CONFIG_FILE).train.precision == expected
    assert (result["precision"], result["precision_asked"]) == (expected, "auto")
    assert json.loads((run_dir / rundir.TEST_METRICS_FILE).read_text())["precision"] == expected


def test_an_explicit_precision_wins_over_the_cpu(fake_cpu, real_data_dir, tmp_path, capsys):
    from fmnist.training import train_run

    fake_cpu(AVX2_CPU)
    config = with_overrides(
        load_config(REPO / "configs" / "fast91.yaml"),
        {"train.epochs": 1, "data.limit_train": 300, "data.limit_test": 100, "train.precision": "bf16-mixed"},
    )
    result = train_run("lightning", config, tmp_path / "run", data_dir=str(real_data_dir))
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == "precision: bf16-mixed"
    assert "without bfloat16 instructions" in err  # the warning still says what it costs
    assert (result["precision"], result["precision_asked"]) == ("bf16-mixed", "bf16-mixed")


# ---------------------------------------------------------------------------------- fmnist compare


SHA = {"train-images-idx3-ubyte": "a" * 64}


def _run_record(config, asked: str | None = None, drop_asked: bool = False) -> dict:
    from fmnist.training import run_record

    record = run_record("keras", config, SimpleNamespace(sha256=SHA), asked=asked)
    if drop_asked:  # a run made before `auto` existed
        del record["precision_asked"]
    return record


def _strong():
    return load_config(REPO / "configs" / "strong.yaml")


def test_runs_from_before_auto_match_auto_where_the_cpu_resolves_it_to_their_precision(fake_cpu):
    """strong.yaml's runs trained with `precision: bf16-mixed` (no `precision_asked`): the recipe
    now asks for auto, and on a CPU with AMX that is what they trained in."""
    from compare.runner import differences, requested_record

    old = _run_record(with_overrides(_strong(), {"train.precision": "bf16-mixed"}), drop_asked=True)
    asked = requested_record("keras", _strong(), SHA)
    assert asked["precision"] == "auto"
    fake_cpu(AMX_CPU)
    assert differences(old, asked) == []
    fake_cpu(AVX2_CPU)
    assert differences(old, asked) == ["precision: run 'bf16-mixed', asked 'auto' (float32 on this CPU)"]
    # asked explicitly, what it trained in decides, however the run was asked
    explicit = requested_record("keras", with_overrides(_strong(), {"train.precision": "bf16-mixed"}), SHA)
    assert differences(old, explicit) == []
    resolved = _run_record(with_overrides(_strong(), {"train.precision": "bf16-mixed"}), asked="auto")
    assert differences(resolved, explicit) == []
    f32 = requested_record("keras", with_overrides(_strong(), {"train.precision": "float32"}), SHA)
    assert differences(resolved, f32) == ["precision: run 'bf16-mixed', asked 'float32'"]


def test_a_run_that_asked_auto_answers_auto_wherever_it_resolved_it(fake_cpu):
    from compare.runner import differences, requested_record

    fake_cpu(AVX2_CPU)
    for trained in ("float32", "bf16-mixed"):  # on this CPU, or on a GPU with bf16
        record = _run_record(with_overrides(_strong(), {"train.precision": trained}), asked="auto")
        assert differences(record, requested_record("keras", _strong(), SHA)) == []


def test_the_compare_plan_reuses_old_bf16_runs_for_auto_on_a_cpu_with_amx(fake_cpu, tmp_path):
    from compare.runner import plan, run_dir_for

    old_config = with_overrides(_strong(), {"train.precision": "bf16-mixed"})
    for engine in ("keras", "lightning"):
        run_dir = run_dir_for(tmp_path, engine, 0)
        run_dir.mkdir(parents=True)
        record = _run_record(with_overrides(old_config, {"seed": 0}), drop_asked=True)
        rundir.write_run_info(run_dir, {**record, "engine": engine})
        rundir.write_json(run_dir / rundir.TEST_METRICS_FILE, {"engine": engine})
    fake_cpu(AMX_CPU)
    assert {p.action for p in plan(_strong(), [0], tmp_path, SHA)} == {"reuse"}
    fake_cpu(AVX2_CPU)
    with pytest.raises(FmnistError, match=r"precision: run 'bf16-mixed', asked 'auto' \(float32 on this CPU\)"):
        plan(_strong(), [0], tmp_path, SHA)


# ---------------------------------------------------------------------------------- the report


def _finished_run(path: Path, engine: str, config, test: dict) -> Path:
    from fmnist.config import save_config

    path.mkdir(parents=True)
    save_config(config, path / rundir.CONFIG_FILE)
    rundir.write_json(path / rundir.TEST_METRICS_FILE, {"engine": engine, **test})
    (path / rundir.METRICS_FILE).write_text("epoch,train_loss\n1,0.5\n")
    rundir.write_predictions(path / rundir.PREDICTIONS_FILE, np.zeros((4, 10), np.float32), np.arange(4) % 10)
    for name in rundir.RESULT_FILES:
        if not (path / name).exists():
            (path / name).write_text("")
    return path


def test_the_report_compares_runs_by_what_they_trained_in(tmp_path):
    from compare.report_runs import check_comparable, load_run

    base = with_overrides(_strong(), {"data.limit_test": 4})
    old = _finished_run(tmp_path / "old", "keras", with_overrides(base, {"train.precision": "bf16-mixed"}), {})
    new = _finished_run(
        tmp_path / "new",
        "lightning",
        with_overrides(base, {"train.precision": "bf16-mixed"}),
        {"precision": "bf16-mixed", "precision_asked": "auto"},
    )
    labels = np.arange(4) % 10
    runs = [load_run(old, labels), load_run(new, labels)]
    assert [r.config.train.precision for r in runs] == ["bf16-mixed", "bf16-mixed"]
    check_comparable(runs)  # a run from before auto and one that resolved it to the same: one comparison
    f32 = _finished_run(
        tmp_path / "f32",
        "lightning",
        with_overrides(base, {"train.precision": "float32"}),
        {"precision": "float32", "precision_asked": "auto"},
    )
    with pytest.raises(FmnistError, match=r"differ at train\.precision \('bf16-mixed' vs 'float32'\)"):
        check_comparable([load_run(old, labels), load_run(f32, labels)])
