"""Helpers of the app tests under Streamlit's AppTest: the app's one typed state, what the pages
computed, the image on screen, the widget-default invariant.

The app keeps everything the user set and everything the pages computed in one
:class:`~arpviz.app.state.AppState` under ``st.session_state["arpviz_state"]``; its ``shown``
(:class:`~arpviz.app.state.Shown`) holds the results the tests read (``explore``, ``sweep``,
``faith``, ``records``, ``comparison``, ``gallery_items``, ``gallery_shown``, ``report``,
``retrieval``, ``retrieval_metrics``, ``image``).

Widget keys (see ``arpviz/app/controls.py`` and ``arpviz/app/images.py``): the stage controls
``mode:<stage>``, ``k:<stage>`` (``k:<stage>:left`` / ``:right`` on RP against ARP),
``dsr:<stage>``, ``tau``, ``reset``; the image control ``image.source`` (values ``"sample"``,
``"upload"``, ``"file"``), ``image.sample``, ``image.show_truth``, ``image.upload``; each page's
own ``<page>.<field>``.
"""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
import pytest
from helpers import APP, run_app

#: The page scripts as ``AppTest.switch_page`` takes them.
PAGES = {
    "explore": "pages/explore.py",
    "compare": "pages/rp_vs_arp.py",
    "gallery": "pages/gallery.py",
    "adaptivity": "pages/adaptivity.py",
    "appendix": "pages/appendix_a.py",
    "training": "pages/training.py",
    "retrieval": "pages/retrieval.py",
}


def start(timeout: float = 180):
    """A fresh AppTest of ``app.py``, run once (Explore), with no exception shown."""
    from streamlit.testing.v1 import AppTest

    return run_app(AppTest.from_file(APP, default_timeout=timeout), timeout)


def state(at) -> Any:
    """The app's :class:`~arpviz.app.state.AppState` of this AppTest session."""
    return at.session_state["arpviz_state"]


def shown(at) -> Any:
    """What the pages computed last (:class:`~arpviz.app.state.Shown`)."""
    return state(at).shown


def view(at) -> Any:
    """Explore's :class:`~arpviz.explorer.results.ExploreView` on screen."""
    return shown(at).explore


def image_title(at) -> str:
    """The title of the image on screen (``"red.png, 90 x 60 px (your photo)"``)."""
    return shown(at).image.title


_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")


def rendered(text: object) -> str:
    """``text`` as the page shows it: the app escapes text from files, checkpoints and users
    for Markdown (:func:`arpviz.text.plain`: a backslash before every ASCII punctuation
    character); this takes the backslashes off again (Markdown markup such as ``**`` stays)."""
    return _ESCAPED.sub(r"\1", str(text))


def texts(elements) -> list[str]:
    """The ``value`` of each element (captions, messages, Markdown) as the page shows it
    (:func:`rendered`)."""
    return [rendered(e.value) for e in elements]


def image_captions(at) -> list[str]:
    """The page's captions that name the image it shows (``Image: **...**``)."""
    return [c for c in texts(at.caption) if c.startswith("Image: ")]


def switch(at, page: str):
    """Switch to ``page`` (a key of :data:`PAGES` or a script path) and run."""
    at.switch_page(PAGES.get(page, page))
    return run_app(at)


def png(colour: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    """A plain PNG of ``colour`` at ``size`` (width, height)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(at, name: str, data: bytes, mime: str = "image/png"):
    """Choose "Your photo" in the image control and upload ``data`` as ``name`` (two runs)."""
    at.radio(key="image.source").set_value("upload")
    run_app(at)
    at.file_uploader(key="image.upload").set_value((name, data, mime))
    return run_app(at)


def pick_sample(at, index: int):
    """Choose the data-set sample ``index`` in the image control (two runs)."""
    at.radio(key="image.source").set_value("sample")
    run_app(at)
    at.number_input(key="image.sample").set_value(index)
    return run_app(at)


def has_widget(widgets, key: str) -> bool:
    """Whether a widget with ``key`` is among ``widgets`` (e.g. ``at.slider``)."""
    return any(w.key == key for w in widgets)


def _select_slider_indices(widget) -> list[int]:
    options = list(widget.options)
    values = widget.value if isinstance(widget.value, (tuple, list)) else [widget.value]
    return [options.index(str(widget.format_func(v))) for v in values]


def defaults_are_values(at) -> None:
    """Every keyed widget's element default is the value the page computes with, so a widget
    the browser mounts afresh (after a run that did not draw it, after a page switch, or a
    rerun that crossed an upload's two runs) shows that value, not its minimum or first
    option. Every widget of the app is bound to the app's state, so this holds for all."""
    def keyed(widgets):
        return [w for w in widgets if w.key]

    for w in keyed(at.slider) + keyed(at.number_input):
        assert list(np.atleast_1d(w.proto.default)) == pytest.approx(
            list(np.atleast_1d(w.value))), (w.key, w.proto.default, w.value)
    for w in keyed(at.selectbox) + keyed(at.radio):
        assert w.proto.default == w.index, (w.key, w.proto.default, w.index)
    for w in keyed(at.checkbox) + keyed(at.toggle):
        assert w.proto.default == w.value, (w.key, w.proto.default, w.value)
    for w in keyed(at.select_slider):
        assert list(w.proto.default) == _select_slider_indices(w), (
            w.key, list(w.proto.default), w.value)
    for w in keyed(at.multiselect):
        assert list(w.proto.default) == list(w.indices), (w.key, list(w.proto.default),
                                                          w.value)
    for w in keyed(at.text_input):
        assert (w.proto.default or "") == (w.value or ""), (w.key, w.proto.default, w.value)
