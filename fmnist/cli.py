"""The `fmnist` command: train either backend, evaluate a run, check the data.

Errors a user can fix (config, data, paths) print one line and exit 2; `--debug` shows the
traceback instead. Frameworks are imported only by the subcommand that needs one.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from fmnist.config import PRECISIONS
from fmnist.errors import FmnistError, reason as error_reason

DEFAULT_CONFIG = Path("configs/baseline.yaml")
BACKEND_NAMES = ("keras", "lightning")
PRECISION_HELP = ("override train.precision: float32, or bf16-mixed (fast on GPUs and on CPUs with"
                  " bfloat16 instructions, emulated and slow on others)")


def _int_at_least(minimum: int):
    """An argparse type for whole numbers >= minimum, with a message naming the value."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="folder with the four Fashion-MNIST IDX files (default: $FMNIST_DATA_DIR,"
                        " then the user cache, downloading there if missing)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fmnist",
        description="Train one CNN on Fashion-MNIST in Keras or PyTorch Lightning, and compare the two.",
    )
    debug_help = "show full tracebacks instead of one-line errors"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    common = argparse.ArgumentParser(add_help=False)  # --debug also after the subcommand
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", parents=[common], help="train one backend on a config and write a run directory",
                           description="Train one backend and write config, metrics, plots, model and"
                           " TensorBoard logs to a run directory.")
    train.add_argument("--backend", choices=BACKEND_NAMES, help="which framework trains (required unless --resume)")
    train.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"YAML config (default: {DEFAULT_CONFIG})")
    train.add_argument("--epochs", type=_positive_int, help="override train.epochs")
    train.add_argument("--batch-size", type=_positive_int, help="override train.batch_size")
    train.add_argument("--lr", type=_positive_float, help="override train.optimizer.lr")
    train.add_argument("--precision", choices=PRECISIONS, help=PRECISION_HELP)
    train.add_argument("--seed", type=_non_negative_int, help="override the seed (weights, dropout, batch order)")
    train.add_argument("--run-dir", type=Path, help="where to write (default: runs/<config>-<backend>-seed<N>-<time>)")
    _add_data_dir(train)
    train.add_argument("--limit-train", type=_positive_int, help="use only the first N training images (smoke runs)")
    train.add_argument("--limit-test", type=_positive_int, help="test on only the first N test images")
    train.add_argument("--devices", type=_positive_int, help="train on N devices (override train.devices):"
                       " Lightning DDP processes or Keras MirroredStrategy replicas; CPU cores stand in without GPUs")
    train.add_argument("--strategy", choices=("auto", "ddp", "mirrored"),
                       help="override train.strategy: ddp (Lightning) or mirrored (Keras); auto picks by backend")
    train.add_argument("--num-nodes", type=_positive_int, help="override train.num_nodes (Lightning, multi-node DDP)")
    train.add_argument("--overwrite", action="store_true", help="replace the run that --run-dir holds (only that"
                       " run's own files go; a folder holding no run is refused all the same)")
    train.add_argument("--resume", type=Path, metavar="RUN_DIR",
                       help="continue an interrupted run from its last finished epoch (its own config and backend)")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", parents=[common], help="re-load a run's saved model and measure it on the test set",
                              description="Re-load the model saved in RUN_DIR, evaluate it on the same test"
                              " images it was tested on, print the metrics and write evaluation.json.")
    evaluate.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    evaluate.add_argument("--tta", choices=["flip"],
                          help="also report test-time augmentation: the mean of the image's and its mirror's"
                          " softmax (reported apart from plain accuracy)")
    _add_data_dir(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)

    data = sub.add_parser("data", parents=[common], help="verify (or download) the data and say where it is",
                          description="Find the Fashion-MNIST files, download them if missing, verify their"
                          " checksums, and print where they are.")
    _add_data_dir(data)
    data.set_defaults(func=cmd_data)

    parity = sub.add_parser("parity", parents=[common], help="check numerically that both backends are the same model",
                            description="Structure, weight transfer both ways (logits to 1e-5) and lockstep"
                            " training (gradients and losses over the first steps, SGD and Adam), float32 on"
                            " CPU. Writes parity.json; exits 1 if a check fails. With --precision bf16-mixed:"
                            " where the two round under bf16 (parity-bf16-mixed.json).")
    parity.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"YAML config (default: {DEFAULT_CONFIG})")
    parity.add_argument("--out", type=Path, default=Path("reports/parity"), help="folder for parity.json")
    parity.add_argument("--steps", type=_positive_int, default=10, help="lockstep training steps (default: 10)")
    parity.add_argument("--images", type=_positive_int,
                        help="test images for weight transfer (default: 1000); with --precision bf16-mixed,"
                        " training images for the forward checks (default: the config's batch size)")
    parity.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="float32 (default): the math, at float32 and float64; bf16-mixed: whether both"
                        " frameworks round in the same places under their bf16 mixed policies (per-layer"
                        " forward, logits, lockstep against float32)")
    _add_data_dir(parity)
    parity.set_defaults(func=cmd_parity)

    compare = sub.add_parser("compare", parents=[common], help="train both backends over seeds and write a side-by-side report",
                             description="Train Keras and Lightning for each seed (each in its own process),"
                             " or reuse finished runs given with --runs, and write report.md, report.html,"
                             " figures and summary.json with an equivalence verdict.")
    compare.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"YAML config (default: {DEFAULT_CONFIG})")
    compare.add_argument("--seeds", type=_non_negative_int, nargs="+", help="seeds (default: the config's compare.seeds)")
    compare.add_argument("--epochs", type=_positive_int, help="override train.epochs")
    compare.add_argument("--precision", choices=PRECISIONS, help=PRECISION_HELP)
    compare.add_argument("--out", type=Path, help="report folder (default: reports/<config name>)")
    compare.add_argument("--runs", type=Path, nargs="+", help="finished run directories to compare instead of training")
    compare.add_argument("--limit-train", type=_positive_int, help="use only the first N training images")
    compare.add_argument("--limit-test", type=_positive_int, help="test on only the first N test images")
    compare.add_argument("--rerun-stale", action="store_true",
                         help="retrain, in place, runs in --out made with other settings than asked for (config"
                         " after overrides, seed, precision, data); without it such runs stop the compare")
    _add_data_dir(compare)
    compare.set_defaults(func=cmd_compare)

    bench = sub.add_parser("benchmark", parents=[common], help="measure training and inference speed of both backends",
                           description="Training and inference images/s, step-time median and p90, peak memory,"
                           " warm-up, and Lightning's overhead over a plain PyTorch loop, for each backend and"
                           " variant; each measurement in its own process, repeats alternating the backends."
                           " Writes benchmark.json, benchmark.md and benchmark.png.")
    bench.add_argument("--backend", default="keras,lightning", help="comma-separated: keras, lightning"
                       " (lightning also runs the plain torch loop it is compared with; default: both)")
    bench.add_argument("--device", default="auto", help="auto (cuda when torch sees one), cpu or cuda")
    bench.add_argument("--batch-size", default="128", help="comma-separated batch sizes (default: 128)")
    bench.add_argument("--steps", type=_positive_int, default=200, help="timed training steps per repeat (default: 200)")
    bench.add_argument("--warmup", type=_positive_int, default=20,
                       help="untimed steps first, compilation included, reported apart (default: 20)")
    bench.add_argument("--repeats", type=_positive_int, default=3, help="fresh processes per measurement (default: 3)")
    bench.add_argument("--variants", help="comma-separated subset: eager, channels_last, bf16, channels_last+bf16,"
                       " compile (torch);"
                       " tf, tf-graph, tf-xla, tf-bf16, jax, torch (Keras backends); default: all but tf-graph")
    bench.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"YAML config (default: {DEFAULT_CONFIG})")
    bench.add_argument("--out", type=Path, help="results folder (default: benchmarks/results/<date>-<cpu|gpu>)")
    bench.add_argument("--data", choices=("auto", "real", "synthetic"), default="auto",
                       help="real Fashion-MNIST, or synthetic uint8 images of the same shape (auto: synthetic"
                       " below 10 steps)")
    bench.add_argument("--torch-threads", type=_positive_int, help="torch.set_num_threads in the torch workers")
    bench.add_argument("--time-to-accuracy", type=_positive_float, metavar="ACC",
                       help="also train each backend on full data until this test accuracy (e.g. 0.91; minutes)")
    bench.add_argument("--only-time-to-accuracy", action="store_true", help="skip the throughput measurements")
    bench.add_argument("--tta-config", type=Path, help="config trained for --time-to-accuracy (default: --config)")
    bench.add_argument("--max-epochs", type=_positive_int,
                       help="epoch budget for --time-to-accuracy (default: the config's epochs, its schedule unchanged)")
    bench.add_argument("--timeout", type=_positive_float, default=900.0, help="seconds per measurement process")
    _add_data_dir(bench)
    bench.set_defaults(func=cmd_benchmark)

    predict = sub.add_parser("predict", parents=[common], help="classify your own pictures with a trained model",
                             description="Read pictures (PNG, JPEG, WebP, BMP, GIF, TIFF; files or folders),"
                             " convert each as Fashion-MNIST was made (trim, longest edge to 28, sharpen, centre,"
                             " negate; a 28x28 picture on a dark background passes unchanged) and print each"
                             " one's class. A bad picture is reported in one line; the others are still"
                             " predicted, and the exit status is 1.")
    predict.add_argument("model", type=Path, metavar="RUN_DIR_OR_ONNX",
                         help="a finished run directory or an exported .onnx")
    predict.add_argument("inputs", type=Path, nargs="+", metavar="IMAGE_OR_FOLDER")
    predict.add_argument("--top-k", type=_positive_int, default=3, help="classes listed per picture (default: 3)")
    predict.add_argument("--json", action="store_true", help="one JSON object per picture instead of the table")
    predict.add_argument("--show-input", type=Path, metavar="DIR",
                         help="write the 28x28 image the network saw, per picture")
    predict.set_defaults(func=cmd_predict)

    export = sub.add_parser("export", parents=[common],
                            help="export a run's model to ONNX, checked against the trained model",
                            description="Export with the framework's own exporter (float32, input 'pixels'"
                            " [N, 28, 28, 1] raw 0-255, output 'logits' [N, 10]), then run the file in onnxruntime on"
                            " all 10,000 test images against the framework's float32 model: logits within the"
                            " parity rule and identical classes, or exit 1. Writes export.json.")
    export.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    export.add_argument("--format", choices=("onnx",), default="onnx", help="only onnx so far")
    export.add_argument("--out", type=Path, help="the .onnx file (default: RUN_DIR/model.onnx)")
    export.add_argument("--check", type=Path, metavar="ONNX", help="only check an existing export against the run")
    _add_data_dir(export)
    export.set_defaults(func=cmd_export)

    infer = sub.add_parser("benchmark-inference", parents=[common],
                           help="onnxruntime vs each framework's own inference",
                           description="Batch-1 latency (p50, p99) and batch-256 throughput of each run in its"
                           " framework (float32) and in onnxruntime, same images; and `fmnist predict` on a folder"
                           " of synthetic JPEG photos (images/s and where the time goes). Writes inference.json and"
                           " inference.md.")
    infer.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR",
                       help="finished runs (a Keras and a Lightning one)")
    infer.add_argument("--out", type=Path, help="results folder (default: benchmarks/results/<date>-cpu-inference)")
    infer.add_argument("--latency-runs", type=_positive_int, default=1000, help="timed batch-1 calls (default: 1000)")
    infer.add_argument("--batches", type=_positive_int, default=40, help="timed batch-256 calls (default: 40)")
    infer.add_argument("--photos", type=_positive_int, default=1000,
                       help="synthetic JPEG photos for predict (default: 1000)")
    _add_data_dir(infer)
    infer.set_defaults(func=cmd_benchmark_inference)

    serve = sub.add_parser("serve", parents=[common], help="a web page and a JSON API running models side by side",
                           description="Serve exported models (or run directories, exported first in a child"
                           " process) in onnxruntime: a page at / (upload, draw or pick a test image; every"
                           " model's top 3 side by side; where the models disagree), a JSON API under /v1, docs"
                           " at /docs. The server never loads TensorFlow or torch. See docs/serve.md.")
    serve.add_argument("models", nargs="+", metavar="MODEL",
                       help="an exported .onnx file or a run directory; NAME=PATH names it (default: its backend)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine"
                       " only; 0.0.0.0 exposes it: see docs/serve.md)")
    serve.add_argument("--port", type=_int_at_least(0), default=8000, help="port (default: 8000)")
    serve.add_argument("--workers", type=_positive_int, default=1, help="server processes (default: 1)")
    serve.add_argument("--threads", type=_positive_int, default=1,
                       help="onnxruntime threads per model and process (default: 1; requests run in parallel)")
    serve.add_argument("--max-upload-mb", type=_positive_float, default=5.0,
                       help="largest request body in MB, 413 above (default: 5)")
    serve.add_argument("--max-images", type=_positive_int, default=64, help="images per request, 413 above (default: 64)")
    serve.add_argument("--no-access-log", action="store_true", help="do not log every request")
    _add_data_dir(serve)
    serve.set_defaults(func=cmd_serve)
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from fmnist import distributed
    from fmnist.config import load_config, with_overrides
    from fmnist.rundir import default_run_dir
    from fmnist.training import format_summary, resume_run, train_run

    overrides = {
        "train.epochs": args.epochs,
        "train.batch_size": args.batch_size,
        "train.optimizer.lr": args.lr,
        "train.precision": args.precision,
        "seed": args.seed,
        "data.limit_train": args.limit_train,
        "data.limit_test": args.limit_test,
        "train.devices": args.devices,
        "train.strategy": args.strategy,
        "train.num_nodes": args.num_nodes,
    }
    if args.resume:
        given = [f"--{k.split('.')[-1].replace('_', '-')}" for k, v in overrides.items() if v is not None]
        if given or args.backend or args.run_dir:
            raise FmnistError(f"--resume continues a run with its own settings; drop {', '.join(given) or '--backend/--run-dir'}")
        run_dir = args.resume
    else:
        if not args.backend:
            raise FmnistError("--backend is required (keras or lightning), unless --resume RUN_DIR")
        config = with_overrides(load_config(args.config), overrides)
        run_dir = (args.run_dir or (None if distributed.is_primary() else distributed.shared_run_dir())
                   or default_run_dir(config.name, args.backend, config.seed))
    try:
        if args.resume:
            result = resume_run(run_dir, data_dir=args.data_dir)
        else:
            result = train_run(args.backend, config, run_dir, data_dir=args.data_dir, overwrite=args.overwrite)
    except KeyboardInterrupt:
        print(f"\nfmnist: interrupted; the last finished epoch is saved in {run_dir}/checkpoints."
              f"\nResume with: fmnist train --resume {run_dir}", file=sys.stderr)
        return 130 if distributed.is_primary() else 0  # the first process says how to resume
    if result is None:  # an extra process of a multi-process training: the first one reports
        return 0
    print(format_summary(result))
    print(f"run directory: {run_dir}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from fmnist.training import evaluate_run, format_summary

    result = evaluate_run(args.run_dir, data_dir=args.data_dir, tta=args.tta == "flip")
    print(format_summary(result))
    if "flip_tta" in result:
        tta = result["flip_tta"]
        print(f"with flip test-time augmentation: test accuracy {tta['test_accuracy']:.2%}"
              f" ({tta['test_accuracy'] - result['test_accuracy']:+.2%}), test loss {tta['test_loss']:.4f}")
    print(f"written: {args.run_dir / 'evaluation.json'}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from fmnist.datasets import describe, load_fashion_mnist

    print(describe(load_fashion_mnist(args.data_dir)))
    return 0


def cmd_parity(args: argparse.Namespace) -> int:
    import compare.parity as parity  # loads torch before TensorFlow
    from fmnist.config import load_config
    from fmnist.datasets import load_fashion_mnist
    from fmnist.rundir import write_json
    from fmnist.splits import make_splits

    config = load_config(args.config)
    splits = make_splits(load_fashion_mnist(args.data_dir), config)
    if args.precision == "bf16-mixed":
        from compare.bf16_parity import format_layers, run_bf16_parity

        result = run_bf16_parity(config, splits.train, images=args.images or config.train.batch_size,
                                 steps=args.steps, batch_size=config.train.batch_size)
        written = args.out / "parity-bf16-mixed.json"
        print(format_layers(result.layers), end="\n\n")
    else:
        result = parity.run_parity(config, splits.test.images[: args.images or 1000], splits.train,
                                   steps=args.steps, batch_size=config.train.batch_size)
        written = args.out / "parity.json"
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(written, {"config": str(args.config), "precision": args.precision, **result.to_dict()})
    print(parity.format_table(result))
    for note in result.notes:
        print(f"note: {note}")
    print(f"{'PASSED' if result.passed else 'FAILED'}: {sum(c.passed for c in result.checks)} of"
          f" {len(result.checks)} checks pass; details in {written}")
    return 0 if result.passed else 1


def cmd_compare(args: argparse.Namespace) -> int:
    from compare.report import build_report, check_report_dir
    from compare.runner import train_all
    from fmnist.config import load_config, with_overrides
    from fmnist.datasets import load_fashion_mnist

    config = load_config(args.config)
    out = args.out or Path("reports") / config.name
    check_report_dir(out)  # before any training: --out must be new, empty or a compare report
    data = load_fashion_mnist(args.data_dir)
    if args.runs:
        runs = args.runs
    else:
        passed_on = (("epochs", "--epochs"), ("precision", "--precision"), ("limit_train", "--limit-train"),
                     ("limit_test", "--limit-test"), ("data_dir", "--data-dir"))
        extra = [flag for name, flag in passed_on
                 for flag in ([flag, str(getattr(args, name))] if getattr(args, name) is not None else [])]
        requested = with_overrides(config, {"train.epochs": args.epochs, "train.precision": args.precision,
                                            "data.limit_train": args.limit_train, "data.limit_test": args.limit_test})
        runs = train_all(args.config, args.seeds or list(config.compare.seeds), out, extra, config=requested,
                         data_sha256=data.sha256, data_dir=args.data_dir, rerun_stale=args.rerun_stale)
    test_images = data.test_images
    summary = build_report(runs, out, test_images=test_images)
    print(summary["equivalence"]["verdict"])
    print(f"report: {out / 'report.md'} and {out / 'report.html'}")
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from compare.benchmark import ALL_VARIANTS, BenchmarkError, parse_batch_sizes, parse_list, run_benchmark

    if args.time_to_accuracy is not None and not 0 < args.time_to_accuracy < 1:
        raise BenchmarkError(f"--time-to-accuracy: a test accuracy between 0 and 1, got {args.time_to_accuracy}")
    variants = parse_list(args.variants, ALL_VARIANTS, "--variants") if args.variants is not None else None
    result = run_benchmark(
        backends=parse_list(args.backend, BACKEND_NAMES, "--backend"), device=args.device,
        batch_sizes=parse_batch_sizes(args.batch_size), steps=args.steps, warmup=args.warmup, repeats=args.repeats,
        config=args.config, out=args.out, variants=variants, data_dir=args.data_dir, data=args.data,
        timeout=args.timeout, torch_threads=args.torch_threads, time_to_accuracy=args.time_to_accuracy,
        tta_max_epochs=args.max_epochs, tta_config=args.tta_config, throughput=not args.only_time_to_accuracy, log=lambda line: print(line, file=sys.stderr, flush=True))
    from compare.bench_stats import markdown_table, time_to_accuracy_table

    if result["measurements"]:
        print(markdown_table(result["measurements"]))
    if result["time_to_accuracy"]:
        print(time_to_accuracy_table(result["time_to_accuracy"]))
    failed = [m for m in result["measurements"] if m["status"] == "error"]
    failed += [r for r in result["time_to_accuracy"] or [] if r.get("status") != "ok"]
    return 1 if failed and len(failed) == len(result["measurements"]) + len(result["time_to_accuracy"] or []) else 0


def cmd_predict(args: argparse.Namespace) -> int:
    from fmnist.predicting import json_lines, predict_files, table

    result = predict_files(args.model, args.inputs, top_k=args.top_k, show_input=args.show_input)
    if args.json:
        print("\n".join(json_lines(result)))
    elif result.predictions:
        from rich.console import Console

        Console(width=None if sys.stdout.isatty() else 200).print(table(result))  # piped: no folded names
    for path, why in result.failures:
        print(f"fmnist: error: {path}: {why}", file=sys.stderr)
    if args.show_input and result.predictions and not args.json:
        print(f"the 28x28 inputs the network saw: {args.show_input}")
    return 1 if result.failures else 0


def cmd_export(args: argparse.Namespace) -> int:
    from compare.export_check import export_run, summary_line

    result = export_run(args.run_dir, out=args.out, data_dir=args.data_dir, check_only=args.check)
    if not result["passed"]:
        print(f"fmnist: error: export check failed, {summary_line(result)}; details in {result['report']}",
              file=sys.stderr)
        return 1
    print(summary_line(result))
    print(f"written: {result['onnx']} and {result['report']}" if not args.check else f"written: {result['report']}")
    return 0


def cmd_benchmark_inference(args: argparse.Namespace) -> int:
    from compare.bench_inference import run_inference_benchmark

    result = run_inference_benchmark(args.runs, out=args.out, latency_runs=args.latency_runs, batches=args.batches,
                                     photos=args.photos, data_dir=args.data_dir,
                                     log=lambda line: print(line, file=sys.stderr, flush=True))
    print(result["markdown"])
    print(f"written: {result['out']}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from serving.server import serve

    serve(args.models, host=args.host, port=args.port, workers=args.workers, data_dir=args.data_dir,
          max_upload_mb=args.max_upload_mb, max_images=args.max_images, threads=args.threads,
          access_log=not args.no_access_log)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except FmnistError as exc:
        if args.debug:
            raise
        print(f"fmnist: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fmnist: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # disk full, permissions, a vanished file: the user's to fix
        if args.debug:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"fmnist: error: {exc.strerror or error_reason(exc)}{where}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: one line by default, the traceback with --debug
        if args.debug:
            raise
        print(f"fmnist: internal error: {type(exc).__name__}: {error_reason(exc)}"
              " (run again with --debug for the traceback, and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
