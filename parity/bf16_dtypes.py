"""What each framework computes in which dtype under its bf16 mixed policy, seen on live tensors:
the op logs (parity.bf16_trace), the table rows picked from them (parity.bf16_table) and the
accumulation experiments (parity.bf16_accumulation), put together; each engine measures in a
process of its own (`fmnist.engine_job`), this module only reads the numbers. The committed table
(`bf16_dtype_table.json`) is what a test compares these with; it holds one table per kind of CPU
(`fmnist.cpu_features.bf16_kernels`), since which kernels run, and so how they round, depends on
whether the CPU has AVX-512.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from parity.bf16_accumulation import experiments, kernel_call, kernel_inputs
from parity.bf16_table import dtype_rows
from parity.bf16_trace import trace_call
from fmnist.config import Config
from fmnist.cpu_features import bf16_kernels, cpu_model
from fmnist.engine_job import run_jobs
from fmnist.engines import DEFAULT_PAIR, labels

#: How the checks name each engine: what the engine declares.
LABELS = labels()

TABLE_FILE = Path(__file__).with_name("bf16_dtype_table.json")
#: The configs the committed table covers: batch norm and dropout (improved), conv biases (fast).
TABLE_CONFIGS = ("improved", "fast")


def measure(config: Config, engines: tuple[str, str] = DEFAULT_PAIR, in_process: bool = False) -> dict[str, Any]:
    """The live table of two engines (a Keras one, then Lightning): dtype rows from both op logs,
    and the accumulation experiments. in_process: both engines in this process (tests plant faults so)."""
    arrays = kernel_inputs()
    answers = run_jobs([(e, probe_calls(config, arrays)) for e in engines], in_process)
    return table(config, engines, arrays, [a["results"] for a in answers])


def probe_calls(config: Config, arrays: dict[str, Any], device: str = "cpu") -> list[dict[str, Any]]:
    """An engine job's calls for its half of the table: the op log, then the kernels."""
    return [trace_call(config, device=device), kernel_call(arrays, device)]


def table(
    config: Config, engines: tuple[str, str], arrays: dict[str, Any], answers: list[list[Any]], device: str = "cpu"
) -> dict[str, Any]:
    """The table from each engine's answers to `probe_calls` (the last two of its results);
    "notes" says, one line each, what an engine could not measure and why. device: where the
    kernels ran (the CPU's model is recorded too)."""
    (trace_a, kernels_a), (trace_b, kernels_b) = (a[-2:] for a in answers)
    found = {
        "config": config.name,
        "cpu": cpu_model(),
        **({"device": device} if device != "cpu" else {}),
        "rows": dtype_rows(config, trace_a, trace_b),
        "experiments": experiments(arrays, {"keras": kernels_a, "torch": kernels_b}),
    }
    if engines != DEFAULT_PAIR:
        found["engines"] = list(engines)
    notes = [
        f"{e}: {answer['unavailable']}"
        for e, answer in zip(engines * 2, (trace_a, trace_b, kernels_a, kernels_b))
        if answer.get("unavailable")
    ]
    return {**found, "notes": notes} if notes else found


def comparable(table: dict[str, Any]) -> dict[str, Any]:
    """What must stay as committed: dtypes and verdicts (the measured shares vary by CPU)."""
    exps = [
        {k: e[k] for k in ("experiment", "keras", "torch") if not e["experiment"].startswith("dropout")}
        for e in table["experiments"]
    ]
    drops = [
        {k: e[k] for k in ("experiment", "keras_unbiased", "torch_unbiased")}
        for e in table["experiments"]
        if e["experiment"].startswith("dropout")
    ]
    return {"rows": table["rows"], "experiments": exps + drops}


def load_committed(config_name: str, kind: str | None = None) -> dict[str, Any] | None:
    """The committed table for a config on a kind of CPU (default: this one's); None if not measured."""
    return json.loads(TABLE_FILE.read_text()).get(kind or bf16_kernels() or "", {}).get(config_name)


def markdown(table: dict[str, Any]) -> str:
    """The table as markdown; its columns are the two engines in order (in the JSON, "keras" is the
    first engine's column and "torch" the second's, the names of the pair it was first made for)."""
    first, second = (LABELS[e] for e in table.get("engines", DEFAULT_PAIR))
    lines = [f"| quantity | {first}, bf16 mixed | {second}, bf16 mixed |", "|---|---|---|"]
    lines += [f"| {r['quantity']} | {r['keras']} | {r['torch']} |" for r in table["rows"]]
    lines += ["", f"| experiment (bfloat16 inputs) | {first} | {second} |", "|---|---|---|"]
    share = lambda e, side: "" if e[f"{side}_share"] is None else f"{e[f'{side}_share']:.4f} "  # noqa: E731
    for e in table["experiments"]:
        if e["experiment"].startswith("dropout"):
            lines.append(f"| {e['experiment']} | {e['keras']} | {e['torch']} |")
        else:
            lines.append(
                f"| {e['experiment']}: share equal to the exact result rounded once | "
                f"{share(e, 'keras')}({e['keras']}) | {share(e, 'torch')}({e['torch']}) |"
            )
    lines += [f"\nnote: {n}" for n in table.get("notes", [])]
    return "\n".join(lines)


def main() -> None:
    """`python -m parity.bf16_dtypes`: measure again, rewrite this kind of CPU's committed table
    (the other kinds' stay), print it as markdown (for docs/parity.md). Run it after a framework
    upgrade that the test flags, once on each kind of CPU."""
    from fmnist.config import load_config
    from fmnist.quiet import tensorflow_environment

    tensorflow_environment()
    kind = bf16_kernels()
    if kind is None:
        raise SystemExit("cannot tell this CPU's kind (no /proc/cpuinfo flags): nothing measured")
    tables = {name: measure(load_config(name)) for name in TABLE_CONFIGS}
    committed = json.loads(TABLE_FILE.read_text()) if TABLE_FILE.exists() else {}
    TABLE_FILE.write_text(json.dumps({**committed, kind: tables}, indent=1, sort_keys=True) + "\n")
    print(f"# {cpu_model()} (bf16 kernels: {kind})\n")
    for name, table in tables.items():
        print(f"## configs/{name}.yaml\n\n{markdown(table)}\n")


if __name__ == "__main__":
    main()
