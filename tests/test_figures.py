"""arpviz.explorer.figures.explore: the Explore figures, built from hand-made results."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.utils import PlotlyJSONEncoder

from arpviz.explorer import inputs
from arpviz.explorer import results as session
from arpviz.explorer.figures import explore as fg
from arpviz.explorer.figures import panels as pn
from arpviz.models.stages import stage_label
from arpviz.palette import stage_colour

NAMES = tuple(f"class {i}" for i in range(6))


def _stage(name: str, image_box, frame, mode: str = "arp", k: float | None = 0.7,
           rates=(0.6, 0.55), map_size=(8, 10)) -> session.StageView:
    rng = np.random.default_rng(len(name))
    return session.StageView(
        name=name, label=stage_label(name, mode), mode=mode, k=k, dsr=(0.5, 0.5),
        rates=rates,
        box=(1.0, 1.0, 5.0, 6.0), image_box=image_box, frame=frame, map_size=map_size,
        out_size=(map_size[0] // 2, map_size[1] // 2),
        confidence=rng.random(map_size).astype(np.float32),
    )


def _view(shift: float = 0.0, probs=None) -> session.ExploreView:
    image = np.zeros((64, 64, 3), np.uint8)
    image[..., 1] = np.arange(64, dtype=np.uint8)[None, :] * 4
    conv3 = _stage("conv3", (8.0 + shift, 4.0, 56.0, 52.0), (0.0, 0.0, 64.0, 64.0))
    local = _stage("conv4.local0", (20.0, 10.0 + shift, 44.0, 40.0), conv3.image_box,
                   rates=(0.5, 0.5))
    probs = np.array([0.3, 0.25, 0.2, 0.1, 0.1, 0.05]) if probs is None else probs
    table = session.compare_predictions(probs, np.array([0.2, 0.3, 0.2, 0.1, 0.1, 0.1]), NAMES)
    return session.ExploreView(image, {}, {"conv3": conv3, "conv4.local0": local}, probs, table)


def _by_name(fig: go.Figure) -> dict[str, object]:
    return {t.name: t for t in fig.data}


def _decoded(trace) -> np.ndarray:
    """The pixels of an image trace's data URI."""
    import base64
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(trace.source.split(",", 1)[1]))))


def test_stage_colours_differ_per_branch() -> None:
    colours = [stage_colour(n) for n in ("conv3", "conv4.local0", "conv4.local1")]
    assert len(set(colours)) == 3
    assert stage_colour("conv4.local7") == stage_colour("conv4.local7")


def test_boxes_figure_draws_every_stage_and_the_truth() -> None:
    view = _view()
    fig = fg.boxes_figure(view, title="t")
    assert isinstance(fig.data[0], go.Image)
    boxes = _by_name(fig)
    conv3 = boxes["Conv3 (ARP)"]
    assert list(conv3.x) == [8.0, 56.0, 56.0, 8.0, 8.0]
    assert list(conv3.y) == [4.0, 4.0, 52.0, 52.0, 4.0]
    assert conv3.line.color == stage_colour("conv3")
    assert "Conv4 local 0 (ARP)" in boxes
    assert "rates 0.600 x 0.550 (height x width)" in conv3.hovertemplate
    low, high = fig.layout.yaxis.range
    assert low > 64 and high < 0 and low - 64 == pytest.approx(-high)  # y down, a margin
    truth = inputs.GroundTruth(1, "class 1", (10.0, 12.0, 30.0, 40.0), {"beak": (11.0, 13.0)})
    with_truth = _by_name(fg.boxes_figure(view, truth))
    assert list(with_truth["truth: class 1"].x) == [10.0, 30.0, 30.0, 10.0, 10.0]
    assert list(with_truth["truth: keypoints"].text) == ["beak"]
    fig.to_json()


def test_confidence_figure_places_the_map_on_its_frame() -> None:
    view = _view()
    fig = fg.confidence_figure(view, "conv4.local0", opacity=0.3)
    heat = next(t for t in fig.data if isinstance(t, go.Heatmap))
    x1, y1, x2, y2 = view.stages["conv3"].image_box  # Conv4's map covers Conv3's crop
    dx, dy = (x2 - x1) / 10, (y2 - y1) / 8
    assert heat.dx == pytest.approx(dx) and heat.dy == pytest.approx(dy)
    assert heat.x0 == pytest.approx(x1 + dx / 2) and heat.y0 == pytest.approx(y1 + dy / 2)
    assert heat.opacity == 0.3
    np.testing.assert_allclose(np.asarray(heat.z), view.stages["conv4.local0"].confidence,
                               atol=5e-5)  # 4 decimals on the wire
    assert "map covers (Conv3 crop)" in _by_name(fig)
    whole = fg.confidence_figure(view, "conv3")
    heat3 = next(t for t in whole.data if isinstance(t, go.Heatmap))
    assert heat3.x0 == pytest.approx(3.2) and heat3.dx == pytest.approx(6.4)
    assert "map covers (Conv3 crop)" not in _by_name(whole)
    with pytest.raises(ValueError, match="opacity"):
        fg.confidence_figure(view, "conv3", opacity=1.5)
    with pytest.raises(ValueError, match="no pooled stage"):
        fg.confidence_figure(view, "conv4.global")


def test_crops_figure_one_panel_per_stage_and_row() -> None:
    view = _view()
    fig = fg.crops_figure(view, long_side=20)
    images = [t for t in fig.data if isinstance(t, go.Image)]
    assert len(images) == 2
    assert _decoded(images[0]).shape == (16, 20, 3)  # out_size 4 x 5 -> 16 x 20
    assert images[0].x0 == pytest.approx(8.0 + 48 / 20 / 2)  # hover in image coordinates
    two = fg.crops_figure({"ARP": view, "RP": _view(shift=2.0)}, long_side=20)
    assert len([t for t in two.data if isinstance(t, go.Image)]) == 4
    titles = [a.text for a in two.layout.annotations]
    assert any(t.startswith("ARP: Conv3") for t in titles)
    assert any(t.startswith("RP: Conv4 local 0") for t in titles)
    empty = session.ExploreView(view.image, {}, {}, view.probs, view.predictions)
    assert len(fg.crops_figure(empty).data) == 0


def test_rates_figure_values() -> None:
    fig = pn.rates_figure(_view())
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    assert len(bars) == 1
    assert list(bars[0].x) == ["Conv3 h", "Conv3 w", "Conv4 local 0 h", "Conv4 local 0 w"]
    assert list(bars[0].y) == [0.6, 0.55, 0.5, 0.5]
    dsr = _by_name(fig)["DSR (ARP's lower bound; the output size)"]
    assert list(dsr.y) == [0.5, 0.5, 0.5, 0.5]
    grouped = pn.rates_figure({"ARP": _view(), "RP": _view()})
    assert [t.name for t in grouped.data if isinstance(t, go.Bar)] == ["ARP", "RP"]


def test_predictions_figure() -> None:
    view = _view()
    fig = pn.predictions_figure(view.predictions, "trained")
    now, ref = _by_name(fig)["now"], _by_name(fig)["trained"]
    rows = view.predictions.rows
    assert list(now.x) == [r.prob for r in rows][::-1]
    assert list(ref.x) == [r.ref_prob for r in rows][::-1]
    assert list(now.y)[-1] == "1. class 0"
    assert "change +0.1000, rank +1" in now.customdata[-1]


def test_sweep_figure() -> None:
    ks = np.linspace(0.1, 2.0, 5)
    probs = np.tile(np.array([0.5, 0.3, 0.2]), (5, 1))
    sweep = session.KSweep("conv3", ks, probs, np.linspace(64, 128, 5), np.linspace(60, 128, 5),
                      np.full((5, 2), 0.5), (0, 2), ("a", "c"), 0.8, 1.0)
    fig = pn.sweep_figure(sweep)
    traces = _by_name(fig)
    assert list(traces["a"].y) == [0.5] * 5 and list(traces["c"].y) == [0.2] * 5
    assert list(traces["crop width"].y) == list(np.linspace(64, 128, 5))
    assert len(fig.layout.shapes) == 4  # trained and current k, on both panels
    marks = [a.text for a in fig.layout.annotations if " k " in a.text]
    assert marks == ["trained k 1.00", "now k 0.80"]
    same = pn.sweep_figure(session.KSweep(**{**sweep.__dict__, "current_k": 1.0}))
    assert [a.text for a in same.layout.annotations if " k " in a.text] == ["trained = now k 1.00"]
    fig.to_json()


def test_every_figure_passes_plotly_validation() -> None:
    """The figures skip plotly's validation when built; here they get all of it."""
    from arpviz.explorer.photo import Photo
    from arpviz.geometry import InputGeometry

    view = _view()
    photo = Photo("data:image/jpeg;base64,", 200, 100, InputGeometry.of(200, 100, 64))
    sweep = session.KSweep("conv3", np.linspace(0.1, 2.0, 3), np.full((3, 6), 1 / 6),
                           np.ones(3), np.ones(3), np.full((3, 2), 0.5), (0, 1), ("a", "b"),
                           0.7, 0.7, "arp")
    figures = [fg.boxes_figure(view), fg.boxes_figure(view, photo=photo),
               fg.stage_views_figure(view, 0.4),
               fg.confidence_figure(view, "conv3"), fg.crops_figure(view),
               fg.crops_figure({"ARP": view, "RP": _view(shift=1.0)}), pn.rates_figure(view),
               pn.predictions_figure(view.predictions), pn.sweep_figure(sweep)]
    for fig in figures:
        spec = fig.to_dict()
        validated = go.Figure(spec).to_dict()  # raises on any invalid property
        # and coerces nothing: what was sent is what validation would have sent
        def plain(value: object) -> object:
            return json.loads(json.dumps(value, cls=PlotlyJSONEncoder))

        assert plain(validated["data"]) == plain(spec["data"])
        layout = {k: v for k, v in validated["layout"].items() if k != "template"}
        assert plain(layout) == plain({k: v for k, v in spec["layout"].items()
                                       if k != "template"})


def test_photo_figure_draws_the_network_input_and_boxes_in_photo_pixels() -> None:
    from arpviz.explorer.photo import Photo
    from arpviz.geometry import InputGeometry

    view = _view()
    geometry = InputGeometry.of(200, 100, 64)
    photo = Photo("data:image/jpeg;base64,", 200, 100, geometry)
    traces = _by_name(fg.boxes_figure(view, photo=photo))
    frame = traces["network input"]
    x1, y1, x2, y2 = geometry.crop_area
    # drawn just outside the network's input, so a crop of all of it never hides the frame
    assert min(frame.x) < x1 and max(frame.x) > x2 and min(frame.y) < y1 and max(frame.y) > y2
    conv3 = traces["Conv3 (ARP)"]
    bx1, by1, bx2, by2 = geometry.to_image(view.stages["conv3"].image_box)
    assert list(conv3.x) == pytest.approx([bx1, bx2, bx2, bx1, bx1])  # the first: not inset
    assert list(conv3.y) == pytest.approx([by1, by1, by2, by2, by1])
    assert photo.squeezed == pytest.approx(2.0)  # a 2:1 photo squeezed into a square


def test_stage_views_figure_shows_every_stage_once() -> None:
    view = _view()
    fig = fg.stage_views_figure(view, opacity=0.3)
    heat = [t for t in fig.data if isinstance(t, go.Heatmap)]
    assert len(heat) == 2 and all(h.opacity == 0.3 for h in heat)
    # both maps ARP's sigmoid on 0-1: one colour bar says it for both
    assert [(h.zmin, h.zmax) for h in heat] == [(0, 1)] * 2
    assert [bool(h.showscale) for h in heat] == [False, True]
    # ARP beside ARP-FG (another formula, another range): a colour bar per map
    mixed = replace(view, stages={**view.stages, "conv4.local0": replace(
        view.stages["conv4.local0"], mode="arpfg",
        confidence=np.array([[0.0, 1.7]] * 8, np.float32))})
    heat = [t for t in fg.stage_views_figure(mixed, opacity=0.3).data
            if isinstance(t, go.Heatmap)]
    assert all(h.showscale for h in heat)
    assert [(h.zmin, h.zmax) for h in heat] == [(0, 1), (0, pytest.approx(1.7))]
    assert fg.confidence_range("arpfg", np.array([[0.0, 1.7]])) == (0.0, pytest.approx(1.7))
    assert fg.confidence_range("zoom", np.zeros((2, 2))) == (0.0, 1.0)
    images = [t for t in fig.data if isinstance(t, go.Image)]
    assert len(images) == 4  # the input under each map, and each stage's crop
    texts = [a.text.replace("\u00a0", " ").replace("<br>", " ") for a in fig.layout.annotations]
    assert any("Conv4 local 0 (ARP)" in t and "8 x 10 map" in t for t in texts)
    assert any("-> 4 x 5 cells" in t for t in texts)
    boxes = [t for t in fig.data if isinstance(t, go.Scatter) and t.name.endswith("crop")]
    assert [b.xaxis or "x" for b in boxes] == ["x", "x3"]  # one map each
    empty = session.ExploreView(view.image, {}, {}, view.probs, view.predictions)
    assert len(fg.stage_views_figure(empty).data) == 0


def test_coincident_boxes_stay_visible_and_labelled() -> None:
    """Two stages with the same box (Conv3 at rate 1 and Conv4 spanning its whole map): the
    second is drawn inset with another dash, each has a corner label, hover keeps the truth."""
    from dataclasses import replace

    view = _view()
    whole = (0.0, 0.0, 64.0, 64.0)
    stages = {name: replace(stage, image_box=whole) for name, stage in view.stages.items()}
    same = replace(view, stages=stages)
    fig = fg.boxes_figure(same)
    boxes = _by_name(fig)
    first, second = boxes["Conv3 (ARP)"], boxes["Conv4 local 0 (ARP)"]
    assert list(first.x) == [0.0, 64.0, 64.0, 0.0, 0.0]
    assert min(second.x) > 0 and max(second.x) < 64 and min(second.y) > 0
    assert first.line.dash != second.line.dash
    assert "x 0.0-64.0, y 0.0-64.0" in second.hovertemplate  # the true box
    labels = [a.text for a in fig.layout.annotations]
    assert labels == ["Conv3", "Conv4 local 0"]
    ys = [a.y for a in fig.layout.annotations]
    assert ys[1] > ys[0]  # corners that meet: the labels stack


def test_stage_maps_lie_on_the_photo_at_its_aspect() -> None:
    from arpviz.explorer.photo import Photo
    from arpviz.geometry import InputGeometry

    view = _view()
    geometry = InputGeometry.of(200, 100, 64)  # a 2:1 photo squeezed into the 64 px input
    photo = Photo("data:image/jpeg;base64,", 200, 100, geometry)
    fig = fg.stage_views_figure(view, photo=photo)
    heat = next(t for t in fig.data if isinstance(t, go.Heatmap))
    x1, y1, x2, y2 = geometry.to_image((0.0, 0.0, 64.0, 64.0))  # Conv3's map: the whole input
    assert heat.dx == pytest.approx((x2 - x1) / view.stages["conv3"].confidence.shape[1])
    assert heat.dy == pytest.approx((y2 - y1) / view.stages["conv3"].confidence.shape[0])
    assert heat.dx != pytest.approx(heat.dy)  # the cells keep the photo's aspect
    assert fig.layout.xaxis.range[1] == pytest.approx(200)


def test_the_k_scrubber_page_carries_every_step_and_escapes_names() -> None:
    """The scrubber is one page of data and a few lines of script: every k's boxes, crop and
    top-5 are in it; a class name arrives as JSON text (set with textContent), never as markup,
    and cannot close the script element."""
    import json as _json
    import re

    from arpviz.explorer.figures.scrub import scrub_html

    view = _view()
    ks = np.array([0.5, 1.0, 1.5])
    boxes = {"conv3": np.array([[8.0, 4.0, 56.0, 52.0]] * 3),
             "conv4.local0": np.array([[10.0, 10.0, 30.0, 30.0], [8.0, 8.0, 40.0, 40.0],
                                       [0.0, 0.0, 64.0, 64.0]])}
    names = ("</script><b>x</b>", "b", "c", "d", "e", "f")
    sweep = session.KSweep(stage="conv4.local0", ks=ks, probs=np.tile(view.probs, (3, 1)),
                           crop_w=np.ones(3), crop_h=np.ones(3), rates=np.ones((3, 2)),
                           classes=(0, 1, 2), class_names=names[:3], current_k=1.0,
                           trained_k=0.7, boxes=boxes,
                           crops=np.zeros((3, 8, 8, 3), dtype=np.uint8), class_list=names)
    page = scrub_html(sweep, view.image, {n: s.label for n, s in view.stages.items()})
    data = re.search(r'<script type="application/json" id="frames">(.*?)</script>', page,
                     re.S).group(1)
    frames = _json.loads(data)
    assert frames["ks"] == [0.5, 1.0, 1.5] and len(frames["crops"]) == 3
    assert frames["boxes"]["conv4.local0"][2] == [0.0, 0.0, 64.0, 64.0]
    assert frames["top"][0][0][0] == names[int(np.argmax(view.probs))]
    assert "</script><b>" not in page  # the name cannot end the script element
    assert 'value="1"' in page and 'max="2"' in page  # opens at the current k
    assert 'id="box-conv3"' in page and 'id="box-conv4.local0"' in page
