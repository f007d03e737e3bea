"""What a compare report says, top to bottom (title, verdict, evidence, how to read it), as one
list of blocks rendered from the summary's numbers: the markdown and the HTML page are both
rendered from it (compare.report_render), so they always say the same thing."""

from __future__ import annotations

from typing import Any

from compare.report_figures import FIGURES
from compare.report_runs import LABELS
from compare.stats import format_p
from fmnist import BACKEND_NAMES, CLASS_NAMES


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.2f}"


def _mean_pm(s: dict[str, Any], scale: float = 1.0, fmt: str = ".2f") -> str:
    """'91.62 ± 0.12', or just the mean with one seed; 'n/a' when the runs did not record it."""
    if s["mean"] is None:
        return "n/a"
    text = f"{s['mean'] * scale:,{fmt}}"
    return text + (f" ± {s['std'] * scale:,{fmt}}" if s["std"] is not None else "")


def _seeds_text(summary: dict[str, Any]) -> str:
    seeds = {b: summary["backends"][b]["seeds"] for b in BACKEND_NAMES}
    if seeds["keras"] == seeds["lightning"]:
        return f"seeds {', '.join(map(str, seeds['keras']))}"
    return "; ".join(f"{LABELS[b]} seeds {', '.join(map(str, s))}" for b, s in seeds.items())


def _verdict_blocks(summary: dict[str, Any]) -> list[tuple]:
    eq = summary["equivalence"]
    state = {True: "equivalent", False: "different", None: "none"}[eq["equivalent"]]
    blocks: list[tuple] = [
        ("h2", "Verdict"),
        ("verdict", eq["verdict"], state),
        (
            "p",
            f"Two one-sided Welch t-tests (TOST) on the per-seed test accuracies, margin"
            f" ±{summary['margin'] * 100:.2f} points, alpha {summary['alpha']:g};"
            " differences are Keras − Lightning.",
        ),
    ]
    rows = summary["per_seed"]
    if rows:
        significant = sum(r["mcnemar_p"] < summary["alpha"] for r in rows)
        blocks.append(
            (
                "p",
                f"On the same seed the backends give the same class to"
                f" {_pct(summary['mean_prediction_agreement'])}% of test images on average; McNemar finds"
                f" a difference in which images they get wrong on {significant} of {len(rows)} seeds"
                f" (p < {summary['alpha']:g}).",
            )
        )
    return blocks


def _accuracy_blocks(summary: dict[str, Any]) -> list[tuple]:
    headers = [
        "Backend",
        "Seeds",
        "Test accuracy (%)",
        "Test loss",
        "Macro F1 (%)",
        "Parameters",
        "Train time (s)",
        "Train images/s",
    ]
    rows = []
    for b in BACKEND_NAMES:
        s = summary["backends"][b]
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
    same = summary["backends"]["keras"]["num_params"] == summary["backends"]["lightning"]["num_params"]
    note = (
        "Both backends build a model with the same number of parameters."
        if same
        else "The parameter counts differ: the two backends did not build the same architecture."
    )
    return [
        ("h2", "Accuracy"),
        ("p", "Mean ± standard deviation over seeds, on the same test images."),
        ("table", headers, rows),
        ("p", note),
    ]


def _per_seed_blocks(summary: dict[str, Any]) -> list[tuple]:
    blocks: list[tuple] = [("h2", "Per seed")]
    if not summary["per_seed"]:
        return blocks + [("p", "No seed was run by both backends, so no image-by-image comparison is possible.")]
    headers = [
        "Seed",
        "Keras acc (%)",
        "Lightning acc (%)",
        "Keras − Lightning (points)",
        "Same prediction (%)",
        "Only Keras right",
        "Only Lightning right",
        "McNemar p",
    ]
    rows = [
        [
            str(r["seed"]),
            _pct(r["keras_accuracy"]),
            _pct(r["lightning_accuracy"]),
            f"{(r['keras_accuracy'] - r['lightning_accuracy']) * 100:+.2f}",
            _pct(r["prediction_agreement"]),
            str(r["only_keras_right"]),
            str(r["only_lightning_right"]),
            format_p(r["mcnemar_p"]).lstrip("= "),
        ]
        for r in summary["per_seed"]
    ]
    paired = {r["seed"] for r in summary["per_seed"]}
    unpaired = sorted(s for b in BACKEND_NAMES for s in summary["backends"][b]["seeds"] if s not in paired)
    blocks.append(("table", headers, rows))
    if unpaired:
        blocks.append(
            (
                "p",
                f"Seeds run by one backend only (in the verdict, not in this table): "
                f"{', '.join(map(str, sorted(set(unpaired))))}.",
            )
        )
    return blocks


def _figure_blocks(summary: dict[str, Any]) -> list[tuple]:
    how = "summed" if summary["confusion_aggregate"] == "sum" else "averaged"
    top = {b: summary["backends"][b]["top_confusions"] for b in BACKEND_NAMES}
    rows = [
        [str(i + 1)] + [f"{t['true']} → {t['predicted']} ({t['count']:g})" for t in (top[b][i] for b in BACKEND_NAMES)]
        for i in range(len(top["keras"]))
    ]
    return [
        ("h2", "Learning curves"),
        ("img", FIGURES["curves"], "Learning curves of both backends"),
        ("p", "Lines: mean over seeds; bands: lowest to highest seed. Validation is the fixed held-out split."),
        ("h2", "Confusion matrices"),
        ("img", FIGURES["confusion"], "Confusion matrices and their difference"),
        (
            "p",
            f"Counts {how} over seeds, rows true class, columns predicted; both on one colour scale."
            " Right: Lightning − Keras.",
        ),
        ("p", "Most confused class pairs (true → predicted, count):"),
        ("table", ["Rank", "Keras", "Lightning"], rows),
    ]


def _per_class_blocks(summary: dict[str, Any]) -> list[tuple]:
    pcs = {b: summary["backends"][b]["per_class"] for b in BACKEND_NAMES}
    headers = (
        ["Class"]
        + [f"{LABELS[b]} {m}" for b in BACKEND_NAMES for m in ("P", "R", "F1")]
        + ["F1 Keras − Lightning (points)"]
    )
    rows = [
        [name]
        + [_pct(pcs[b][name][m]["mean"]) for b in BACKEND_NAMES for m in ("precision", "recall", "f1")]
        + [f"{(pcs['keras'][name]['f1']['mean'] - pcs['lightning'][name]['f1']['mean']) * 100:+.2f}"]
        for name in CLASS_NAMES
    ]
    return [
        ("h2", "Per class"),
        ("img", FIGURES["per_class"], "Per-class precision, recall and F1"),
        ("p", "Precision (P), recall (R) and F1 in %, mean over seeds."),
        ("table", headers, rows),
    ]


def _disagreement_blocks(summary: dict[str, Any]) -> list[tuple]:
    d = summary.get("disagreements")
    blocks: list[tuple] = [("h2", "Where they disagree")]
    if d is None:
        return blocks + [("p", "No seed was run by both backends, so there are no paired disagreements to show.")]
    text = (
        f"Seed {d['seed']}: {d['count']} test images are right in one backend and wrong in the other"
        f" (only Keras right: {d['only_keras_right']}, only Lightning right: {d['only_lightning_right']})."
    )
    if d["count"] == 0:
        return blocks + [("p", text + " There is nothing to show.")]
    if not d["drawn"]:
        return blocks + [("p", text + " The grid is not drawn: the test images were not given to the report.")]
    return blocks + [
        ("p", text + f" Shown: {len(d['shown'])}, in test-set order (✓ right, ✗ wrong)."),
        ("img", FIGURES["disagreements"], "Test images the backends disagree on"),
    ]


def report_blocks(summary: dict[str, Any]) -> list[tuple]:
    """The report top to bottom: title, verdict, evidence, how to read it."""
    title = f"Keras vs Lightning on Fashion-MNIST: {summary['config']}"
    meta = (
        f"Config {summary['config']} · {_seeds_text(summary)} · {summary['epochs']} epochs ·"
        f" {summary['test_images']:,} test images · {summary['generated'][:10]}"
    )
    how_to_read = [
        "TOST (two one-sided tests): the backends count as equivalent only if the confidence interval of the"
        " difference of their mean accuracies lies entirely inside ±margin; a small p means equivalence is shown.",
        "McNemar: on one seed, tests whether the images only one backend gets right split evenly between the two;"
        " a large p means neither backend is systematically better on those images.",
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
