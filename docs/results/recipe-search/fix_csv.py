"""fix_csv.py RUNS_DIR: backfill the epoch_seconds column (sum of metrics.csv's per-epoch seconds)
for rows of runs.csv written before it existed, from the run directories in RUNS_DIR."""
import csv
import sys
from pathlib import Path

runs = Path(sys.argv[1])
HDR = "candidate,backend,seed,epochs,val_accuracy,test_accuracy,train_seconds,cpu_seconds,process_seconds,epoch_seconds,threads,cpu_model".split(",")
rows = list(csv.reader(open("runs.csv")))
out = [HDR]
for r in rows[1:]:
    if len(r) == 11:
        metrics = runs / f"{r[0]}-{r[1]}-seed{r[2]}" / "metrics.csv"
        s = sum(float(m["seconds"]) for m in csv.DictReader(open(metrics)))
        r = r[:9] + [f"{s:.2f}"] + r[9:]
    out.append(r)
with open("runs.csv", "w", newline="") as f:
    csv.writer(f).writerows(out)
