"""make compare wall time: serial, JOBS=2, Ray on a two-node netns cluster (head 0 CPUs, worker 2)."""
import json, subprocess, sys, time
from pathlib import Path
sys.path.insert(0, "/work/main/tests")
from ray_cluster import Cluster, base_env

ROOT = Path("/tmp/scale")
REPO = "/work/main"
which = sys.argv[1:] or ["serial", "jobs2", "ray"]
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
