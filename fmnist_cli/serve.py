"""`fmnist serve`: exported models behind a web page and a JSON API (docs/serve.md)."""

from __future__ import annotations

import argparse

from fmnist_cli.options import add_data_dir, int_at_least, positive_float, positive_int


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser(
        "serve",
        parents=parents,
        help="a web page and a JSON API running models side by side",
        description="Serve exported models (or run directories, exported first in a child"
        " process) in onnxruntime: a page at / (upload, draw or pick a test image; every"
        " model's top 3 side by side; where the models disagree), a JSON API under /v1, docs"
        " at /docs. The server never loads TensorFlow or torch. See docs/serve.md.",
    )
    serve.add_argument(
        "models",
        nargs="+",
        metavar="MODEL",
        help="an exported .onnx file or a run directory; NAME=PATH names it (default: its backend)",
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 exposes it: see docs/serve.md)",
    )
    serve.add_argument("--port", type=int_at_least(0), default=8000, help="port (default: 8000)")
    serve.add_argument("--workers", type=positive_int, default=1, help="server processes (default: 1)")
    serve.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="onnxruntime threads per model and process (default: 1; requests run in parallel)",
    )
    serve.add_argument(
        "--max-upload-mb", type=positive_float, default=5.0, help="largest request body in MB, 413 above (default: 5)"
    )
    serve.add_argument(
        "--max-images", type=positive_int, default=64, help="images per request, 413 above (default: 64)"
    )
    serve.add_argument("--no-access-log", action="store_true", help="do not log every request")
    add_data_dir(serve, test_split_only=True)
    serve.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from serving.server import serve

    serve(
        args.models,
        host=args.host,
        port=args.port,
        workers=args.workers,
        data_dir=args.data_dir,
        max_upload_mb=args.max_upload_mb,
        max_images=args.max_images,
        threads=args.threads,
        access_log=not args.no_access_log,
    )
    return 0
