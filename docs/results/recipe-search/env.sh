# Shared settings of the recipe-search scripts, relative to the checkout; each can be overridden
# from the environment. One training at a time, on one core (CORE), one thread.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
RUNS=${RUNS:-$REPO/runs/recipe-search}
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
CORE=${CORE:-1}
export FMNIST_DATA_DIR=${FMNIST_DATA_DIR:-$REPO/../shared/data/fashion-mnist}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1
mkdir -p "$RUNS"
# train CONFIG BACKEND SEED RUN_DIR [more fmnist train flags]: pinned to CORE, output in RUN_DIR.log
train() {
  local config=$1 backend=$2 seed=$3 rd=$4; shift 4
  (cd "$REPO" && taskset -c "$CORE" "$PYTHON" -m fmnist_cli train --backend "$backend" --config "$config" \
    --seed "$seed" --run-dir "$rd" "$@" > "$rd.log" 2>&1)
}
