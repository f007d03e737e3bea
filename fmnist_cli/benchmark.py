"""`fmnist benchmark` (training speed) and `fmnist benchmark-inference` (onnxruntime vs each framework)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fmnist_cli.options import (
    add_config,
    add_data_dir,
    add_executor,
    executor_choice,
    non_negative_int,
    positive_float,
    positive_int,
)
from fmnist import engines as registry
from fmnist.engines import DEFAULT_PAIR

SEEDS_FLAG = "--time-to-accuracy-seeds"
#: The seeds each engine trains with for --time-to-accuracy (the only place this default is written).
DEFAULT_SEEDS = "0,1,2,3,4"
#: Renamed flags, old -> new: the old name still works for one release, with one line on stderr.
RENAMED_FLAGS = {"--tta-config": "--time-to-accuracy-config"}


class DeprecatedAlias(argparse.Action):
    """An old flag name that stores into its new name's destination and says so once on stderr."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        new = RENAMED_FLAGS[option_string]
        print(
            f"fmnist: warning: {option_string} is deprecated and will be removed in the next release; use {new}",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def parse_seeds(text: str) -> list[int]:
    """`--time-to-accuracy-seeds`: '0,1,2', '0-4' or '0-2,7' -> seeds, in order, duplicates
    dropped; each number read as `fmnist compare --seeds` reads its seeds (non_negative_int)."""
    from benchmarks.plan import BenchmarkError, parse_list

    seeds: list[int] = []
    for item in parse_list(text, None, SEEDS_FLAG):
        first, dash, last = item.partition("-")
        try:
            low = non_negative_int(first.strip())
            high = non_negative_int(last.strip()) if dash else low
        except argparse.ArgumentTypeError as exc:
            raise BenchmarkError(f"{SEEDS_FLAG}: {exc} in {item!r}") from None
        if high < low:
            raise BenchmarkError(f"{SEEDS_FLAG}: a range counts upwards, got {item!r}")
        seeds.extend(range(low, high + 1))
    return list(dict.fromkeys(seeds))


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser(
        "benchmark",
        parents=parents,
        help="measure training and inference speed of the engines",
        description="Training and inference images/s, step-time median and p90, peak memory,"
        " warm-up, and Lightning's overhead over the same step as a plain loop, for each engine and"
        " variant; each measurement in its own process, repeats alternating the engines."
        " Writes benchmark.json, benchmark.md and benchmark.png.",
    )
    speed = [e.name for e in registry.all_engines() if e.offers("speed")]
    bench.add_argument(
        "--engines",
        "--backend",
        dest="engines",
        default=",".join(speed),
        help=f"comma-separated, from {', '.join(speed)} (default: all); each runs the variants it declares"
        " (lightning also runs the plain loop its Trainer is measured against)",
    )
    bench.add_argument("--device", default="auto", help="auto (cuda when torch sees one), cpu or cuda")
    bench.add_argument("--batch-size", default="128", help="comma-separated batch sizes (default: 128)")
    bench.add_argument("--steps", type=positive_int, default=200, help="timed training steps per repeat (default: 200)")
    bench.add_argument(
        "--warmup",
        type=positive_int,
        default=20,
        help="untimed steps first, compilation included, reported apart (default: 20)",
    )
    bench.add_argument(
        "--repeats",
        type=positive_int,
        default=5,
        help="fresh processes per measurement (default: 5); a torch variant's plain loop and Lightning run"
        " back to back, a pair per repeat: 5 or more give Lightning's overhead a 90%% interval",
    )
    bench.add_argument("--variants", help=_variants_help())
    add_config(bench)
    bench.add_argument("--out", type=Path, help="results folder (default: benchmarks/results/<date>-<cpu|gpu>)")
    bench.add_argument(
        "--data",
        choices=("auto", "real", "synthetic"),
        default="auto",
        help="real Fashion-MNIST, or synthetic uint8 images of the same shape (auto: synthetic below 10 steps)",
    )
    bench.add_argument(
        "--measure-threads",
        "--torch-threads",
        dest="measure_threads",
        type=positive_int,
        help="the framework's threads in every throughput measurement (default: its own)",
    )
    bench.add_argument(
        "--time-to-accuracy",
        type=positive_float,
        metavar="ACC",
        help="also train each engine, once per seed, for the config's whole epoch budget, and report the"
        " share of runs whose final test accuracy reaches ACC (e.g. 0.91) and their seconds (minutes)",
    )
    bench.add_argument(
        SEEDS_FLAG,
        default=DEFAULT_SEEDS,
        metavar="SEEDS",
        help="seeds for --time-to-accuracy, each replacing the config's seed (not its data split) in a fresh"
        " process per engine, engines alternating: a comma list or ranges, e.g. 0-4 or 0,2,5-7"
        f" (default: {DEFAULT_SEEDS})",
    )
    bench.add_argument(
        "--time-to-accuracy-engines",
        default=",".join(DEFAULT_PAIR),
        metavar="ENGINES",
        help=f"engines --time-to-accuracy trains, comma-separated (default: {','.join(DEFAULT_PAIR)})",
    )
    bench.add_argument("--only-time-to-accuracy", action="store_true", help="skip the throughput measurements")
    bench.add_argument(
        "--time-to-accuracy-config",
        type=Path,
        metavar="NAME|PATH",
        help="config trained for --time-to-accuracy, a packaged config's name or a path (default: --config)",
    )
    bench.add_argument(
        "--tta-config", type=Path, dest="time_to_accuracy_config", action=DeprecatedAlias, help=argparse.SUPPRESS
    )
    bench.add_argument(
        "--max-epochs",
        type=positive_int,
        help="epoch budget of each --time-to-accuracy run (default: the config's epochs; its schedule spans"
        " the budget)",
    )
    bench.add_argument("--timeout", type=positive_float, default=900.0, help="seconds per measurement process")
    bench.add_argument(
        "--peak-size",
        type=positive_int,
        metavar="N",
        help="n of the n x n matrices of the GEMM peak behind MFU (default: 2048 on a CPU, 8192 on a GPU;"
        " a smaller one runs below the peak: for smoke runs)",
    )
    add_data_dir(bench)
    add_executor(bench)  # the --time-to-accuracy runs: serial, --jobs N or Ray
    bench.set_defaults(func=run_benchmark)

    infer = sub.add_parser(
        "benchmark-inference",
        parents=parents,
        help="onnxruntime vs each framework's own inference",
        description="Batch-1 latency (p50, p99) and batch-256 throughput of each run in its"
        " framework (float32) and in onnxruntime, same images; and `fmnist predict` on a folder"
        " of synthetic JPEG photos (images/s and where the time goes). Writes inference.json and"
        " inference.md.",
    )
    infer.add_argument(
        "runs", type=Path, nargs="+", metavar="RUN_DIR", help="finished runs (a Keras and a Lightning one)"
    )
    infer.add_argument("--out", type=Path, help="results folder (default: benchmarks/results/<date>-cpu-inference)")
    infer.add_argument("--latency-runs", type=positive_int, default=1000, help="timed batch-1 calls (default: 1000)")
    infer.add_argument("--batches", type=positive_int, default=40, help="timed batch-256 calls (default: 40)")
    infer.add_argument(
        "--photos", type=positive_int, default=1000, help="synthetic JPEG photos for predict (default: 1000)"
    )
    add_data_dir(infer)
    infer.set_defaults(func=run_inference)


def _variants_help() -> str:
    """The --variants help, from the variant table."""
    from benchmarks.variants import VARIANTS, names

    left_out = [v.name for v in VARIANTS.values() if not v.default]
    return (
        f"comma-separated subset: {', '.join(names('lightning'))} (torch); {', '.join(names('keras'))}"
        f" (Keras backends); default: all but {', '.join(left_out)}"
    )


def run_benchmark(args: argparse.Namespace) -> int:
    from benchmarks.orchestrate import run_benchmark
    from benchmarks.plan import BenchmarkError, parse_batch_sizes, parse_list, parse_variants
    from benchmarks.report import markdown_table, time_to_accuracy_table

    if args.time_to_accuracy is not None and not 0 < args.time_to_accuracy < 1:
        raise BenchmarkError(f"--time-to-accuracy: a test accuracy between 0 and 1, got {args.time_to_accuracy}")
    variants = parse_variants(args.variants)
    seeds = parse_seeds(args.time_to_accuracy_seeds)
    result = run_benchmark(
        engines_chosen=parse_list(args.engines, registry.names(), "--engines"),
        device=args.device,
        batch_sizes=parse_batch_sizes(args.batch_size),
        steps=args.steps,
        warmup=args.warmup,
        repeats=args.repeats,
        config=args.config,
        out=args.out,
        variants=variants,
        data_dir=args.data_dir,
        data=args.data,
        timeout=args.timeout,
        torch_threads=args.measure_threads,
        time_to_accuracy=args.time_to_accuracy,
        time_to_accuracy_max_epochs=args.max_epochs,
        time_to_accuracy_config=args.time_to_accuracy_config,
        time_to_accuracy_seeds=seeds,
        time_to_accuracy_engines=parse_list(
            args.time_to_accuracy_engines, registry.names(), "--time-to-accuracy-engines"
        ),
        throughput=not args.only_time_to_accuracy,
        log=_log,
        executor_choice=executor_choice(args),
        peak_matrix_size=args.peak_size,
    )
    if result["measurements"]:
        print(markdown_table(result["measurements"]))
    if result["time_to_accuracy"]:
        print(time_to_accuracy_table(result["time_to_accuracy"]))
    runs = (result["time_to_accuracy"] or {}).get("runs", [])
    failed = [m for m in result["measurements"] if m["status"] == "error"]
    failed += [r for r in runs if r.get("status") != "ok"]
    return 1 if failed and len(failed) == len(result["measurements"]) + len(runs) else 0


def run_inference(args: argparse.Namespace) -> int:
    from benchmarks.inference import run_inference_benchmark

    result = run_inference_benchmark(
        args.runs,
        out=args.out,
        latency_runs=args.latency_runs,
        batches=args.batches,
        photos=args.photos,
        data_dir=args.data_dir,
        log=_log,
    )
    print(result["markdown"])
    print(f"written: {result['out']}")
    return 0
