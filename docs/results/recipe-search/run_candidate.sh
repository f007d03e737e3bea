#!/bin/bash
# usage: run_candidate.sh <candidate-name> <backend> <seed>...   (config: candidates/<name>.yaml)
# One training at a time, pinned to core 1, one thread; appends a row per run to runs.csv.
set -u
HERE=/work/recipe/docs/results/recipe-search
cand=$1; backend=$2; shift 2
CPU=$(grep -m1 "model name" /proc/cpuinfo | sed 's/.*: //')
[ -f $HERE/runs.csv ] || echo "candidate,backend,seed,epochs,val_accuracy,test_accuracy,train_seconds,cpu_seconds,process_seconds,epoch_seconds,threads,cpu_model" > $HERE/runs.csv
for seed in "$@"; do
  if [ $(date -u +%H%M) -ge 0520 ]; then echo "past 05:20 UTC, not starting $cand $seed"; exit 0; fi
  rd=/work/recipe/runs/$cand-$backend-seed$seed
  rm -rf $rd
  t0=$(date +%s.%N)
  (cd /work/recipe && FMNIST_DATA_DIR=/work/shared/data/fashion-mnist OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 taskset -c 1 env PYTHONPATH=/work/recipe /work/main/.venv/bin/python -m fmnist_cli train --backend $backend --config $HERE/candidates/$cand.yaml --seed $seed --run-dir $rd > /work/recipe/runs/$cand-$backend-seed$seed.log 2>&1)
  rc=$?
  t1=$(date +%s.%N)
  if [ $rc -ne 0 ]; then echo "FAILED $cand $backend $seed rc=$rc"; tail -5 /work/recipe/runs/$cand-$backend-seed$seed.log; continue; fi
  /work/main/.venv/bin/python - "$rd" "$cand" "$backend" "$seed" "$t0" "$t1" "$CPU" >> $HERE/runs.csv <<'PY'
import csv, json, sys
rd, cand, backend, seed, t0, t1, cpu = sys.argv[1:]
rows = list(csv.DictReader(open(f"{rd}/metrics.csv")))
tm = json.load(open(f"{rd}/test_metrics.json"))
print(",".join(map(str, [cand, backend, seed, len(rows), rows[-1]["val_accuracy"], tm["test_accuracy"],
      round(tm.get("train_seconds", float("nan")), 2), round(tm.get("cpu_seconds", float("nan")), 2),
      round(float(t1) - float(t0), 2), round(sum(float(r["seconds"]) for r in rows), 2), 1, f'"{cpu}"'])))
PY
  tail -1 $HERE/runs.csv
done
