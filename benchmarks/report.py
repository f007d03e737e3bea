"""The Markdown report and the bar chart of `fmnist benchmark`, from its aggregated results
(no framework imported)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fmnist import engines
from benchmarks.peak import PEAK_DTYPE


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return ""
    return f"{value:,.{digits}f}"


def _range(stat: dict[str, float] | None, digits: int = 0) -> str:
    """'8,312 (8,101-8,400)': median (min-max) over repeats."""
    if not stat:
        return ""
    if stat.get("n", 1) <= 1:
        return _num(stat["median"], digits)
    return f"{_num(stat['median'], digits)} ({_num(stat['min'], digits)}–{_num(stat['max'], digits)})"


TABLE_HEADER = (
    "measurement",
    "batch",
    "train images/s",
    "step median / p90 (ms)",
    "inference images/s",
    "warm-up (s)",
    "peak memory (MiB)",
    "vs plain torch",
    "Lightning ÷ plain (median, 90% interval)",
    "GFLOP/s",
    "MFU",
)


def paired_ratio_cell(stat: dict[str, Any] | None) -> str:
    """'0.947 (0.931–0.960)': the median of the pairs' ratios and its interval; with fewer pairs
    than the interval needs, their count instead."""
    if not stat:
        return ""
    if stat.get("low") is None:
        pairs = f"{stat['n']} pair" + ("s" if stat["n"] != 1 else "")
        return f"{stat['median']:.3f} ({pairs}; too few for a {stat['level']:.0%} interval)"
    return f"{stat['median']:.3f} ({stat['low']:.3f}–{stat['high']:.3f})"


def mfu_cell(mfu: float | None, m: dict[str, Any] | None = None) -> str:
    """'12.3%'; below 1%, two decimals ('0.42%'); 'emulated' for a dtype the device emulates
    (no peak bounds it), 'above the peak' where the work outran it; blank without a peak."""
    if m and m.get("emulated"):
        return "emulated"
    if m and m.get("mfu_above_peak"):
        return "above the peak"
    if mfu is None:
        return ""
    return f"{mfu:.1%}" if mfu >= 0.01 else f"{mfu:.2%}"


def peak_line(peak: dict[str, Any] | None) -> str:
    """'Peak (plain GEMM, 2048 x 2048, 2 threads): float32 X GFLOP/s, bf16 Y GFLOP/s; ...', or why
    there is none."""
    if not peak or peak.get("status") != "ok":
        why = (peak or {}).get("error") or "not measured"
        return f"Peak (plain GEMM): not measured ({why}); MFU left blank."
    bests, medians, repeats = [], [], None
    for dtype in dict.fromkeys(PEAK_DTYPE.values()):
        label, got = {"bfloat16": "bf16"}.get(dtype, dtype), peak.get(dtype)
        if got is None and "dtypes" in peak:
            continue  # not asked for: no variant measured computes in it
        got = got or {}
        if got.get("gflops_per_second"):
            bests.append(f"{label} {_num(got['gflops_per_second'], 1)} GFLOP/s")
            medians.append(f"{label} {_num(got['median_gflops_per_second'], 1)}")
            repeats = got["repeats"]
        elif got.get("skipped"):
            bests.append(f"{label} not measured ({got['skipped']}; its MFU left out)")
        else:
            bests.append(f"{label} failed ({got.get('error') or 'not measured'}; its MFU left blank)")
    n = peak["matrix_size"]
    threads = f", {peak['threads']} threads" if peak.get("device") == "cpu" and peak.get("threads") else ""
    tail = f"; best of {repeats} repeats (medians: {', '.join(medians)})" if repeats else ""
    return f"Peak (plain GEMM, {n} x {n}{threads}): {', '.join(bests)}{tail}."


def mfu_note(measurements: Sequence[dict[str, Any]]) -> list[str]:
    """The paragraph under the table saying what `GFLOP/s` and `MFU` are (none without a FLOP count)."""
    flops = next((m["train_flops_per_image"] for m in measurements if m.get("train_flops_per_image")), None)
    if flops is None:
        return []
    emulated = next((m["emulated"] for m in measurements if m.get("emulated")), None)
    return [
        "",
        f"`GFLOP/s`: median training images/s x {flops / 1e6:.1f} MFLOP per image, 2 FLOPs per multiply-add"
        " of the convolutions and dense layers, 3 x the forward pass (forward, input and weight gradients;"
        " bias adds, activations, pooling, batch norm and the optimizer not counted: benchmarks.flops)."
        " `MFU`: that over the plain-GEMM peak above of the variant's compute dtype (bf16 variants"
        " against bf16's), blank without it"
        + (
            f"; `emulated` where the device has no bfloat16 instructions ({emulated}): the frameworks emulate"
            " bf16 there, no peak bounds that work, and `fmnist train` with `precision: auto` trains in float32"
            if emulated
            else ""
        )
        + (
            "; `above the peak` where the work outran the measured peak, which then bounds nothing"
            if any(m.get("mfu_above_peak") for m in measurements)
            else ""
        )
        + ".",
    ]


def allocator_line(measurements: Sequence[dict[str, Any]]) -> list[str]:
    """How the torch workers' allocator was set up (fmnist.malloc), as one sentence, if recorded."""
    settings = {json.dumps(m["malloc"], sort_keys=True) for m in measurements if m.get("malloc")}
    if not settings:
        return []
    described = []
    for text in sorted(settings):
        setting = json.loads(text)
        if "retain_bytes" in setting:
            described.append(f"glibc keeping freed blocks up to {setting['retain_bytes'] / 2**20:,.0f} MiB in the heap")
        else:
            described.append(f"{setting['allocator']} ({setting.get('setting') or setting.get('reason')})")
    return ["", f"Allocator of the torch workers (fmnist.malloc): {'; '.join(described)}."]


def measurement_label(m: dict[str, Any]) -> str:
    """The row's name: the loop (which names its engine where the engine has one loop) and the variant."""
    return f"{m['runner']} / {m['variant']}"


def markdown_table(measurements: Sequence[dict[str, Any]]) -> str:
    """One row per measurement: medians over repeats with (min–max); failures and skips say why."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + " --- |" * len(TABLE_HEADER)]
    for m in measurements:
        label = measurement_label(m)
        if m["status"] != "ok":
            why = (m.get("error") or m.get("reason") or m["status"]).replace("|", "/").replace("\n", " ")
            cells = [label, str(m["batch_size"]), f"{m['status']}: {why[:160]}", *[""] * (len(TABLE_HEADER) - 3)]
        else:
            train, infer = m["train"], m.get("inference") or {}
            steps = train.get("step_time") or {}
            step = f"{_num(steps.get('median_ms'), 1)} / {_num(steps.get('p90_ms'), 1)}" if steps else ""
            ratio = m.get("ratio_to_plain")
            cells = [
                label,
                str(m["batch_size"]),
                _range(train.get("images_per_s")),
                step,
                _range(infer.get("images_per_s")),
                _range(m.get("warmup_seconds"), 1),
                _num(m.get("peak_memory_mib")),
                f"{ratio:.3f}" if ratio else "",
                paired_ratio_cell(m.get("ratio_to_plain_paired")),
                _num(m.get("train_gflops_per_second"), 1),
                mfu_cell(m.get("mfu"), m),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def time_to_accuracy_table(result: dict[str, Any]) -> str:
    """The per-engine summary (runs, share reaching the target, medians with min–max), the
    sentence saying what the clock covers, and one row per run in the order they ran."""

    def percent(stat: dict[str, float] | None) -> str:
        if not stat:
            return ""
        if stat["n"] <= 1:
            return f"{stat['median']:.2%}"
        return f"{stat['median']:.2%} ({stat['min']:.2%}–{stat['max']:.2%})"

    target = result["target"]
    header = (
        "engine",
        "runs",
        f"reached {target:.2%}",
        "seconds, median (min–max)",
        "final test accuracy, median (min–max)",
    )
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for b in result["summary"]:
        failed = f"; {b['failed']} failed" if b["failed"] else ""
        share = f"{b['reached']} of {b['runs']} ({b['reached_share']:.0%}{failed})" if b["runs"] else ""
        lines.append(
            f"| {b['engine']} | {b['runs']} | {share} | {_range(b['seconds'], 1)} | {percent(b['test_accuracy'])} |"
        )
    lines += [
        "",
        "Seconds: from the benchmark's clock just before it starts the run's process to the moment the"
        " run's final test accuracy is known (interpreter start, imports, data loading, model building,"
        " training the whole budget and the one test pass), not the framework's teardown after it, which"
        " the process wall adds. A run reaches the target when its final test accuracy is at least the"
        " target; a failed run counts as not reached.",
        "",
    ]
    runs_header = (
        "engine",
        "seed",
        "final test accuracy",
        "reached",
        "seconds",
        "epochs",
        "training s",
        "process wall s",
    )
    lines += ["| " + " | ".join(runs_header) + " |", "|" + " --- |" * len(runs_header)]
    for r in result["runs"]:
        if r.get("status") != "ok":
            why = (r.get("error") or r.get("status") or "").replace("|", "/").replace("\n", " ")
            cells = [r["engine"], str(r["seed"]), f"{r.get('status')}: {why[:160]}", "no", "", "", "", ""]
        else:
            cells = [
                r["engine"],
                str(r["seed"]),
                f"{r['test_accuracy']:.2%}",
                "yes" if r["reached"] else "no",
                _num(r["seconds"], 1),
                str(r["epochs"]),
                _num(r["train_seconds"], 1),
                _num(r.get("process_wall_seconds"), 1),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(result: dict[str, Any]) -> str:
    env = result["environment"]
    hw = env["hardware"]
    gpu = f", GPU {hw['gpu']}" if hw.get("gpu") else ""
    versions = ", ".join(f"{k} {v}" for k, v in sorted(env["versions"].items()))
    s = result["settings"]
    parts = [
        f"# fmnist benchmark: {result['created']}",
        "",
        f"Device **{s['device']}**; CPU {hw['cpu_model']} ({hw['logical_cpus']} logical CPUs){gpu};"
        f" load average at start {env['load_average_start']}, at end {env.get('load_average_end', '?')}.",
        f"Versions: {versions}.",
    ]
    if result["measurements"]:  # not with --only-time-to-accuracy, whose section says what it ran
        parts.append(
            f"Config `{s['config']}`; data: {s['data']}; {s['steps']} timed steps after {s['warmup']} warm-up"
            f" steps, {s['repeats']} repeats (one fresh process per measurement and repeat, engines alternating);"
            " figures are medians over repeats with (min–max)."
        )
    if result.get("peak"):
        parts.append(peak_line(result["peak"]))
    if result["measurements"]:
        parts += [
            "",
            markdown_table(result["measurements"]),
            "",
            "`vs plain torch`: Lightning's training images/s divided by a plain PyTorch loop's on the"
            " same network, optimizer, data and batch size (1.000 = no overhead), median over median."
            " `Lightning ÷ plain`: the same ratio per pair (repeat i of each, run back to back, which"
            " runs first alternating), the median over the pairs with a distribution-free 90% interval"
            " for it (order statistics; five pairs at least). What each side runs: docs/speed.md.",
            *mfu_note(result["measurements"]),
            *allocator_line(result["measurements"]),
        ]
    if tta := result.get("time_to_accuracy"):
        parts += [
            "",
            "## Time to accuracy",
            "",
            f"Config `{tta['config']}`, trained as `fmnist train` does (its data pipeline, schedule and"
            f" data split) for a fixed budget of {tta['epochs']} epochs, once per seed"
            f" ({', '.join(map(str, tta['seeds']))}, each replacing the config's seed), one fresh process"
            " per run, the engines alternating; the test set measured once, at the end.",
            "",
            time_to_accuracy_table(tta),
        ]
    return "\n".join(parts) + "\n"


def plot_throughput(measurements: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    """Horizontal bars of training and inference images/s (median; whiskers min-max)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    ok = [m for m in measurements if m["status"] == "ok"]
    labels = [f"{measurement_label(m)} (b{m['batch_size']})" for m in ok]
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.45 * max(len(ok), 2) + 1.5), sharey=True)
    palette = sns.color_palette("colorblind")
    colour = {e.name: e.colour for e in engines.all_engines()}
    for ax, key, name in ((axes[0], "train", "training images/s"), (axes[1], "inference", "inference images/s")):
        meds = [((m.get(key) or {}).get("images_per_s") or {}).get("median", 0.0) for m in ok]
        lows = [med - ((m.get(key) or {}).get("images_per_s") or {}).get("min", med) for m, med in zip(ok, meds)]
        highs = [((m.get(key) or {}).get("images_per_s") or {}).get("max", med) - med for m, med in zip(ok, meds)]
        ax.barh(
            range(len(ok)),
            meds,
            xerr=[lows, highs],
            capsize=3,
            color=[colour.get(m.get("engine"), palette[3]) for m in ok],
        )
        for i, med in enumerate(meds):
            if med:
                ax.text(med + highs[i], i, f"  {med:,.0f}", va="center", fontsize=8)
        ax.set_xlabel(name)
        ax.set_xlim(0, 1.15 * max([med + hi for med, hi in zip(meds, highs)] or [1.0]))
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(ok)), labels)
    axes[0].invert_yaxis()
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
