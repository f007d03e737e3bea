"""Backfill the epoch_seconds column (sum of metrics.csv's per-epoch seconds) for rows written before it existed."""
import csv
HDR = "candidate,backend,seed,epochs,val_accuracy,test_accuracy,train_seconds,cpu_seconds,process_seconds,epoch_seconds,threads,cpu_model".split(",")
rows = list(csv.reader(open("runs.csv")))
out = [HDR]
for r in rows[1:]:
    if len(r) == 11:
        d = f"/work/recipe/runs/{r[0]}-{r[1]}-seed{r[2]}/metrics.csv"
        s = sum(float(m["seconds"]) for m in csv.DictReader(open(d)))
        r = r[:9] + [f"{s:.2f}"] + r[9:]
    out.append(r)
with open("runs.csv", "w", newline="") as f:
    csv.writer(f).writerows(out)
