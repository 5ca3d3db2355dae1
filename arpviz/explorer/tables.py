"""Small tables the pages show as static HTML (every text escaped).

A slider step on Explore redraws the top-5; as an interactive data grid it cost about 20 ms
per rerun more than static HTML (``benchmarks/browser_latency.py``), so it is drawn
as a plain table with a header on every column and a real bar for the probability.
"""

from __future__ import annotations

import html

from arpviz.explorer.results import PredictionTable
from arpviz.palette import SERIES

__all__ = ["prediction_table_html"]

_STYLE = ("width:100%;border-collapse:collapse;font-size:0.875rem;"
          "font-variant-numeric:tabular-nums")
_CELL = "padding:2px 6px;border-bottom:1px solid rgba(128,128,128,0.25);text-align:"
_TRACK = ("display:inline-block;vertical-align:middle;width:64px;height:8px;"
          "background:rgba(128,128,128,0.22);border-radius:2px;margin-right:6px")


def _cell(text: str, align: str = "left", tag: str = "td", title: str | None = None) -> str:
    hover = "" if title is None else f' title="{html.escape(title)}"'
    return f'<{tag} style="{_CELL}{align}"{hover}>{text}</{tag}>'


def _bar(prob: float) -> str:
    width = max(0.0, min(1.0, prob)) * 100
    return (f'<span style="white-space:nowrap"><span style="{_TRACK}"><span style="display:'
            f'block;height:8px;width:{width:.1f}%;background:{SERIES[0]};border-radius:2px">'
            f'</span></span>{prob:.3f}</span>')


def prediction_table_html(table: PredictionTable, reference: str = "trained setting") -> str:
    """The top-5 of ``table`` as an HTML table: rank, the full class name (escaped; hover for
    it), the probability with a bar, its change and the rank under ``reference``."""
    header = "".join(_cell(html.escape(name), align, "th") for name, align in (
        ("rank", "right"), ("class", "left"), ("p", "left"), ("Δp", "right"),
        (f"rank under the {reference}", "right")))
    rows = []
    for r in table.rows:
        change = "" if r.rank_change == 0 else f" ({r.rank_change:+d})"
        name = html.escape(r.name)
        rows.append("<tr>" + "".join((
            _cell(str(r.rank), "right"),
            _cell(name, "left", title=r.name),
            _cell(_bar(r.prob)),
            _cell(f"{r.delta:+.3f}", "right"),
            _cell(f"{r.ref_rank}{change}", "right"),
        )) + "</tr>")
    return (f'<table style="{_STYLE}"><thead><tr>{header}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")
