"""The k scrubber: a sweep of one stage's ``k`` computed once on the server, scrubbed in the
browser with no round trip: every stage's box, the swept stage's crop and the top-5 follow each
step of a range input.

:func:`scrub_html` turns a :class:`~arpviz.explorer.results.KSweep` (which keeps every step's
boxes, crop and probabilities) into one self-contained HTML page (the app shows it with
``st.components.v1.html``): the input image with an SVG layer of boxes, the crop, the top-5 as
bars, and a slider; a step rewrites a few attributes of that page (no plotly redraw, no server).
Names from the checkpoint reach the page as JSON and are set as text, never as markup.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping

import numpy as np

from arpviz.explorer.figures.explore import png_uri
from arpviz.explorer.results import KSweep
from arpviz.models.stages import mode_label, stage_label
from arpviz.palette import stage_colour

__all__ = ["SCRUB_HEIGHT", "scrub_html"]

#: The frame height the app gives the scrubber (pixels).
SCRUB_HEIGHT = 420
_TOP = 5
_SIDE = 300  # the input image's side on the page (pixels)


def _frames(sweep: KSweep, stages: list[str]) -> dict:
    """The per-step data the page plays: ``k``, every stage's box, the crop, the top-5."""
    return {
        "ks": [round(float(k), 4) for k in sweep.ks],
        "boxes": {name: np.round(sweep.boxes[name], 2).tolist() for name in stages},
        "crops": [] if sweep.crops is None else [png_uri(c) for c in sweep.crops],
        "top": [[[name, round(p, 4)] for name, p in sweep.top(i, _TOP)]
                for i in range(len(sweep.ks))],
    }


_SCRIPT = """
const F = JSON.parse(document.getElementById('frames').textContent);
const slider = document.getElementById('k');
const label = document.getElementById('label');
const crop = document.getElementById('crop');
const rects = Object.fromEntries(
  Object.keys(F.boxes).map(n => [n, document.getElementById('box-' + n)]));
const rows = Array.from(document.querySelectorAll('.row'));
function show(i) {
  for (const [name, rect] of Object.entries(rects)) {
    const [x1, y1, x2, y2] = F.boxes[name][i];
    // drawn inset (stage by stage) so that boxes that coincide stay visible; the title has
    // the true size
    const d = Math.min(Number(rect.dataset.inset), (x2 - x1) * 0.45, (y2 - y1) * 0.45);
    rect.setAttribute('x', x1 + d); rect.setAttribute('y', y1 + d);
    rect.setAttribute('width', Math.max(x2 - x1 - 2 * d, 0.1));
    rect.setAttribute('height', Math.max(y2 - y1 - 2 * d, 0.1));
    rect.querySelector('title').textContent = rect.dataset.label + ': crop ' +
      (y2 - y1).toFixed(1) + ' x ' + (x2 - x1).toFixed(1) + ' px (height x width)';
  }
  if (crop && F.crops.length) { crop.src = F.crops[i]; }
  F.top[i].forEach(([name, p], r) => {
    rows[r].querySelector('.name').textContent = name;
    rows[r].querySelector('.p').textContent = p.toFixed(3);
    rows[r].querySelector('.bar').style.width = (100 * p).toFixed(1) + '%';
    rows[r].title = name + ': p ' + p.toFixed(4);
  });
  label.textContent = label.dataset.prefix + F.ks[i].toFixed(2);
  window.__scrubShown = i;
}
slider.addEventListener('input', e => show(Number(e.target.value)));
show(Number(slider.value));
"""

_STYLE = """
body { margin: 0; font-family: "Source Sans Pro", sans-serif; font-size: 13px; color: #31333f; }
.panels { display: flex; gap: 18px; align-items: flex-start; }
.panel .title { font-weight: 600; margin-bottom: 4px; }
.bars { flex: 1; min-width: 220px; }
.row { display: grid; grid-template-columns: 1fr 48px; gap: 2px 8px; margin-bottom: 6px; }
.row .name { grid-column: 1 / 3; overflow-wrap: anywhere; }
.track { background: #eef0f4; height: 10px; border-radius: 3px; }
.bar { background: #4c78a8; height: 10px; border-radius: 3px; }
.p { text-align: right; font-variant-numeric: tabular-nums; }
input[type=range] { width: 100%; margin-top: 10px; }
#label { font-weight: 600; }
.key { margin-top: 4px; }
.key span { margin-right: 10px; }
"""


def scrub_html(sweep: KSweep, image: np.ndarray, labels: Mapping[str, str] | None = None
               ) -> str:
    """The sweep as a self-contained page: the network's input (``uint8 [S, S, 3]``, the
    pixels the boxes are in) with every stage's box, the swept stage's crop, the top-5 and a
    slider over the sweep's ``k`` values, opening at the current ``k``. ``labels`` names the
    stages (``{stage: "Conv4 local 0 (ARP)"}``).
    """
    labels = dict(labels or {})
    stages = [name for name in sweep.boxes if name in labels] or list(sweep.boxes)
    size_h, size_w = image.shape[:2]
    current = 0
    if sweep.current_k is not None:
        current = int(np.argmin(np.abs(sweep.ks - sweep.current_k)))
    frames = json.dumps(_frames(sweep, stages)).replace("</", "<\\/")
    rects = "".join(
        f'<rect id="box-{html.escape(name)}" data-label="{html.escape(labels.get(name, name))}" '
        f'data-inset="{i * size_w / 90:.2f}" '
        f'fill="none" stroke="{stage_colour(name)}" stroke-width="{max(size_w / 150, 1):.2f}" '
        f'stroke-dasharray="{"" if i == 0 else f"{size_w / 40:.1f},{size_w / 80:.1f}"}">'
        "<title></title></rect>"
        for i, name in enumerate(stages))
    key = "".join(f'<span style="color:{stage_colour(name)}">&#9632; '
                  f'{html.escape(labels.get(name, stage_label(name)))}</span>' for name in stages)
    crop = ""
    if sweep.crops is not None:
        side = _SIDE * 0.6
        crop = (f'<div class="panel"><div class="title">{html.escape(stage_label(sweep.stage))}'
                f"'s crop, as the next layer sees it</div>"
                f'<img id="crop" width="{side:.0f}" height="{side:.0f}" alt="crop" '
                'style="image-rendering: auto; border: 1px solid #ccc"></div>')
    rows = "".join('<div class="row"><div class="name"></div><div class="track">'
                   '<div class="bar"></div></div><div class="p"></div></div>'
                   for _ in range(min(_TOP, sweep.probs.shape[1])))
    prefix = html.escape(f"k ({mode_label(sweep.mode)}, {stage_label(sweep.stage)}): ")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><style>{_STYLE}</style></head><body>"
        f'<div class="panels"><div class="panel"><div class="title">every stage\'s box</div>'
        f'<svg id="boxes" width="{_SIDE}" height="{_SIDE * size_h / size_w:.0f}" '
        f'viewBox="0 0 {size_w} {size_h}"><image href="{png_uri(image)}" x="0" y="0" '
        f'width="{size_w}" height="{size_h}"/>{rects}</svg><div class="key">{key}</div></div>'
        f'{crop}<div class="panel bars"><div class="title">top-5</div>{rows}</div></div>'
        f'<div id="label" data-prefix="{prefix}"></div>'
        f'<input id="k" type="range" min="0" max="{len(sweep.ks) - 1}" step="1" '
        f'value="{current}" aria-label="k">'
        f'<script type="application/json" id="frames">{frames}</script>'
        f"<script>{_SCRIPT}</script></body></html>")
