"""What a compare report says, top to bottom (title, verdict, evidence, how to read it), as one
list of blocks rendered from the summary's numbers: the markdown and the HTML page are both
rendered from it (compare.report_render), so they always say the same thing."""

from __future__ import annotations

from typing import Any

from compare.report_figures import FIGURES
from compare.report_runs import LABELS
from compare.stats import format_p
from fmnist import CLASS_NAMES


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.2f}"


def _mean_pm(s: dict[str, Any], scale: float = 1.0, fmt: str = ".2f") -> str:
    """'91.62 ± 0.12', or just the mean with one seed; 'n/a' when the runs did not record it."""
    if s["mean"] is None:
        return "n/a"
    text = f"{s['mean'] * scale:,{fmt}}"
    return text + (f" ± {s['std'] * scale:,{fmt}}" if s["std"] is not None else "")


def _seeds_text(summary: dict[str, Any]) -> str:
    seeds = {e: summary["per_engine"][e]["seeds"] for e in summary["engines"]}
    if len({tuple(s) for s in seeds.values()}) == 1:
        return f"seeds {', '.join(map(str, next(iter(seeds.values()))))}"
    return "; ".join(f"{LABELS[e]} seeds {', '.join(map(str, s))}" for e, s in seeds.items())


def _lead(summary: dict[str, Any]) -> tuple[str, str]:
    """The lead pair of engines: its verdict, per-seed table and disagreements lead the report."""
    a, b = summary["pairs"][0]["engines"]
    return a, b


def _verdict_blocks(summary: dict[str, Any]) -> list[tuple]:
    eq = summary["equivalence"]
    a, b = _lead(summary)
    state = {True: "equivalent", False: "different", None: "none"}[eq["equivalent"]]
    blocks: list[tuple] = [
        ("h2", "Verdict"),
        ("verdict", eq["verdict"], state),
        (
            "p",
            f"Two one-sided Welch t-tests (TOST) on the per-seed test accuracies, margin"
            f" ±{summary['margin'] * 100:.2f} points, alpha {summary['alpha']:g};"
            f" differences are {LABELS[a]} − {LABELS[b]}.",
        ),
    ]
    rows = summary["per_seed"]
    if rows:
        significant = sum(r["mcnemar_p"] < summary["alpha"] for r in rows)
        blocks.append(
            (
                "p",
                f"On the same seed the two give the same class to"
                f" {_pct(summary['mean_prediction_agreement'])}% of test images on average; McNemar finds"
                f" a difference in which images they get wrong on {significant} of {len(rows)} seeds"
                f" (p < {summary['alpha']:g}).",
            )
        )
    if len(summary["pairs"]) > 1:
        blocks += _pairs_blocks(summary)
    return blocks


def _pairs_blocks(summary: dict[str, Any]) -> list[tuple]:
    """Every pair of engines, one row each: the same tests as the lead pair's."""
    headers = ["Pair (a − b)", "Difference (points)", "TOST p", "Verdict", "Same prediction (%)", "McNemar p < alpha"]
    rows = []
    for pair in summary["pairs"]:
        a, b = pair["engines"]
        eq, seeds = pair["equivalence"], pair["per_seed"]
        verdict = {True: "equivalent", False: "not shown equivalent", None: "no claim"}[eq["equivalent"]]
        rows.append(
            [
                f"{LABELS[a]} − {LABELS[b]}",
                f"{eq['diff'] * 100:+.2f}",
                "n/a" if eq["p_value"] is None else format_p(eq["p_value"]).lstrip("= "),
                verdict,
                _pct(pair["mean_prediction_agreement"]),
                f"{sum(r['mcnemar_p'] < summary['alpha'] for r in seeds)} of {len(seeds)} seeds",
            ]
        )
    return [("h3", "Every pair of engines"), ("table", headers, rows)]


def _accuracy_blocks(summary: dict[str, Any]) -> list[tuple]:
    headers = [
        "Engine",
        "Seeds",
        "Test accuracy (%)",
        "Test loss",
        "Macro F1 (%)",
        "Parameters",
        "Train time (s)",
        "Train images/s",
    ]
    rows = []
    for b in summary["engines"]:
        s = summary["per_engine"][b]
        params = s["num_params"]
        rows.append(
            [
                LABELS[b],
                str(len(s["seeds"])),
                _mean_pm(s["test_accuracy"], 100),
                _mean_pm(s["test_loss"], 1, ".4f"),
                _mean_pm(s["macro_f1"], 100),
                f"{params:,}" if isinstance(params, int) else str(params),
                _mean_pm(s["train_seconds"], 1, ".1f"),
                _mean_pm(s["train_images_per_second"], 1, ".0f"),
            ]
        )
    same = len({str(summary["per_engine"][e]["num_params"]) for e in summary["engines"]}) == 1
    note = (
        "Every engine builds a model with the same number of parameters."
        if same
        else "The parameter counts differ: the engines did not build the same architecture."
    )
    return [
        ("h2", "Accuracy"),
        ("p", "Mean ± standard deviation over seeds, on the same test images."),
        ("table", headers, rows),
        ("p", note),
    ]


def _per_seed_blocks(summary: dict[str, Any]) -> list[tuple]:
    a, b = _lead(summary)
    la, lb = LABELS[a], LABELS[b]
    blocks: list[tuple] = [("h2", "Per seed" + (f": {la} and {lb}" if len(summary["pairs"]) > 1 else ""))]
    if not summary["per_seed"]:
        return blocks + [("p", f"No seed was run by both {la} and {lb}, so no image-by-image comparison is possible.")]
    headers = [
        "Seed",
        f"{la} acc (%)",
        f"{lb} acc (%)",
        f"{la} − {lb} (points)",
        "Same prediction (%)",
        f"Only {la} right",
        f"Only {lb} right",
        "McNemar p",
    ]
    rows = [
        [
            str(r["seed"]),
            _pct(r[f"{a}_accuracy"]),
            _pct(r[f"{b}_accuracy"]),
            f"{(r[f'{a}_accuracy'] - r[f'{b}_accuracy']) * 100:+.2f}",
            _pct(r["prediction_agreement"]),
            str(r[f"only_{a}_right"]),
            str(r[f"only_{b}_right"]),
            format_p(r["mcnemar_p"]).lstrip("= "),
        ]
        for r in summary["per_seed"]
    ]
    paired = {r["seed"] for r in summary["per_seed"]}
    unpaired = sorted(s for e in (a, b) for s in summary["per_engine"][e]["seeds"] if s not in paired)
    blocks.append(("table", headers, rows))
    if unpaired:
        blocks.append(
            (
                "p",
                f"Seeds run by one of the two only (in the verdict, not in this table): "
                f"{', '.join(map(str, sorted(set(unpaired))))}.",
            )
        )
    return blocks


def _figure_blocks(summary: dict[str, Any]) -> list[tuple]:
    how = "summed" if summary["confusion_aggregate"] == "sum" else "averaged"
    engines = summary["engines"]
    a, b = _lead(summary)
    top = {e: summary["per_engine"][e]["top_confusions"] for e in engines}
    rows = [
        [str(i + 1)] + [f"{t['true']} → {t['predicted']} ({t['count']:g})" for t in (top[e][i] for e in engines)]
        for i in range(len(top[engines[0]]))
    ]
    return [
        ("h2", "Learning curves"),
        ("img", FIGURES["curves"], "Learning curves of every engine"),
        ("p", "Lines: mean over seeds; bands: lowest to highest seed. Validation is the fixed held-out split."),
        ("h2", "Confusion matrices"),
        ("img", FIGURES["confusion"], "Confusion matrices and their difference"),
        (
            "p",
            f"Counts {how} over seeds, rows true class, columns predicted; all on one colour scale."
            f" Last: {LABELS[b]} − {LABELS[a]}.",
        ),
        ("p", "Most confused class pairs (true → predicted, count):"),
        ("table", ["Rank", *(LABELS[e] for e in engines)], rows),
    ]


def _per_class_blocks(summary: dict[str, Any]) -> list[tuple]:
    """P, R and F1 per engine for two engines; F1 alone for more (a table a page can hold)."""
    engines = summary["engines"]
    a, b = _lead(summary)
    pcs = {e: summary["per_engine"][e]["per_class"] for e in engines}
    metrics = ("precision", "recall", "f1") if len(engines) == 2 else ("f1",)
    short = {"precision": "P", "recall": "R", "f1": "F1"}
    headers = (
        ["Class"]
        + [f"{LABELS[e]} {short[m]}" for e in engines for m in metrics]
        + [f"F1 {LABELS[a]} − {LABELS[b]} (points)"]
    )
    rows = [
        [name]
        + [_pct(pcs[e][name][m]["mean"]) for e in engines for m in metrics]
        + [f"{(pcs[a][name]['f1']['mean'] - pcs[b][name]['f1']['mean']) * 100:+.2f}"]
        for name in CLASS_NAMES
    ]
    shown = "Precision (P), recall (R) and F1" if len(metrics) == 3 else "F1 (precision and recall: in the figure)"
    return [
        ("h2", "Per class"),
        ("img", FIGURES["per_class"], "Per-class precision, recall and F1"),
        ("p", f"{shown} in %, mean over seeds."),
        ("table", headers, rows),
    ]


def _disagreement_blocks(summary: dict[str, Any]) -> list[tuple]:
    d = summary.get("disagreements")
    a, b = _lead(summary)
    la, lb = LABELS[a], LABELS[b]
    blocks: list[tuple] = [("h2", "Where they disagree" + (f": {la} and {lb}" if len(summary["pairs"]) > 1 else ""))]
    if d is None:
        return blocks + [("p", f"No seed was run by both {la} and {lb}, so there are no paired disagreements to show.")]
    text = (
        f"Seed {d['seed']}: {d['count']} test images are right in one and wrong in the other"
        f" (only {la} right: {d[f'only_{a}_right']}, only {lb} right: {d[f'only_{b}_right']})."
    )
    if d["count"] == 0:
        return blocks + [("p", text + " There is nothing to show.")]
    if not d["drawn"]:
        return blocks + [("p", text + " The grid is not drawn: the test images were not given to the report.")]
    return blocks + [
        ("p", text + f" Shown: {len(d['shown'])}, in test-set order (✓ right, ✗ wrong)."),
        ("img", FIGURES["disagreements"], "Test images the two disagree on"),
    ]


def report_blocks(summary: dict[str, Any]) -> list[tuple]:
    """The report top to bottom: title, verdict, evidence, how to read it."""
    title = f"{' vs '.join(LABELS[e] for e in summary['engines'])} on Fashion-MNIST: {summary['config']}"
    precision = f" {summary['precision']} ·" if summary.get("precision") else ""  # what the runs trained in
    meta = (
        f"Config {summary['config']} · {_seeds_text(summary)} · {summary['epochs']} epochs ·{precision}"
        f" {summary['test_images']:,} test images · {summary['generated'][:10]}"
    )
    how_to_read = [
        "TOST (two one-sided tests): two engines count as equivalent only if the confidence interval of the"
        " difference of their mean accuracies lies entirely inside ±margin; a small p means equivalence is shown.",
        "McNemar: on one seed, tests whether the images only one of two engines gets right split evenly between them;"
        " a large p means neither is systematically better on those images.",
        "Same prediction: the share of test images given the same class by both, right or wrong.",
    ]
    return (
        [("h1", title), ("p", meta)]
        + _verdict_blocks(summary)
        + _accuracy_blocks(summary)
        + _per_seed_blocks(summary)
        + _figure_blocks(summary)
        + _per_class_blocks(summary)
        + _disagreement_blocks(summary)
        + [("h2", "How to read this"), ("ul", how_to_read)]
    )
