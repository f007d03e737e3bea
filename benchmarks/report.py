"""The Markdown report and the bar chart of `fmnist benchmark`, from its aggregated results
(no framework imported)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


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


def measurement_label(m: dict[str, Any]) -> str:
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
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def time_to_accuracy_table(rows: Sequence[dict[str, Any]]) -> str:
    header = (
        "backend",
        "target",
        "reached",
        "epochs",
        "seconds to target",
        "of which training",
        "process wall s",
        "test accuracy per epoch",
    )
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for r in rows:
        if r.get("status") != "ok":
            lines.append(
                f"| {r['backend']} | {r.get('target', '')} | {r.get('status')}: "
                f"{(r.get('error') or '')[:160]} | | | | | |"
            )
            continue
        accs = ", ".join(f"{a:.2%}" for a in r["test_accuracy_per_epoch"])
        lines.append(
            f"| {r['backend']} | {r['target']:.2%} | {'yes' if r['reached'] else 'no'} | {r['epochs']} |"
            f" {_num(r.get('seconds_to_target'), 1)} | {_num(r['train_seconds_to_target'], 1)} |"
            f" {_num(r['wall_seconds'], 1)} | {accs} |"
        )
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
        f"Config `{s['config']}`; data: {s['data']}; {s['steps']} timed steps after {s['warmup']} warm-up"
        f" steps, {s['repeats']} repeats (one fresh process per measurement and repeat, backends alternating);"
        " figures are medians over repeats with (min–max).",
    ]
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
        ]
    if result.get("time_to_accuracy"):
        parts += [
            "",
            "## Time to accuracy",
            "",
            f"Config `{s.get('time_to_accuracy_config') or s['config']}`, trained as `fmnist train` does"
            " (its data pipeline, schedule and seed), the test set measured after every epoch. Seconds to"
            " target: from the worker's start to the test pass that reached it (imports, data loading,"
            " model building, training and test passes); process wall adds interpreter start-up and the"
            " framework's teardown.",
            "",
            time_to_accuracy_table(result["time_to_accuracy"]),
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
    colour = {"keras": palette[0], "lightning": palette[1], "plain torch": palette[2]}
    for ax, key, name in ((axes[0], "train", "training images/s"), (axes[1], "inference", "inference images/s")):
        meds = [((m.get(key) or {}).get("images_per_s") or {}).get("median", 0.0) for m in ok]
        lows = [med - ((m.get(key) or {}).get("images_per_s") or {}).get("min", med) for m, med in zip(ok, meds)]
        highs = [((m.get(key) or {}).get("images_per_s") or {}).get("max", med) - med for m, med in zip(ok, meds)]
        ax.barh(
            range(len(ok)), meds, xerr=[lows, highs], capsize=3, color=[colour.get(m["runner"], palette[3]) for m in ok]
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
