"""How `fmnist serve` is set up: the models' names, a stale or missing export made again in a
child process, load-test results kept, the command line's defaults and one-line errors, and that
the serving code never imports a framework (a run directory is exported in a child process).
The API itself is tested in test_serve_api.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("onnxruntime")

from fmnist import CLASS_NAMES  # noqa: E402
from serving.limits import DEFAULT_MAX_IMAGES, DEFAULT_MAX_UPLOAD_BYTES  # noqa: E402
from serving.models import load_models  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("tensorflow", "keras", "torch", "lightning", "pytorch_lightning", "jax", "torchmetrics")


def test_model_names(contract_models):
    k, lt = str(contract_models["keras"]), str(contract_models["lightning"])
    assert [m.name for m in load_models([k, lt])] == ["keras", "lightning"]
    assert [m.name for m in load_models([k, k])] == ["contract-keras", "contract-keras-2"]
    assert [m.name for m in load_models([f"mine={k}", lt])] == ["mine", "lightning"]


def test_a_stale_or_missing_export_is_made_again_in_a_child(tmp_path, monkeypatch, contract_models):
    import os

    from fmnist.errors import FmnistError
    from serving import models as served

    calls = []
    monkeypatch.setattr(served, "export_in_child", lambda run, data_dir=None: calls.append(run))
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(FmnistError, match="not a finished run directory"):
        served.resolve(run)
    (run / "test_metrics.json").write_text("{}")
    assert served.resolve(run) == run / "model.onnx" and calls == [run]  # missing: exported
    shutil.copy(contract_models["keras"], run / "model.onnx")
    assert served.resolve(run) == run / "model.onnx" and len(calls) == 1  # fresh: used as it is
    os.utime(run / "model.onnx", (1, 1))
    assert served.resolve(run) == run / "model.onnx" and len(calls) == 2  # older than the run: again
    with pytest.raises(FmnistError, match="no such"):
        served.resolve(tmp_path / "nothing")


def test_load_test_results_never_replace_earlier_ones(tmp_path, capsys):
    from serving.loadtest import main, new_results_dir

    first = new_results_dir(tmp_path, "2026-12-02")
    assert first.name == "2026-12-02-cpu-serve"
    first.mkdir()
    assert new_results_dir(tmp_path, "2026-12-02").name == "2026-12-02-cpu-serve-2"
    with pytest.raises(SystemExit) as refused:
        main(["model.onnx", "--out", str(first)])
    assert refused.value.code == 2 and "never written over" in capsys.readouterr().err


def test_serve_command_line_defaults_and_one_line_errors(contract_models, capsys):
    import socket

    from fmnist_cli.main import build_parser, main

    args = build_parser().parse_args(["serve", "m.onnx"])
    assert (args.host, args.port, args.workers) == ("127.0.0.1", 8000, 1)
    assert args.max_upload_mb * 1_000_000 == DEFAULT_MAX_UPLOAD_BYTES and args.max_images == DEFAULT_MAX_IMAGES
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", str(contract_models["keras"]), "--port", str(port)]) == 2
        assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    assert main(["serve", "/nonexistent/model.onnx", "--port", "0"]) == 2
    assert "no such .onnx file or run directory" in capsys.readouterr().err.strip().splitlines()[-1]
    from serving.server import is_loopback

    assert all(map(is_loopback, ("127.0.0.1", "::1", "localhost"))) and not any(
        map(is_loopback, ("0.0.0.0", "::", "10.0.0.5"))
    )


def test_make_tensorboard_listens_on_localhost_by_default():
    done = subprocess.run(
        ["make", "-n", "tensorboard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
    )
    line = [ln for ln in done.stdout.splitlines() if "tensorboard --logdir" in ln]
    assert line and "--host 127.0.0.1" in line[0] and "--bind_all" not in line[0], done.stdout + done.stderr


def test_the_serving_code_imports_no_framework(contract_models, run_with_blocked_imports):
    done = run_with_blocked_imports(
        FRAMEWORKS,
        f"""
        import json, io
        import serving.app, serving.server, serving.loadtest, serving.process, serving.testset, serving.browser
        import fmnist_cli.main
        from fastapi.testclient import TestClient
        from serving.server import Settings
        app = Settings([{str(contract_models["keras"])!r}, {str(contract_models["lightning"])!r}]).build(lambda _: None)
        from PIL import Image
        buf = io.BytesIO(); Image.new("L", (28, 28)).save(buf, "PNG")
        client = TestClient(app)
        assert client.post("/v1/predict", files={{"image": ("a.png", buf.getvalue(), "image/png")}}).status_code == 200
        assert client.get("/v1/models").status_code == 200
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)))
    """,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_a_run_directory_is_exported_in_a_child_process_and_served_without_frameworks(
    keras_run, real_data_dir, tmp_path, run_with_blocked_imports
):
    run = tmp_path / "run"
    shutil.copytree(keras_run, run, ignore=shutil.ignore_patterns("model.onnx", "export.json", "tensorboard"))
    done = run_with_blocked_imports(
        FRAMEWORKS,
        f"""
        import io, json
        import numpy as np
        from PIL import Image
        from fastapi.testclient import TestClient
        from serving.models import load_models
        from serving.app import create_app
        from serving.testset import load_test_set
        models = load_models([{str(run)!r}], data_dir={str(real_data_dir)!r}, log=lambda _: None)
        test_set, _ = load_test_set({str(real_data_dir)!r})
        buf = io.BytesIO(); Image.fromarray(test_set.images[0]).save(buf, "PNG")
        files = {{"image": ("t.png", buf.getvalue(), "image/png")}}
        body = TestClient(create_app(models)).post("/v1/predict", files=files).json()
        print(json.dumps(body["images"][0]["predictions"][0]))
    """,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    report = json.loads((run / "export.json").read_text())
    assert report["passed"] and (run / "model.onnx").is_file() and answer["model"] == "keras"
    logits = np.load(run / "test_predictions.npz")["logits"][0]  # the framework's own, saved by training
    assert answer["class"] == CLASS_NAMES[int(logits.argmax())]


def test_every_reason_a_picture_is_refused_has_its_status():
    from fmnist.pictures import REASONS
    from serving.app import PICTURE_ERRORS

    assert set(PICTURE_ERRORS) == set(REASONS)
