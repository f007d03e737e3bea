"""The report's blocks (compare.report_text) as GitHub markdown and as one self-contained HTML page."""

from __future__ import annotations

import base64
import html


def render_markdown(blocks: list[tuple]) -> str:
    """GitHub-flavoured markdown; images are referenced by file name, next to report.md."""
    out = []
    for kind, *args in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append(f"{'#' * int(kind[1])} {args[0]}")
        elif kind == "p":
            out.append(args[0])
        elif kind == "verdict":
            out.append(f"**{args[0]}**")
        elif kind == "img":
            out.append(f"![{args[1]}]({args[0]})")
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in args[0]))
        elif kind == "table":
            cells = lambda row: "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"  # noqa: E731
            out.append("\n".join([cells(args[0]), "|" + "---|" * len(args[0])] + [cells(r) for r in args[1]]))
    return "\n\n".join(out) + "\n"


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; max-width: 1200px;
       margin: 2em auto; padding: 0 1em; line-height: 1.5; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; } th { background: #f3f3f3; }
td:not(:first-child) { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; display: block; margin: 0.8em 0; }
.verdict { font-size: 1.1em; font-weight: 600; padding: 0.8em 1em; border-left: 6px solid #888; background: #f6f6f6; }
.verdict.equivalent { border-color: #2e7d32; background: #edf7ed; }
.verdict.different { border-color: #c62828; background: #fdecea; }
"""


def render_html(blocks: list[tuple], images: dict[str, bytes]) -> str:
    """One self-contained page: CSS inline, every figure a base64 data URI."""
    e = html.escape
    body = []
    for kind, *args in blocks:
        if kind in ("h1", "h2", "h3", "p"):
            body.append(f"<{kind}>{e(args[0])}</{kind}>")
        elif kind == "verdict":
            body.append(f'<p class="verdict {args[1]}">{e(args[0])}</p>')
        elif kind == "img":
            data = base64.b64encode(images[args[0]]).decode("ascii")
            body.append(f'<img src="data:image/png;base64,{data}" alt="{e(args[1])}">')
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in args[0]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{e(h)}</th>" for h in args[0])
            rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in args[1])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    title = e(blocks[0][1]) if blocks and blocks[0][0] == "h1" else "Report"
    return (
        f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n'
        f"<style>{CSS}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )
