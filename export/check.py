"""`fmnist export`: a run's model to ONNX, proven to be the same model as the trained one.

The engine writes the file with its framework's own exporter (the contract's `export_onnx`, from
the run's weights in the shared layout); then onnxruntime runs it on all 10,000 test images
against the engine's own float32 logits with the same weights (the contract's `logits`, also in
float64 for the rounding allowance), and `fmnist parity`'s float32 rule decides: max |logit difference| within
1e-5, or twice the framework's own float32 rounding (its float32 logits against float64 ones)
if that is larger, and 100% identical predicted classes. `export.json` holds the figures; a
failed check keeps no ONNX file under the output name.

`transferred_onnx_parity` carries the parity claim through export: the same weights, in the
shared layout, exported by a Keras engine and by Lightning, give the same logits in
onnxruntime within the same rule.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
from pathlib import Path
from dataclasses import dataclass
from typing import Any

import numpy as np

from fmnist import CLASS_NAMES, __version__, engines, rundir
from fmnist.config import Config, load_config, with_overrides
from fmnist.datasets import load_test_split
from fmnist.errors import FmnistError
from fmnist.onnx_contract import finalize
from fmnist.onnx_model import (
    CONTRACT,
    META_ENGINE,
    META_CLASS_NAMES,
    META_CONFIG,
    META_CONTRACT,
    META_TEST_ACCURACY,
    OnnxModel,
)

FORMATS = ("onnx",)
TOLERANCE = 1e-5  # `fmnist parity`'s float32 logit tolerance, before its rounding allowance
EXPORT_FILE = rundir.ONNX_FILE
REPORT_FILE = rundir.EXPORT_REPORT_FILE
REFERENCE = "the engine's float32 model built from the run's weights (float32 policy, eval mode, no autocast)"


class ExportCheckFailed(FmnistError):
    """The exported file does not give the trained model's logits: the one line says by how much."""


@dataclass(frozen=True)
class Exporting:
    """The engine that exports a run: its export capability, and its parity capability for the
    reference logits the export is checked against (the same weights in the same framework)."""

    name: str
    export: Any
    parity: Any


def export_engine(name: str) -> Exporting:
    """The engine that exports a run of engine `name` (itself, or the one it declares: a Keras run
    on JAX or torch is exported on TensorFlow, where its .keras loads). What its exporter needs is
    checked first, as exporters only fail deep inside when something is missing. A caller loading
    two of them loads the one with modules to import first first (torch before TensorFlow)."""
    spec = engines.exporter(name)
    export = spec.capability("export")
    missing = [module for module in export.needs if importlib.util.find_spec(module) is None]
    if missing:
        raise FmnistError(f"exporting a {name} run needs {', '.join(missing)}: pip install 'fmnist-parity[export]'")
    return Exporting(spec.name, export, spec.capability("parity"))


def float32_config(run_dir: Path) -> Config:
    """The run's config with float32 compute: what an export is, whatever precision trained it."""
    return with_overrides(load_config(Path(run_dir) / rundir.CONFIG_FILE), {"train.precision": "float32"})


def metadata(run_dir: Path, engine: str, reference: str) -> dict[str, str]:
    run_dir = Path(run_dir)
    tested = run_dir / rundir.TEST_METRICS_FILE
    accuracy = rundir.read_json(tested)["test_accuracy"] if tested.is_file() else ""
    return {
        META_CLASS_NAMES: json.dumps(list(CLASS_NAMES)),
        META_CONFIG: (run_dir / rundir.CONFIG_FILE).read_text(),
        META_TEST_ACCURACY: str(accuracy),
        META_ENGINE: engine,
        META_CONTRACT: CONTRACT,
        "reference": reference,
        "fmnist_parity_version": __version__,
        "run": run_dir.resolve().name,
    }


def compare_logits(onnx_logits: np.ndarray, reference32: np.ndarray, rounding: float) -> dict[str, Any]:
    """The parity rule on two sets of logits: max |difference| within 1e-5 or twice `rounding`,
    and every predicted class the same."""
    from parity.tolerance import float32_allowed

    diff = float(np.abs(np.asarray(onnx_logits, np.float64) - reference32).max())
    allowed = float32_allowed(TOLERANCE, rounding)
    same = int((np.asarray(onnx_logits).argmax(1) == reference32.argmax(1)).sum())
    return {
        "images": len(reference32),
        "max_abs_logit_diff": diff,
        "allowed": allowed,
        "framework_float32_rounding": rounding,
        "identical_predictions": same,
        "identical_fraction": same / len(reference32),
        "passed": bool(diff <= allowed and same == len(reference32)),
    }


def verify(onnx_path: Path, images: np.ndarray, labels: np.ndarray, reference: dict[str, np.ndarray]) -> dict[str, Any]:
    """onnxruntime on `images` against the float32 and float64 reference logits."""
    onnx_logits = OnnxModel(onnx_path).logits(images)
    rounding = float(np.abs(reference["float32"] - reference["float64"]).max())
    check = compare_logits(onnx_logits, reference["float32"], rounding)
    check["onnx_test_accuracy"] = float((onnx_logits.argmax(1) == labels).mean())
    check["reference_test_accuracy"] = float((reference["float32"].argmax(1) == labels).mean())
    return check


def export_run(
    run_dir: Path,
    out: Path | None = None,
    report: Path | None = None,
    data_dir: str | None = None,
    check_only: Path | None = None,
) -> dict[str, Any]:
    """Export (or, with `check_only`, re-check an existing ONNX file) and write the report."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FmnistError(f"{run_dir} is not a run directory")
    name = rundir.engine_of(run_dir)
    target = Path(check_only or out or run_dir / EXPORT_FILE)
    if check_only is not None and not target.is_file():
        raise FmnistError(f"{target}: no such ONNX file to check")
    if check_only is None and target.is_dir():  # --out FOLDER: the file goes inside
        target = target / EXPORT_FILE
    report = Path(report or target.parent / REPORT_FILE)
    # All 10,000, whatever the run tested on; before the framework loads: a missing file is named at once.
    images, labels = load_test_split(data_dir)
    engine = export_engine(name)
    config, weights = float32_config(run_dir), engine.export.run_weights(run_dir)
    reference = {dtype: engine.parity.logits(config, weights, images, dtype) for dtype in ("float32", "float64")}
    result: dict[str, Any] = {
        "engine": name,
        "run_dir": str(run_dir),
        "onnx": str(target),
        "format": "onnx",
        "reference": REFERENCE,
        "export_precision": "float32",
        "run_precision": _run_precision(run_dir),
    }
    if check_only is not None:
        result["check"] = verify(target, images, labels, reference)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.partial.onnx")
        try:
            engine.export.export_onnx(config, weights, tmp)
            result.update(finalize(tmp, metadata(run_dir, name, REFERENCE)))
            result["check"] = verify(tmp, images, labels, reference)
            result["sha256"] = hashlib.sha256(tmp.read_bytes()).hexdigest()
            if result["check"]["passed"]:
                os.replace(tmp, target)
            else:  # no unproven file under the output name
                result["onnx"] = None
        finally:
            tmp.unlink(missing_ok=True)
    result["versions"] = {
        **engine.export.export_versions(),
        "onnx": _version("onnx"),
        "onnxruntime": _version("onnxruntime"),
    }
    result["passed"] = result["check"]["passed"]
    # The file names only: a report is published beside its results, where this machine's paths mean nothing.
    rundir.write_json(
        report,
        {**result, "run_dir": Path(run_dir).resolve().name, "onnx": result["onnx"] and Path(result["onnx"]).name},
    )
    result["report"] = str(report)
    return result


def _run_precision(run_dir: Path) -> str:
    return load_config(run_dir / rundir.CONFIG_FILE).train.precision


def _version(package: str) -> str:
    return importlib.import_module(package).__version__


def summary_line(result: dict[str, Any]) -> str:
    c = result["check"]
    verdict = "PASSED" if result["passed"] else "FAILED"
    return (
        f"{verdict}: onnxruntime vs {result['engine']} float32 on {c['images']:,} test images:"
        f" max |logit diff| {c['max_abs_logit_diff']:.2e} (allowed {c['allowed']:.2e}),"
        f" {c['identical_predictions']:,} identical predictions; test accuracy {c['onnx_test_accuracy']:.2%}"
    )


def export_job(request: dict[str, Any], out: Path) -> dict[str, Any]:
    """The job kind "export" (`fmnist.job`): `fmnist serve` exports a run it is given in a process
    of its own, so the server itself loads no framework. {"run_dir": ..., "data_dir": ... or None};
    a failed check is a refusal (one line)."""
    result = export_run(Path(request["run_dir"]), data_dir=request.get("data_dir"))
    if not result["passed"]:
        raise FmnistError(f"export check failed, {summary_line(result)}; details in {result['report']}")
    print(summary_line(result), flush=True)
    return {"summary": summary_line(result)}


def transferred_onnx_parity(
    config: Config,
    weights: dict[str, np.ndarray],
    images: np.ndarray,
    folder: Path,
    pair: tuple[str, str] = engines.DEFAULT_PAIR,
) -> dict[str, Any]:
    """The same weights (shared layout, say a Keras run's) exported by both engines of `pair`,
    both files run in onnxruntime: the same logits within the parity rule, identical predictions."""
    first = sorted(pair, key=lambda e: not engines.exporter(e).import_first)  # torch before TensorFlow
    exporters = {name: export_engine(name) for name in first}
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.onnx" for name in exporters}
    for name, engine in exporters.items():
        engine.export.export_onnx(config, weights, paths[name])
        finalize(
            paths[name],
            {
                META_ENGINE: name,
                META_CLASS_NAMES: json.dumps(list(CLASS_NAMES)),
                META_CONTRACT: CONTRACT,
                "weights": "the same, shared layout",
            },
        )
    logits = {b: OnnxModel(p).logits(images) for b, p in paths.items()}
    rounding = max(
        float(
            np.abs(
                e.parity.logits(config, weights, images, "float32")
                - e.parity.logits(config, weights, images, "float64")
            ).max()
        )
        for e in exporters.values()
    )
    a, b = pair
    return {
        **compare_logits(logits[b], logits[a].astype(np.float64), rounding),
        "files": {b: str(p) for b, p in paths.items()},
    }
