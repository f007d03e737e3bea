"""How docs/scale.md's `make compare` wall times were measured: serial, JOBS=2, and Ray on a
two-node cluster in network namespaces (tests/ray_cluster.py: head without CPUs, worker with 2),
one after another, nothing else running. Run from the checkout as root:

    .venv/bin/python docs/results/scale-2026-12-04/measure.py SCRATCH [serial] [jobs2] [ray] ...

Each compare writes into SCRATCH/<name> (its log SCRATCH/<name>.log); the wall times go to
SCRATCH/walls.json (recorded here with SCRATCH shown as <scratch>)."""

import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests"))
from ray_cluster import Cluster, base_env  # noqa: E402

ROOT = Path(sys.argv[1]).resolve()
which = sys.argv[2:] or ["serial", "jobs2", "ray"]
ROOT.mkdir(parents=True, exist_ok=True)
walls = json.loads((ROOT / "walls.json").read_text()) if (ROOT / "walls.json").exists() else {}


def timed(name, cmd, env=None):
    began = time.time()
    with (ROOT / f"{name}.log").open("w") as log:
        code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env).returncode
    walls[name] = {"seconds": time.time() - began, "exit": code, "command": " ".join(cmd[-6:]), "began": began}
    (ROOT / "walls.json").write_text(json.dumps(walls, indent=2))
    print(name, walls[name], flush=True)


for name in which:
    if name == "serial":
        timed("serial", ["make", "compare", f"OUT={ROOT}/serial"])
    elif name == "serial1":
        timed("serial1", ["make", "compare", f"OUT={ROOT}/serial1", "THREADS=1"])
    elif name == "jobs2":
        timed("jobs2", ["make", "compare", f"OUT={ROOT}/jobs2", "JOBS=2"])
    elif name == "raylocal":
        timed("raylocal", ["make", "compare", f"OUT={ROOT}/raylocal", "EXECUTOR=ray"])
    elif name == "ray":
        began = time.time()
        cluster = Cluster(ROOT / "cluster", worker_cpus=2)
        walls["cluster_start_seconds"] = time.time() - began
        try:
            cmd = [*cluster.ns.exec(cluster.ns.head), "make", "compare", f"OUT={ROOT}/ray", "EXECUTOR=ray",
                   f"RAY_ADDRESS={cluster.address}"]
            timed("ray", cmd, env=base_env())
        finally:
            cluster.close()
