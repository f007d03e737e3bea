"""make_candidate.py <base> <new> key=value ...  : candidates/<new>.yaml = candidates/<base>.yaml with dotted overrides (values parsed as YAML)."""
import sys, yaml
base, new, *kvs = sys.argv[1:]
raw = yaml.safe_load(open(f"candidates/{base}.yaml"))
raw["name"] = new
for kv in kvs:
    key, value = kv.split("=", 1)
    node = raw
    *parents, leaf = key.split(".")
    for p in parents:
        node = node.setdefault(p, {}) if not p.isdigit() else node[int(p)]
    if leaf.isdigit():
        node[int(leaf)] = yaml.safe_load(value)
    else:
        node[leaf] = yaml.safe_load(value)
with open(f"candidates/{new}.yaml", "w") as f:
    f.write(f"# candidate {new}: {base} with {' '.join(kvs)}\n")
    yaml.safe_dump(raw, f, sort_keys=False, default_flow_style=None)
