#!/bin/bash
# usage: probe.sh <candidate> <backend> : 2 epochs on 13,500 images, core 1, one thread; epoch 2's seconds x 4 estimates a full epoch (54,000 images). Row in probes.csv.
set -u
HERE=/work/recipe/docs/results/recipe-search
cand=$1; backend=$2
if [ $(date -u +%H%M) -ge 0520 ]; then echo "past 05:20 UTC"; exit 0; fi
[ -f $HERE/probes.csv ] || echo "candidate,backend,epoch1_seconds,epoch2_seconds,est_full_epoch_seconds,threads" > $HERE/probes.csv
rd=/work/recipe/runs/probe-$cand-$backend; rm -rf $rd
(cd /work/recipe && FMNIST_DATA_DIR=/work/shared/data/fashion-mnist OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 taskset -c 1 env PYTHONPATH=/work/recipe /work/main/.venv/bin/python -m fmnist_cli train --backend $backend --config $HERE/candidates/$cand.yaml --seed 0 --epochs 2 --limit-train 13500 --limit-test 1000 --run-dir $rd > $rd.log 2>&1) || { echo "probe FAILED $cand $backend"; tail -3 $rd.log; exit 0; }
/work/main/.venv/bin/python - $rd $cand $backend >> $HERE/probes.csv <<'PY'
import csv, sys
rd, cand, backend = sys.argv[1:]
r = list(csv.DictReader(open(f"{rd}/metrics.csv")))
e1, e2 = float(r[0]["seconds"]), float(r[1]["seconds"])
print(f"{cand},{backend},{e1:.2f},{e2:.2f},{4*e2:.1f},1")
PY
tail -1 $HERE/probes.csv
