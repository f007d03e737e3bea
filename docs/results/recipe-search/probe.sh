#!/bin/bash
# usage: probe.sh <candidate> <backend> : 2 epochs on 13,500 images, one core, one thread (env.sh);
# epoch 2's seconds x 4 estimates a full epoch (54,000 images). Row in probes.csv.
set -u
source "$(dirname "$0")/env.sh"
cand=$1; backend=$2
[ -f "$HERE/probes.csv" ] || echo "candidate,backend,epoch1_seconds,epoch2_seconds,est_full_epoch_seconds,threads" > "$HERE/probes.csv"
rd=$RUNS/probe-$cand-$backend; rm -rf "$rd"
train "$HERE/candidates/$cand.yaml" "$backend" 0 "$rd" --epochs 2 --limit-train 13500 --limit-test 1000 \
  || { echo "probe FAILED $cand $backend"; tail -3 "$rd.log"; exit 0; }
"$PYTHON" - "$rd" "$cand" "$backend" >> "$HERE/probes.csv" <<'PY'
import csv, sys
rd, cand, backend = sys.argv[1:]
r = list(csv.DictReader(open(f"{rd}/metrics.csv")))
e1, e2 = float(r[0]["seconds"]), float(r[1]["seconds"])
print(f"{cand},{backend},{e1:.2f},{e2:.2f},{4*e2:.1f},1")
PY
tail -1 "$HERE/probes.csv"
