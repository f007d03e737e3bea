"""`fmnist serve`: open the models (exporting run directories in a child process), then run the
app in uvicorn. With --workers N, uvicorn starts N processes that each open the same .onnx
files from the settings passed in the environment (uvicorn needs an import string then)."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import FastAPI

from fmnist.errors import FmnistError
from serving.app import create_app
from serving.limits import MB, Limits
from serving.models import DEFAULT_THREADS, load_models
from serving.testset import load_test_set

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
SETTINGS_ENV = "FMNIST_SERVE_SETTINGS"  # JSON of `Settings`, for worker processes


@dataclass
class Settings:
    models: list[str]  # .onnx paths (NAME=PATH to name one), run directories already exported
    data_dir: str | None = None
    max_upload_bytes: int = Limits().max_upload_bytes
    max_images: int = Limits().max_images
    threads: int = DEFAULT_THREADS

    def build(self, log: Callable[[str], None] = print) -> FastAPI:
        models = load_models(self.models, self.data_dir, self.threads, log=log)
        test_set, note = load_test_set(self.data_dir)
        return create_app(models, Limits(self.max_upload_bytes, self.max_images), test_set, note)


def app_from_env() -> FastAPI:
    """The app of one worker process (uvicorn's factory, --workers > 1)."""
    raw: dict[str, Any] = json.loads(os.environ[SETTINGS_ENV])
    return Settings(**raw).build(log=lambda _: None)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_port(host: str, port: int) -> None:
    """A clear one-line error for a port in use, before the models are loaded."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise FmnistError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port or --host"
            ) from None


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def serve(
    models: list[str],
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    workers: int = 1,
    data_dir: str | None = None,
    max_upload_mb: float = Limits().max_upload_bytes / MB,
    max_images: int = Limits().max_images,
    threads: int = DEFAULT_THREADS,
    access_log: bool = True,
) -> None:
    import uvicorn

    port = port or _free_port(host)  # --port 0: any free port, and the banner says which
    check_port(host, port)
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    settings = Settings(models, data_dir, int(max_upload_mb * MB), max_images, threads)
    app = settings.build(log)  # the models are exported and opened once here, errors said before binding
    settings.models = [f"{m.name}={m.path}" for m in app.state.models]
    names = ", ".join(f"{m.name} ({m.engine})" for m in app.state.models)
    shown = f"[{host}]" if ":" in host else host
    log(f"fmnist serve: {names} on http://{shown}:{port}/ (API docs at /docs; Ctrl-C stops)")
    if app.state.test_set is None:
        log(f"fmnist serve: note: {app.state.note}")
    if not is_loopback(host):
        log(
            f"fmnist serve: warning: listening on {host}, reachable from other machines; the server has no"
            " authentication or TLS: put it behind a reverse proxy for anything public (docs/serve.md)"
        )
    common = dict(host=host, port=port, access_log=access_log, log_level="info", timeout_graceful_shutdown=5)
    if workers == 1:
        uvicorn.run(app, **common)
        return
    del app
    os.environ[SETTINGS_ENV] = json.dumps(asdict(settings))
    uvicorn.run("serving.server:app_from_env", factory=True, workers=workers, **common)
