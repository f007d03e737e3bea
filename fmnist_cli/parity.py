"""`fmnist parity`: are the two engines the same model (float32 math, or bf16 rounding places)?"""

from __future__ import annotations

import argparse
from pathlib import Path

from fmnist_cli.options import add_config, add_data_dir, positive_int
from fmnist.precision import RESOLVED
from fmnist import engines as registry
from fmnist.engines import DEFAULT_PAIR


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parity = sub.add_parser(
        "parity",
        parents=parents,
        help="check numerically that two engines are the same model",
        description="Structure, weight transfer both ways (logits to 1e-5) and lockstep"
        " training (gradients and losses over the first steps, SGD and Adam), float32 and"
        " float64, on the CPU or (--device cuda) a GPU. Writes parity.json; exits 1 if a check"
        " fails. With --precision bf16-mixed: where the two round under bf16 (parity-bf16-mixed.json).",
    )
    add_config(parity)
    parity.add_argument(
        "--engines",
        "--backends",  # the old flag, still accepted
        dest="engines",
        default=",".join(DEFAULT_PAIR),
        help=f"the two engines to hold against each other, comma-separated, from {', '.join(registry.names())}"
        f" (default: {','.join(DEFAULT_PAIR)}); each runs in a process of its own",
    )
    parity.add_argument("--out", type=Path, default=Path("reports/parity"), help="folder for parity.json")
    parity.add_argument("--steps", type=positive_int, default=10, help="lockstep training steps (default: 10)")
    parity.add_argument(
        "--images",
        type=positive_int,
        help="test images for weight transfer (default: 1000); with --precision bf16-mixed,"
        " training images for the forward checks (default: the config's batch size)",
    )
    parity.add_argument(
        "--precision",
        choices=RESOLVED,
        default="float32",
        help="float32 (default): the math, at float32 and float64; bf16-mixed: whether both"
        " frameworks round in the same places under their bf16 mixed policies (per-layer"
        " forward, logits, lockstep against float32). Whatever the config's train.precision"
        " (auto among them): parity checks the precision asked here",
    )
    parity.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="where both engines compute (default: cpu, every GPU hidden from them); cuda: the GPU,"
        " float32 without TF32, deterministic algorithms where the framework has them; an engine"
        " whose framework sees no GPU refuses",
    )
    parity.add_argument(
        "--repeat",
        action="store_true",
        help="also run each engine's lockstep of the config's optimizer (float32; with --precision"
        " bf16-mixed its bf16 one) once more in a fresh process, and record how far the two runs"
        " differ: 0 where the path is deterministic",
    )
    add_data_dir(parity)
    parity.set_defaults(func=run)


#: What `fmnist parity` writes into its results file, so that it replaces only files it wrote.
WRITTEN_BY = "fmnist parity"


def check_replaceable(path: Path) -> None:
    """Refuse to replace a file `fmnist parity` did not write (someone's file of the same name in
    --out). Its own: a JSON object marked `written_by`, or one from before the mark (its config,
    precision, passed and checks)."""
    import json

    from fmnist.errors import FmnistError

    if path.parent.exists() and not path.parent.is_dir():
        raise FmnistError(f"--out {path.parent} exists and is not a folder")
    if not path.exists():
        return
    try:
        found = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        found = None
    ours = isinstance(found, dict) and (
        found.get("written_by") == WRITTEN_BY or {"config", "precision", "passed", "checks"} <= found.keys()
    )
    if not ours or path.is_symlink() or not path.is_file():
        raise FmnistError(
            f"{path} exists and was not written by fmnist parity; refusing to replace it: choose another --out"
        )


def checked_line(checked: str, configured: str, device: str = "cpu") -> str:
    """Which precision parity checks and where, beside what the config would train in on this CPU
    (`fmnist.precision`: `auto` resolved as `fmnist train` resolves it on the CPU)."""
    from fmnist.precision import AUTO, cpu_device, resolve

    trains = resolve(configured, cpu_device())
    said = f"{configured}: {trains} on this CPU" if configured == AUTO else trains
    where = "" if device == "cpu" else f" on {device} (--device)"
    return f"parity checks {checked} (--precision){where}; the config trains in {said}"


def run(args: argparse.Namespace) -> int:
    from fmnist.config import load_config

    from fmnist.engines import engine, parse_engines
    from fmnist.errors import FmnistError

    config = load_config(args.config)
    engines = parse_engines(args.engines)
    if len(engines) != 2:
        raise FmnistError(f"--engines: parity holds two engines against each other, not {len(engines)}")
    if args.precision == "bf16-mixed":
        for name in engines:
            if not engine(name).offers("bf16"):
                raise FmnistError(f"--precision bf16-mixed: engine '{name}' offers no bf16 probe to check it with")
    written = args.out / ("parity-bf16-mixed.json" if args.precision == "bf16-mixed" else "parity.json")
    check_replaceable(written)  # before the frameworks load and the checks run
    print(checked_line(args.precision, config.train.precision, args.device), flush=True)

    from parity.result import format_table
    from parity.run import run_parity
    from fmnist.datasets import load_fashion_mnist
    from fmnist.rundir import write_json
    from fmnist.splits import make_splits

    splits = make_splits(load_fashion_mnist(args.data_dir), config)
    if args.precision == "bf16-mixed":
        from parity.bf16_dtypes import markdown
        from parity.bf16 import format_layers, run_bf16_parity

        result = run_bf16_parity(
            config,
            splits.train,
            images=args.images or config.train.batch_size,
            steps=args.steps,
            batch_size=config.train.batch_size,
            engines=engines,
            device=args.device,
            repeat=args.repeat,
        )
        print(format_layers(result.layers), end="\n\n")
        print(markdown(result.dtypes), end="\n\n")
    else:
        result = run_parity(
            config,
            splits.test.images[: args.images or 1000],
            splits.train,
            steps=args.steps,
            batch_size=config.train.batch_size,
            engines=engines,
            device=args.device,
            repeat=args.repeat,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    check_replaceable(written)  # again: the checks took a while
    write_json(
        written,
        {
            "written_by": WRITTEN_BY,
            "config": str(args.config),
            "engines": list(engines),
            "precision": args.precision,
            "device": args.device,
            **result.to_dict(),
        },
    )
    print(format_table(result))
    for note in result.notes:
        print(f"note: {note}")
    print(
        f"{'PASSED' if result.passed else 'FAILED'}: {sum(c.passed for c in result.checks)} of"
        f" {len(result.checks)} checks pass; details in {written}"
    )
    return 0 if result.passed else 1
