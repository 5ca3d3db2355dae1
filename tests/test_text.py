"""Text from checkpoints and users shown as text (arpviz.text): Markdown and plotly's HTML."""

from __future__ import annotations

import string

import numpy as np

from arpviz.explorer.figures import panels as figures
from arpviz.explorer.results import compare_predictions
from arpviz.text import figure_text, plain

HOSTILE = "**bold** [x](javascript:alert(1)) <b>hi</b> :material/home: $x$ `code` # h"


def test_plain_escapes_every_markdown_character() -> None:
    escaped = plain(HOSTILE)
    for i, char in enumerate(escaped):  # every punctuation mark comes escaped
        if char in string.punctuation and char != "\\":
            assert escaped[i - 1] == "\\", (i, escaped)
    assert escaped.replace("\\", "") == HOSTILE
    assert escaped.startswith("\\*\\*bold\\*\\* \\[x\\]\\(javascript\\:alert\\(1\\)\\)")
    assert plain("two\nlines") == "two lines"
    assert plain(3) == "3"


def test_figure_text_escapes_html() -> None:
    assert figure_text("<a href='javascript:x'>y</a> & co") == \
        "&lt;a href='javascript:x'&gt;y&lt;/a&gt; &amp; co"


def test_class_names_reach_the_figures_escaped() -> None:
    names = ["<b>loud</b>", "quiet & calm", "c"]
    table = compare_predictions(np.array([0.6, 0.3, 0.1]), np.array([0.5, 0.4, 0.1]), names)
    fig = figures.predictions_figure(table)
    shown = " ".join(fig.data[0].y) + " ".join(fig.data[0].customdata)
    assert "<b>loud</b>" not in shown and "&lt;b&gt;loud&lt;/b&gt;" in shown
    assert "quiet &amp; calm" in shown


def test_class_names_reach_the_top5_table_escaped() -> None:
    from arpviz.explorer.tables import prediction_table_html

    names = [HOSTILE, "quiet & calm", "c"]
    table = compare_predictions(np.array([0.6, 0.3, 0.1]), np.array([0.5, 0.4, 0.1]), names)
    body = prediction_table_html(table, "trained setting")
    assert "<b>hi</b>" not in body and "&lt;b&gt;hi&lt;/b&gt;" in body
    assert "quiet &amp; calm" in body
    assert body.count("<tr>") == 1 + 3  # the header and every row
    assert "rank under the trained setting" in body
