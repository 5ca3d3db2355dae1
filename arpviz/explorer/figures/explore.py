"""Figures of the Explore and RP-against-ARP pages, built from :mod:`arpviz.explorer.results`'
plain results.

Every figure shows values on hover. Images are drawn in input-image pixel coordinates (x to the
right, y down), so boxes, confidence maps and crops line up with what the network saw.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import cv2
import numpy as np
import plotly.graph_objects as go
from plotly.colors import sequential

from arpviz.explorer.inputs import GroundTruth, crop_image
from arpviz.explorer.photo import Photo
from arpviz.explorer.results import ExploreView, StageView
from arpviz.models.stages import stage_label
from arpviz.palette import (
    NETWORK_INPUT,
    TRUTH,
    stage_colour,
)
from arpviz.text import figure_text

__all__ = [
    "boxes_figure",
    "confidence_range",
    "stage_box_traces",
    "confidence_figure",
    "crops_figure",
    "png_uri",
    "stage_views_figure",
]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- building blocks
#
# The figures a slider move redraws are built as plain trace and layout dicts and handed to
# plotly without its per-property validation (``_validate=False``): validation was 40% of an
# Explore rerun's CPU. tests/test_figures.py checks every figure against plotly's full
# validation instead, so a wrong property still fails a test. Images travel as PNG/JPEG data
# URIs (``source``), not as arrays of numbers.

_URIS: OrderedDict[bytes, str] = OrderedDict()
#: The confidence maps' colour scale, spelled out (plotly.js knows no "Inferno" by name; the
#: validation skipped here is what would have expanded it).
INFERNO = [[i / (len(sequential.Inferno) - 1), colour]
           for i, colour in enumerate(sequential.Inferno)]


def _figure(data: list[dict], layout: dict) -> go.Figure:
    """A figure from plain dicts, without plotly's per-property validation (see above)."""
    return go.Figure(data=data, layout=layout, _validate=False)


def png_uri(image: np.ndarray) -> str:
    """``uint8 [H, W, 3]`` as a PNG data URI (the last 64 kept, by a digest of the pixels)."""
    pixels = np.ascontiguousarray(image, dtype=np.uint8)
    key = hashlib.blake2b(pixels.tobytes(), digest_size=12).digest() + bytes(pixels.shape)
    uri = _URIS.get(key)
    if uri is None:
        ok, encoded = cv2.imencode(".png", pixels[..., ::-1])
        if not ok:
            raise ValueError("image could not be encoded as PNG")
        uri = "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")
        _URIS[key] = uri
        while len(_URIS) > 64:
            _URIS.popitem(last=False)
    _URIS.move_to_end(key)
    return uri


def _image_trace(source: str, x0: float, y0: float, dx: float, dy: float,
                 name: str = "image", axes: str = "") -> dict:
    """An image placed with its top-left pixel edge at ``(x0, y0)``, pixels ``dx x dy``."""
    # plotly places an image by the centre of its first pixel
    trace = {"type": "image", "source": source, "x0": x0 + dx / 2, "y0": y0 + dy / 2,
             "dx": dx, "dy": dy,
             "name": name, "hovertemplate": "x %{x:.1f}, y %{y:.1f}<extra></extra>"}
    if axes:
        trace.update(xaxis=f"x{axes}", yaxis=f"y{axes}")
    return trace


def _array_trace(image: np.ndarray, x0: float = 0.0, y0: float = 0.0, dx: float = 1.0,
                 dy: float = 1.0, name: str = "image", axes: str = "") -> dict:
    return _image_trace(png_uri(image), x0, y0, dx, dy, name, axes)


def _image_axes(width: float, height: float, x0: float = 0.0, y0: float = 0.0,
                domain: tuple[list[float], list[float]] | None = None, axes: str = "",
                ) -> dict:
    """Layout axes showing ``[x0, x0 + width] x [y0, y0 + height]``, y down, square pixels."""
    x = {"range": [x0, x0 + width], "showgrid": False, "zeroline": False,
         "constrain": "domain"}
    y = {"range": [y0 + height, y0], "showgrid": False, "zeroline": False,
         "constrain": "domain", "scaleanchor": f"x{axes}"}
    if domain is not None:
        x["domain"], y["domain"] = domain
        x["anchor"], y["anchor"] = f"y{axes}", f"x{axes}"
    return {f"xaxis{axes}": x, f"yaxis{axes}": y}


def _rect(box: Sequence[float]) -> tuple[list[float], list[float]]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, x2, x2, x1, x1], [y1, y1, y2, y2, y1]


def _stage_hover(stage: StageView, box: Sequence[float]) -> str:
    x1, y1, x2, y2 = box
    k = "" if stage.k is None else f", k {stage.k:.2f}"
    return (
        f"<b>{stage.label}</b>{k}<br>"
        f"box x {x1:.1f}-{x2:.1f}, y {y1:.1f}-{y2:.1f}<br>"
        f"crop {y2 - y1:.1f} x {x2 - x1:.1f} px (height x width)<br>"
        f"rates {stage.rates[0]:.3f} x {stage.rates[1]:.3f} (height x width)<br>"
        f"output {stage.out_size[0]} x {stage.out_size[1]} cells<extra></extra>"
    )


#: Line styles of the stages in drawing order (with the inset, coincident boxes stay apart).
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def _inset(box: Sequence[float], amount: float) -> tuple[float, float, float, float]:
    """``box`` shrunk by ``amount`` on every side (never past its centre)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    dx = min(amount, (x2 - x1) / 2 * 0.9)
    dy = min(amount, (y2 - y1) / 2 * 0.9)
    return (x1 + dx, y1 + dy, x2 - dx, y2 - dy)


def _box_trace(stage: StageView, box: Sequence[float] | None = None, dash: str | None = None,
               legend: str | None = None, showlegend: bool = True,
               drawn: Sequence[float] | None = None, width: float = 3) -> dict:
    """A stage's box as a line trace: hover shows ``box`` (default the stage's image box),
    the line is drawn at ``drawn`` (default ``box``; an inset copy keeps coincident boxes
    apart)."""
    box = stage.image_box if box is None else box
    xs, ys = _rect(box if drawn is None else drawn)
    line = {"color": stage_colour(stage.name), "width": width}
    if dash:
        line["dash"] = dash
    return {"type": "scatter", "x": xs, "y": ys, "mode": "lines",
            "name": legend or stage.label, "line": line,
            "hovertemplate": _stage_hover(stage, box), "showlegend": showlegend,
            "legendgroup": stage.name}


def _contrast(colour: str) -> str:
    """Black or white, whichever reads on ``colour`` (``#rrggbb``)."""
    r, g, b = (int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return "#000000" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 else "#ffffff"


def _corner_label(stage: StageView, drawn: Sequence[float], row: int, unit: float) -> dict:
    """The stage's short name in its colour at the top-left corner inside its (drawn) box;
    labels of boxes whose corners meet stack downwards (``row``)."""
    return {"x": drawn[0] + unit, "y": drawn[1] + unit + row * 16 * unit, "xref": "x",
            "yref": "y", "text": stage_label(stage.name), "showarrow": False,
            "xanchor": "left", "yanchor": "top", "font": {"size": 11,
                                                          "color": _contrast(stage_colour(
                                                              stage.name))},
            "bgcolor": stage_colour(stage.name), "opacity": 0.9, "borderpad": 1}


def stage_box_traces(view: ExploreView, to_image=None, unit: float = 1.0
                     ) -> tuple[list[dict], list[dict]]:
    """Every stage's box, told apart: stage ``i`` is drawn inset by ``3 i`` display pixels
    (``unit``: image pixels per display pixel) with its own dash, a corner label in its colour
    (stacked where corners meet); hover gives the true box. Returns ``(traces,
    annotations)``. Click a legend entry to hide a stage's box."""
    traces, labels = [], []
    corners: list[tuple[float, float]] = []
    for i, stage in enumerate(view.stages.values()):
        true = stage.image_box if to_image is None else to_image(stage.image_box)
        drawn = _inset(true, 3 * i * unit)
        traces.append(_box_trace(stage, true, dash=_DASHES[i % len(_DASHES)], drawn=drawn))
        near = sum(1 for cx, cy in corners if abs(cx - drawn[0]) < 40 * unit
                   and abs(cy - drawn[1]) < 16 * unit * (len(corners) + 1))
        corners.append((drawn[0], drawn[1]))
        labels.append(_corner_label(stage, drawn, near, unit))
    return traces, labels


def _truth_traces(truth: GroundTruth, to_image=None) -> list[dict]:
    box = truth.box if to_image is None else to_image(truth.box)
    xs, ys = _rect(box)
    traces = [{"type": "scatter", "x": xs, "y": ys, "mode": "lines",
               "name": f"truth: {figure_text(truth.name)}",
               "line": {"color": TRUTH, "width": 2, "dash": "dash"},
               "hovertemplate": f"ground truth box<br>{figure_text(truth.name)}"
                                "<extra></extra>"}]
    if truth.keypoints:
        names = list(truth.keypoints)
        pts = np.array([truth.keypoints[n] for n in names], dtype=float)
        if to_image is not None:
            pts = np.array([to_image((x, y, x, y))[:2] for x, y in pts])
        traces.append({
            "type": "scatter", "x": pts[:, 0].tolist(), "y": pts[:, 1].tolist(),
            "mode": "markers", "name": "truth: keypoints", "text": names,
            "marker": {"color": TRUTH, "size": 8, "symbol": "x",
                       "line": {"color": "#000000", "width": 1}},
            "hovertemplate": "%{text}<br>x %{x:.1f}, y %{y:.1f}<extra></extra>"})
    return traces


def _layout(title: str | None, height: int, **extra: object) -> dict:
    """Title on top, then a horizontal legend above the plot area, tight margins."""
    layout: dict = {
        "height": height, "margin": {"l": 10, "r": 10, "t": 75 if title else 45, "b": 10},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.01, "x": 0},
        "hovermode": "closest",
    }
    if title:
        layout["title"] = {"text": title, "y": 0.99, "yanchor": "top", "x": 0.0,
                           "font": {"size": 14}}
    layout.update(extra)
    return layout


def _wrap(text: str, width: int = 28) -> str:
    """``text`` broken into lines of at most about ``width`` characters at spaces (plotly's
    ``<br>``), so long class names show whole."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "<br>".join(lines)


# --------------------------------------------------------------------------- figures


def boxes_figure(
    view: ExploreView,
    truth: GroundTruth | None = None,
    title: str | None = None,
    height: int = 460,
    *,
    photo: Photo | None = None,
) -> go.Figure:
    """Every pooled stage's crop box (a colour, a dash and a corner label per stage, drawn inset
    so that coincident boxes stay visible; hover: the true box) on the image.

    Without ``photo``: on the network's input (input pixels). With ``photo``: on the image as
    it was uploaded, at its true aspect and in its own pixels, with the network's input (the
    evaluation transform's resize and centre crop) drawn as a dashed frame just outside it, so
    a crop of the whole input never hides it. ``truth`` adds the ground-truth box (dashed
    white) and keypoints (crosses).
    """
    if photo is None:
        h, w = view.image.shape[:2]
        data = [_array_trace(view.image)]
        to_image = None
    else:
        w, h = photo.width, photo.height
        source, shown = photo.copy()
        data = [_image_trace(source, 0.0, 0.0, shown, shown, "photo")]
        to_image = photo.to_image
    unit = max(w, h) / max(height - 60, 100)  # image pixels per display pixel, about
    if photo is not None:
        x1, y1, x2, y2 = photo.input_frame
        xs, ys = _rect((x1 - 2 * unit, y1 - 2 * unit, x2 + 2 * unit, y2 + 2 * unit))
        data.append({"type": "scatter", "x": xs, "y": ys, "mode": "lines",
                     "name": "network input",
                     "line": {"color": NETWORK_INPUT, "width": 2, "dash": "dash"},
                     "hovertemplate": "what the network sees (resize and centre crop)"
                                      "<extra></extra>"})
    traces, labels = stage_box_traces(view, to_image, unit)
    data += traces
    if truth is not None:
        data += _truth_traces(truth, to_image)
    axes = _image_axes(w, h)
    pad = 3 * unit
    axes["xaxis"]["range"] = [-pad, w + pad]
    axes["yaxis"]["range"] = [h + pad, -pad]
    return _figure(data, _layout(title, height, annotations=labels, **axes))


#: Modes whose confidence is ``sigmoid(tau * s)`` (0 to 1); the others' is ``relu(tau * s)``
#: (0 to its maximum) or a mask (0 to 1).
_SIGMOID_MODES = ("rp", "arp")


def confidence_range(mode: str, confidence: np.ndarray) -> tuple[float, float]:
    """The colour range of a stage's confidence map: 0 to 1 for the paper's sigmoid (RP, ARP)
    and for a mask, 0 to the map's maximum for the floor-free maps (ARP-FG, the learnt zoom)."""
    if mode in _SIGMOID_MODES or mode.startswith("oracle"):
        return 0.0, 1.0
    top = float(np.nanmax(confidence)) if confidence.size else 1.0
    return 0.0, top if top > 0 else 1.0


def _colour_scale(stage: StageView) -> tuple[str, float, float]:
    """What a stage's confidence colours mean: the map's formula and its colour range."""
    formula = "C = sigmoid(s)" if stage.mode in _SIGMOID_MODES else (
        "mask" if stage.mode.startswith("oracle") else "C = relu(s)")
    return (formula, *confidence_range(stage.mode, np.asarray(stage.confidence)))


def _confidence_traces(view: ExploreView, stage: str, opacity: float, axes: str = "",
                       colourbar: dict | None = None, photo: Photo | None = None,
                       small: bool = False) -> list[dict]:
    """The input image, a stage's confidence map on the region its map covers (its frame,
    drawn dotted when it is Conv3's crop) and the stage's crop box, on axes ``axes``. With
    ``photo``: the photo at its own aspect (its small copy with ``small``), the map's cells and
    the boxes in its pixels."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must lie in [0, 1], got {opacity!r}")
    if stage not in view.stages:
        raise ValueError(f"no pooled stage {stage!r}; stages: {list(view.stages)}")
    s = view.stages[stage]
    h, w = view.image.shape[:2]
    conf = np.asarray(s.confidence, dtype=np.float32)
    to_image = (lambda box: tuple(box)) if photo is None else photo.to_image
    fx1, fy1, fx2, fy2 = to_image(s.frame)
    dx, dy = (fx2 - fx1) / conf.shape[1], (fy2 - fy1) / conf.shape[0]
    on_axes = {} if not axes else {"xaxis": f"x{axes}", "yaxis": f"y{axes}"}
    low, high = confidence_range(s.mode, conf)
    if photo is None:
        base = _array_trace(view.image, axes=axes)
    else:
        source, shown = photo.copy(small=small)
        base = _image_trace(source, 0.0, 0.0, shown, shown, "photo", axes)
    data = [base, {
        "type": "heatmap", "z": np.round(conf, 4).tolist(), "x0": fx1 + dx / 2, "dx": dx,
        "y0": fy1 + dy / 2, "dy": dy, "opacity": opacity, "colorscale": INFERNO,
        "zmin": low, "zmax": high,
        "name": "confidence", "showscale": colourbar is not None,
        "colorbar": colourbar or {"title": {"text": "C"}, "thickness": 12},
        "hovertemplate": f"{s.label}<br>x %{{x:.1f}}, y %{{y:.1f}}<br>confidence %{{z:.4f}}"
                         "<extra></extra>", **on_axes,
    }]
    if s.frame != (0.0, 0.0, float(w), float(h)):
        xs, ys = _rect(to_image(s.frame))
        data.append({"type": "scatter", "x": xs, "y": ys, "mode": "lines",
                     "name": "map covers (Conv3 crop)", "showlegend": not axes,
                     "line": {"color": stage_colour("conv3"), "width": 2, "dash": "dot"},
                     "hoverinfo": "skip", **on_axes})
    box = _box_trace(s, to_image(s.image_box), legend=f"{s.label} crop",
                     showlegend=not axes)
    data.append({**box, **on_axes})
    return data


def confidence_figure(
    view: ExploreView,
    stage: str,
    opacity: float = 0.6,
    title: str | None = None,
    height: int = 400,
) -> go.Figure:
    """A stage's keypoint confidence map laid over the input image, on the region its map
    covers (input pixels).

    Conv3's map covers the whole image; Conv4's covers Conv3's crop (its frame, drawn
    dotted). The stage's crop box is drawn on top.
    """
    data = _confidence_traces(view, stage, opacity,
                              colourbar={"title": {"text": "C"}, "thickness": 12})
    s = view.stages[stage]
    h, w = view.image.shape[:2]
    conf = s.confidence
    title = title or f"{s.label}: keypoint confidence ({conf.shape[0]} x {conf.shape[1]} map)"
    return _figure(data, _layout(title, height, **_image_axes(w, h)))


def stage_views_figure(view: ExploreView, opacity: float = 0.6, long_side: int = 128,
                       height: int = 560, *, photo: Photo | None = None) -> go.Figure:
    """Every pooled stage in one figure, a column each (one chart redraws faster than one per
    view): on top its keypoint confidence map over the input image with its crop box, below the
    image region it crops resampled to its output size. Titles give the map size, the rates
    and the crop -> output size (height x width); hover gives each cell's confidence and the
    crops' input-image coordinates. With ``photo`` the maps lie on the photo at its own aspect
    (in its pixels), as the boxes of :func:`boxes_figure` do."""
    names = list(view.stages)
    if not names:
        return _figure([], _layout(None, 120, annotations=[
            {"text": "no pooled stage in this model", "showarrow": False}]))
    h, w = view.image.shape[:2]
    n = len(names)
    scales = [_colour_scale(view.stages[name]) for name in names]
    shared = all(scale == scales[0] for scale in scales)  # one colour bar says it for all
    gap = 0.1  # room for a column's colour bar
    width = (1 - gap * n) / n if not shared else (1 - 0.04 * (n - 1) - gap) / n
    data: list[dict] = []
    layout = _layout(None, height, annotations=[], showlegend=False)
    chars = max(16, int(120 * width))  # about the characters a column's title holds
    for c, name in enumerate(names):
        s = view.stages[name]
        left = c * (width + (0.04 if shared else gap))
        x_domain = [max(0.0, left), min(1.0, left + width)]
        top, bottom = str(2 * c + 1) if c else "", str(2 * c + 2)
        colourbar = None if shared and c < n - 1 else {
            "title": {"text": scales[c][0], "side": "right"}, "thickness": 8, "len": 0.36,
            "y": 0.9, "yanchor": "top", "x": min(1.0, left + width) + 0.005,
            "xanchor": "left", "tickfont": {"size": 9}}
        data += _confidence_traces(view, name, opacity, top, colourbar, photo, small=True)
        pw, ph = (w, h) if photo is None else (photo.width, photo.height)
        layout.update(_image_axes(pw, ph, domain=(x_domain, [0.52, 0.9]), axes=top))
        crop = crop_image(view.image, s.image_box, s.out_size, long_side)
        x1, y1, x2, y2 = s.image_box
        data.append(_array_trace(crop, x1, y1, (x2 - x1) / crop.shape[1],
                                 (y2 - y1) / crop.shape[0], name=s.label, axes=bottom))
        layout.update(_image_axes(x2 - x1, y2 - y1, x1, y1, domain=(x_domain, [0.0, 0.38]),
                                  axes=bottom))
        ch, cw = s.crop_size
        conf = s.confidence
        nb = "\u00a0"  # a size such as "4 x 5 cells" never breaks across lines
        for y, text in ((1.0, f"<b>{s.label}</b><br>" + _wrap(
                             f"confidence, {conf.shape[0]}{nb}x{nb}{conf.shape[1]}{nb}map; "
                             f"rates {s.rates[0]:.3f}{nb}x{nb}{s.rates[1]:.3f}", chars)),
                        (0.47, _wrap(f"what the next layer sees: {ch:.0f}{nb}x{nb}{cw:.0f}{nb}px"
                                     f" -> {s.out_size[0]}{nb}x{nb}{s.out_size[1]}{nb}cells",
                                     chars))):
            layout["annotations"].append({
                "text": text, "x": left + width / 2, "y": y, "xref": "paper", "yref": "paper",
                "xanchor": "center", "yanchor": "top", "showarrow": False,
                "font": {"size": 12}})
    layout["margin"] = {"l": 10, "r": 40, "t": 20, "b": 10}
    return _figure(data, layout)


def crops_figure(
    views: ExploreView | Mapping[str, ExploreView],
    long_side: int = 128,
    height: int = 260,
) -> go.Figure:
    """The image region of every stage's crop, resampled to the stage's output aspect.

    ``views`` is one view (one row) or ``{row title: view}`` (a row each, e.g. ARP and RP).
    Titles give the crop and the output size, height x width; hover shows input-image
    coordinates.
    """
    rows = {"": views} if isinstance(views, ExploreView) else dict(views)
    names: list[str] = []
    for view in rows.values():
        names += [n for n in view.stages if n not in names]
    if not names:
        return _figure([], _layout(None, 120, annotations=[
            {"text": "no pooled stage in this model", "showarrow": False}]))
    n_rows, n_cols = len(rows), len(names)
    gap_x, gap_y = 0.04, 0.06 if n_rows > 1 else 0.0
    width = (1 - gap_x * (n_cols - 1)) / n_cols
    row_h = (1 - gap_y * (n_rows - 1)) / n_rows
    band = 48 / (height * n_rows)  # room for a caption of up to three lines above each crop
    chars = max(18, int(130 * width))
    data: list[dict] = []
    layout = _layout(None, height * n_rows, annotations=[])
    panel = 0
    for r, (title, view) in enumerate(rows.items()):
        y_top = 1 - r * (row_h + gap_y)
        for c, n in enumerate(names):
            panel += 1
            axes = "" if panel == 1 else str(panel)
            s = view.stages.get(n)
            x_left = c * (width + gap_x)
            domain = ([max(0.0, x_left), min(1.0, x_left + width)],
                      [max(0.0, y_top - row_h), min(1.0, y_top - band)])
            if s is None:
                layout.update(_image_axes(1, 1, domain=domain, axes=axes))
                layout[f"xaxis{axes}"]["visible"] = False
                layout[f"yaxis{axes}"]["visible"] = False
                continue
            crop = crop_image(view.image, s.image_box, s.out_size, long_side)
            x1, y1, x2, y2 = s.image_box
            data.append(_array_trace(crop, x1, y1, (x2 - x1) / crop.shape[1],
                                     (y2 - y1) / crop.shape[0], name=s.label, axes=axes))
            layout.update(_image_axes(x2 - x1, y2 - y1, x1, y1, domain=domain, axes=axes))
            ch, cw = s.crop_size
            prefix = f"{title}: " if title else ""
            nb = "\u00a0"
            layout["annotations"].append({
                "text": _wrap(f"{prefix}{s.label}", chars) + "<br>" + _wrap(
                    f"{ch:.0f}{nb}x{nb}{cw:.0f}{nb}px -> {s.out_size[0]}{nb}x{nb}"
                    f"{s.out_size[1]}{nb}cells", chars),
                "x": x_left + width / 2, "y": y_top, "xref": "paper", "yref": "paper",
                "xanchor": "center", "yanchor": "top", "showarrow": False,
                "font": {"size": 12}})
    return _figure(data, layout)
