"""frontier.py: frontier.png from runs.csv: each candidate's validation accuracy (median over its
seeds, bars from lowest to highest) against its CPU seconds per run (median; one thread, so about
its wall time), one colour per backend, with the 91%, 93% and 94.5% targets and the 3,600 s
budget; beside them the six improved.yaml runs of docs/results/improved/ (40 epochs, same kind of
CPU, one thread each). Run from this folder: python frontier.py"""
import csv
import json
import statistics as st
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

runs = defaultdict(list)
for r in csv.DictReader(open("runs.csv")):
    runs[(r["candidate"], r["backend"])].append((100 * float(r["val_accuracy"]), float(r["cpu_seconds"])))
for run in sorted(Path("../improved/runs").iterdir()):
    val = float(list(csv.DictReader(open(run / "metrics.csv")))[-1]["val_accuracy"])
    cpu = json.loads((run / "test_metrics.json").read_text())["cpu_seconds"]
    runs[("improved (40 epochs)", run.name.split("-")[0])].append((100 * val, cpu))
fig, ax = plt.subplots(figsize=(9, 5.5))
colours = {"keras": "tab:red", "lightning": "tab:blue"}
for (candidate, backend), rows in sorted(runs.items()):
    acc, cpu = [a for a, _ in rows], [c for _, c in rows]
    y, x = st.median(acc), st.median(cpu)
    ax.errorbar(x, y, yerr=[[y - min(acc)], [max(acc) - y]], fmt="o", color=colours[backend], capsize=2, alpha=0.8)
    ax.annotate(candidate, (x, y), fontsize=6, xytext=(3, 2), textcoords="offset points")
for target in (91, 93, 94.5):
    ax.axhline(target, color="grey", lw=0.6, ls="--")
ax.axvline(3600, color="black", lw=0.8, ls=":")
ax.set_xscale("log")
ax.set_xlabel("CPU seconds per run (one thread; median over seeds)")
ax.set_ylabel("validation accuracy, % (median; bars: min to max over seeds)")
ax.set_title("Recipe search: validation accuracy against CPU time (red Keras, blue Lightning)")
fig.tight_layout()
fig.savefig("frontier.png", dpi=130)
