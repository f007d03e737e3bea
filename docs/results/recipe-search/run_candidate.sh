#!/bin/bash
# usage: run_candidate.sh <candidate-name> <backend> <seed>...   (config: candidates/<name>.yaml)
# One training at a time, pinned to one core, one thread (env.sh); appends a row per run to runs.csv.
set -u
source "$(dirname "$0")/env.sh"
cand=$1; backend=$2; shift 2
CPU=$(grep -m1 "model name" /proc/cpuinfo | sed 's/.*: //')
[ -f "$HERE/runs.csv" ] || echo "candidate,backend,seed,epochs,val_accuracy,test_accuracy,train_seconds,cpu_seconds,process_seconds,epoch_seconds,threads,cpu_model" > "$HERE/runs.csv"
for seed in "$@"; do
  rd=$RUNS/$cand-$backend-seed$seed
  rm -rf "$rd"
  t0=$(date +%s.%N)
  train "$HERE/candidates/$cand.yaml" "$backend" "$seed" "$rd"
  rc=$?
  t1=$(date +%s.%N)
  if [ $rc -ne 0 ]; then echo "FAILED $cand $backend $seed rc=$rc"; tail -5 "$rd.log"; continue; fi
  "$PYTHON" - "$rd" "$cand" "$backend" "$seed" "$t0" "$t1" "$CPU" >> "$HERE/runs.csv" <<'PY'
import csv, json, sys
rd, cand, backend, seed, t0, t1, cpu = sys.argv[1:]
rows = list(csv.DictReader(open(f"{rd}/metrics.csv")))
tm = json.load(open(f"{rd}/test_metrics.json"))
print(",".join(map(str, [cand, backend, seed, len(rows), rows[-1]["val_accuracy"], tm["test_accuracy"],
      round(tm.get("train_seconds", float("nan")), 2), round(tm.get("cpu_seconds", float("nan")), 2),
      round(float(t1) - float(t0), 2), round(sum(float(r["seconds"]) for r in rows), 2), 1, f'"{cpu}"'])))
PY
  tail -1 "$HERE/runs.csv"
done
