"""Prints the per-candidate summary (markdown) of runs.csv: val accuracy median/min, test median/min, seconds per epoch (sum of metrics.csv epoch seconds / epochs)."""
import csv, statistics as st
from collections import defaultdict
g = defaultdict(list)
for r in csv.DictReader(open("runs.csv")):
    g[(r["candidate"], r["backend"])].append(r)
print("| candidate | backend | seeds | epochs | val median | val min | test median | test min | s/epoch (1 thread) | fit s median | process s median |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for (c, b), v in g.items():
    va = [float(r["val_accuracy"]) for r in v]; te = [float(r["test_accuracy"]) for r in v]
    spe = st.median(float(r["epoch_seconds"]) / int(r["epochs"]) for r in v)
    print(f"| {c} | {b} | {','.join(r['seed'] for r in v)} | {v[0]['epochs']} | {100*st.median(va):.2f} | {100*min(va):.2f} | "
          f"{100*st.median(te):.2f} | {100*min(te):.2f} | {spe:.1f} | {st.median(float(r['train_seconds']) for r in v):.1f} | "
          f"{st.median(float(r['process_seconds']) for r in v):.1f} |")
