#!/usr/bin/env bash
# The prepared GPU run (docs/speed.md, "Running it on a GPU"), on the GPU machine, with the
# bundle built here by `python -m benchmarks.gpu_bundle` carried beside the working tree:
#
#   bash benchmarks/gpu_run.sh [options of python -m benchmarks.gpu_run]
#
# Installs Keras and the two packages it lacks there from the bundle's wheels, offline, into a
# folder of its own on PYTHONPATH (the image's torch, Lightning and JAX stay as they are), reads
# the data from the bundle, and runs the GPU plan from this uninstalled tree (the engines are read
# from pyproject.toml; the image has no TensorFlow): (a) parity on the GPU, (b) the benchmark's
# batch-8192 variants, (c) strong.yaml's trainings, each part's results in
# benchmarks/results/<date>-gpu-<gpu>/ as it ends and, where $OUT is set, copied there with the
# log. Nothing is fetched or built.
set -euo pipefail
cd "$(dirname "$0")/.."

BUNDLE="${FMNIST_GPU_BUNDLE:-gpu-bundle}"
PYTHON="${PYTHON:-python3}"
if [ ! -f "$BUNDLE/manifest.json" ]; then
    echo "gpu_run: no $BUNDLE/manifest.json: build it with 'python -m benchmarks.gpu_bundle' and carry $BUNDLE" >&2
    exit 2
fi

SITE="$(mktemp -d "${TMPDIR:-/tmp}/fmnist-gpu-site.XXXXXX")"
trap 'rm -rf "$SITE"' EXIT
shopt -s nullglob
wheels=("$BUNDLE"/wheels/*.whl)
if [ "${#wheels[@]}" -gt 0 ]; then
    echo "[gpu_run] installing ${#wheels[@]} wheels offline into $SITE" >&2
    "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "${wheels[@]}"
fi
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
FMNIST_DATA_DIR="$(cd "$BUNDLE/data" && pwd)"
export FMNIST_DATA_DIR
export PYTHONUNBUFFERED=1
# The machine gets the working tree without .git: the benchmark records the bundle's commit.
revision="$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1])).get("source_revision") or "")' "$BUNDLE/manifest.json")"
export FMNIST_SOURCE_REVISION="${FMNIST_SOURCE_REVISION:-$revision}"

"$PYTHON" - <<'EOF' >&2
import importlib.util, platform, sys
found = {name: bool(importlib.util.find_spec(name)) for name in ("torch", "lightning", "jax", "keras", "tensorflow")}
print(f"[gpu_run] Python {platform.python_version()} at {sys.executable}; importable: {found}")
EOF

args=("$@")
if [ -n "${OUT:-}" ]; then
    args+=(--copy-to "$OUT")
fi
"$PYTHON" -m benchmarks.gpu_run ${args[@]+"${args[@]}"}
