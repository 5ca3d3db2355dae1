"""Text from files and users shown as text: no Markdown, no HTML, no icons, no maths."""

from __future__ import annotations

import html
import re

__all__ = ["figure_text", "plain"]

_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def plain(text: object) -> str:
    """``text`` escaped for Markdown (Streamlit's included): every ASCII punctuation character
    gets a backslash, so ``**bold** [x](javascript:...)``, ``<b>``, ``:material/x:`` and
    ``$x$`` show as typed. Line breaks become spaces."""
    return _PUNCTUATION.sub(r"\\\1", " ".join(str(text).split()))


def figure_text(text: object) -> str:
    """``text`` escaped for plotly's labels and hovers, which read a subset of HTML: ``<``,
    ``>`` and ``&`` become entities, so ``<a href=...>`` or ``<b>`` show as typed."""
    return html.escape(str(text), quote=False)
