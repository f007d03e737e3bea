"""`fmnist benchmark`'s one variant table: the planner (its default list, the names it accepts)
and the worker (what a variant sets, what it refuses) both read it, and a variant is a config
setting of `fmnist train`, not a benchmark-only path."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.orchestrate import worker_env
from benchmarks.plan import BenchmarkError, Measurement, parse_variants, plan
from benchmarks.variants import VARIANTS, names, variant_config, variant_for

REPO = Path(__file__).resolve().parents[1]


ALL = ["keras", "keras-jax", "keras-torch", "pytorch", "lightning"]


def test_the_default_plan_keeps_its_order_and_leaves_out_tf_graph():
    """Which variants run by default, and in what order: each engine the variants it declares,
    by each loop it times (Lightning's plain reference first), the engines interleaved."""
    got = [(m.engine, m.runner, m.variant) for m in plan(["keras", "lightning"], None, [128])]
    assert got == [
        ("keras", "keras", "tf"),
        ("lightning", "plain torch", "eager"),
        ("keras", "keras", "tf-xla"),
        ("lightning", "lightning", "eager"),
        ("keras", "keras", "tf-bf16"),
        ("lightning", "plain torch", "channels_last"),
        ("lightning", "lightning", "channels_last"),
        ("lightning", "plain torch", "bf16"),
        ("lightning", "lightning", "bf16"),
        ("lightning", "plain torch", "channels_last+bf16"),
        ("lightning", "lightning", "channels_last+bf16"),
        ("lightning", "plain torch", "compile"),
        ("lightning", "lightning", "compile"),
    ]
    every = {(m.engine, m.variant) for m in plan(ALL, None, [128])}
    assert {("keras-jax", "jax"), ("keras-torch", "torch"), ("pytorch", "eager")} <= every
    assert not {v for _, v in every} & {"tf-graph", "jax-bf16", "channels_last+bf16+compile"}
    assert plan(["keras"], ["tf-graph"], [128]) == [Measurement("keras", "keras", "tf-graph", 128)]


def test_the_planner_and_the_worker_read_the_same_table():
    """Every name the planner accepts, the worker measures, by the engines the planner sends it to;
    each worker runs with its engine's own environment."""
    assert parse_variants(",".join(names())) == list(VARIANTS)
    planned = plan(ALL, list(VARIANTS), [32])
    assert {m.variant for m in planned} == set(VARIANTS)
    for m in planned:
        assert variant_for(m.engine, m.variant).name == m.variant
    for variant in VARIANTS.values():
        for engine in set(ALL) - set(variant.engines()):
            with pytest.raises(ValueError, match="not by"):
                variant_for(engine, variant.name)
    env = {m.variant: worker_env(m, "cpu").get("KERAS_BACKEND") for m in planned if m.runner == "keras"}
    tensorflow = {v: "tensorflow" for v in ("tf", "tf-xla", "tf-bf16", "tf-graph")}
    assert env == {**tensorflow, "jax": "jax", "jax-bf16": "jax", "torch": "torch"}
    assert all(worker_env(m, "cpu")["CUDA_VISIBLE_DEVICES"] == "" for m in planned)


def test_an_unknown_variant_is_refused_by_the_planner_and_by_the_worker():
    with pytest.raises(
        BenchmarkError,
        match="--variants: unknown 'fast'; choose from eager, channels_last, bf16, channels_last\\+bf16, compile,"
        " channels_last\\+bf16\\+compile, tf, tf-xla, tf-bf16, jax, jax-bf16, torch, tf-graph$",
    ):
        parse_variants("eager,fast")
    from benchmarks.worker import run

    spec = {
        "engine": "lightning",
        "runner": "plain torch",
        "variant": "fast",
        "config": str(REPO / "configs" / "baseline.yaml"),
    }
    result = run(spec)
    assert result["status"] == "error" and result["error"].startswith("ValueError: unknown variant 'fast'")
    result = run({**spec, "engine": "keras", "runner": "keras", "variant": "eager"})
    assert result["status"] == "error" and "run by pytorch and lightning, not by 'keras'" in result["error"]


def test_variants_are_config_settings(baseline_config):
    """A variant measures what `fmnist train` does with the matching config, not a benchmark-only path."""
    assert variant_config(baseline_config, "eager") == baseline_config
    fast = variant_config(baseline_config, "channels_last+bf16").train
    assert fast.channels_last and fast.precision == "bf16-mixed"
    assert variant_config(baseline_config, "tf-bf16").train.precision == "bf16-mixed"
    with pytest.raises(ValueError, match="unknown variant 'fast'"):
        variant_config(baseline_config, "fast")


def test_float32_variants_are_float32_on_a_bf16_config():
    """strong.yaml trains in bf16 with channels_last: 'eager' and 'tf' must still measure float32 NCHW."""
    from fmnist.config import load_config

    strong = load_config(REPO / "configs" / "strong.yaml")
    assert strong.train.precision == "auto" and strong.train.channels_last
    for variant in ("eager", "compile", "tf", "tf-xla", "tf-graph", "jax", "torch"):
        assert variant_config(strong, variant).train.precision == "float32", variant
    assert not variant_config(strong, "eager").train.channels_last
    assert variant_config(strong, "channels_last").train.precision == "float32"
    assert not variant_config(strong, "bf16").train.channels_last


def test_the_variants_help_names_every_variant(capsys, monkeypatch):
    from fmnist_cli.main import main

    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping inside a name (argparse breaks at hyphens)
    with pytest.raises(SystemExit):
        main(["benchmark", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "default: all but channels_last+bf16+compile, jax-bf16, tf-graph" in help_text
    assert all(name in help_text for name in VARIANTS)
    assert "--time-to-accuracy-config" in help_text and "--tta-config" not in help_text
