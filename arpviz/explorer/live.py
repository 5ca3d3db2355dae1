"""One image on one model, steered live: :class:`LiveSession`.

It holds the :class:`~arpviz.models.StageCache` of ``model.prepare(x)``, so a new ``k`` or DSR
recomputes only the stages at or after the first changed one, and returns plain results
(:mod:`arpviz.explorer.results`): :meth:`LiveSession.explain` for one setting,
:meth:`LiveSession.compare` for two side by side, :meth:`LiveSession.sweep` for one stage's
``k`` over a range. What a setting makes each stage run is decided by
:meth:`~arpviz.explorer.controls.StageControl.settings` (the model layer's one rule).

Coordinates: every box is ``(x1, y1, x2, y2)`` in pixel-edge coordinates of the network's input
image, the image :attr:`~arpviz.explorer.inputs.PreparedImage.image` shows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from arpviz.explorer.controls import K_RANGE, K_STEP, Knob, overrides_from, stage_controls
from arpviz.explorer.inputs import PreparedImage, crop_image
from arpviz.explorer.results import (
    ExploreView,
    KSweep,
    ModeComparison,
    StageView,
    compare_predictions,
)
from arpviz.models import ADAPTIVE_MODES, MSGN, MSGNExplanation, StageCache, StageOverride
from arpviz.models.stages import stage_label
from arpviz.pooling import output_size

__all__ = ["LiveSession", "sweep_ks"]

logger = logging.getLogger(__name__)

Progress = Callable[[float, str], None]


def sweep_ks(low: float = K_RANGE[0], high: float = K_RANGE[1], step: float = K_STEP
             ) -> np.ndarray:
    """The ``k`` values of a sweep: ``low`` to ``high`` in steps of ``step`` (both ends
    included), rounded to the step's decimals."""
    count = int(round((high - low) / step)) + 1
    return np.round(low + step * np.arange(count), 6)


def _tuple(t: torch.Tensor) -> tuple[float, ...]:
    return tuple(float(v) for v in t.detach().float().cpu().tolist())


class LiveSession:
    """One image on one model, kept ready for fast re-explanation.

    Holds the :class:`~arpviz.models.StageCache` of ``model.prepare(x)`` and the trained
    setting's result. :meth:`explain` recomputes only the stages at or after the first stage
    whose setting changed (the rest comes from the cache). A model with a mask stage (the
    oracle's) needs the image's mask (a SynthBirds sample has one; a ``ValueError`` otherwise).
    """

    def __init__(
        self,
        model: MSGN,
        image: PreparedImage,
        class_names: Sequence[str],
        *,
        device: str | torch.device = "cpu",
        max_entries: int = 32,
    ) -> None:
        self.model = model
        self.image = image
        self.class_names = tuple(class_names)
        self.device = torch.device(device)
        self.controls = stage_controls(model)
        if model.needs_mask and image.mask is None:
            raise ValueError("this checkpoint crops by the object's true mask (an oracle or "
                             "mask-placed stage), which only its SynthBirds samples have: "
                             "choose a sample, not a photo")
        mask = None if image.mask is None or not model.needs_mask else image.mask.to(self.device)
        with torch.no_grad():
            self.cache: StageCache = model.prepare(
                image.tensor.to(self.device), max_entries=max_entries, mask=mask)
            trained = model.explain_from(self.cache, None)
        probs = self._probs(trained)
        self.trained_probs = probs
        self.trained = self._view(trained, {}, probs, probs)

    # -------------------------------------------------------------- conversion

    @staticmethod
    def _probs(explanation: MSGNExplanation) -> np.ndarray:
        return explanation.logits[0].detach().float().softmax(0).cpu().numpy()

    def _view(
        self,
        explanation: MSGNExplanation,
        overrides: Mapping[str, StageOverride],
        probs: np.ndarray,
        reference: np.ndarray,
    ) -> ExploreView:
        height, width = explanation.image_size
        whole = (0.0, 0.0, float(width), float(height))
        conv3_frame = whole
        if "conv3" in explanation.image_boxes:
            conv3_frame = _tuple(explanation.image_boxes["conv3"][0])
        stages: dict[str, StageView] = {}
        for name, result in explanation.stages.items():
            settings = explanation.settings[name]
            map_size = explanation.map_sizes[name]
            out_size = tuple(result.features.shape[2:])
            if settings.dsr is not None:
                out_size = output_size(map_size[0], map_size[1], settings.dsr)
            stages[name] = StageView(
                name=name,
                label=stage_label(name, settings.mode),
                mode=settings.mode,
                k=settings.k,
                dsr=settings.dsr,
                rates=_tuple(result.rates[0]),  # type: ignore[arg-type]
                box=_tuple(result.boxes[0]),  # type: ignore[arg-type]
                image_box=_tuple(explanation.image_boxes[name][0]),  # type: ignore[arg-type]
                frame=whole if name == "conv3" else conv3_frame,
                map_size=(int(map_size[0]), int(map_size[1])),
                out_size=(int(out_size[0]), int(out_size[1])),
                confidence=result.confidence[0].detach().float().cpu().numpy(),
            )
        table = compare_predictions(probs, reference, self.class_names)
        return ExploreView(self.image.image, dict(explanation.settings), stages, probs, table,
                           dict(overrides))

    # -------------------------------------------------------------- public

    @property
    def steerable(self) -> tuple[str, ...]:
        """The stages a user can steer (RP, ARP, ARP-FG, learnt zoom)."""
        return tuple(c.name for c in self.controls if c.steerable)

    def explain_overrides(
        self, overrides: Mapping[str, StageOverride], reference: np.ndarray | None = None
    ) -> ExploreView:
        """The view under ``overrides`` (predictions against ``reference``, default trained)."""
        if not overrides and reference is None:
            return self.trained
        with torch.no_grad():
            explanation = self.model.explain_from(self.cache, dict(overrides))
        probs = self._probs(explanation)
        ref = self.trained_probs if reference is None else reference
        return self._view(explanation, overrides, probs, ref)

    def explain(self, knobs: Mapping[str, Knob] | None = None,
                reference: np.ndarray | None = None) -> ExploreView:
        """The view for a setting (``None`` or the trained values: the trained view), its
        top-5 against ``reference`` (default: the trained setting's probabilities)."""
        return self.explain_overrides(overrides_from(self.controls, knobs or {}), reference)

    def compare(self, left: Mapping[str, Knob], right: Mapping[str, Knob],
                modes: tuple[str, str]) -> ModeComparison:
        """Two settings side by side (``modes`` names them): ``left`` against the trained
        setting, ``right`` against ``left``."""
        first = self.explain(left)
        second = self.explain(right, reference=first.probs)
        return ModeComparison(tuple(modes), first, second)  # type: ignore[arg-type]

    def sweep(
        self,
        stage: str,
        knobs: Mapping[str, Knob] | None = None,
        ks: Sequence[float] | None = None,
        track: int = 3,
        progress: Progress | None = None,
    ) -> KSweep:
        """Run ``k`` of ``stage`` over ``ks`` (default :func:`sweep_ks`: 0.1 to 2.0 in steps
        of 0.05), in the stage's mode from ``knobs`` when it is adaptive, else in ARP.

        The other stages keep ``knobs``. Uses a cache of its own (sharing the stem output) so
        the live cache keeps its entries. The tracked classes are the ``track`` most likely
        under ``knobs``. Every step's boxes, the swept stage's crop and the probabilities are
        kept, so a browser can play the sweep without asking the server again.
        """
        control = {c.name: c for c in self.controls}.get(stage)
        if control is None or not control.steerable:
            raise ValueError(f"stage {stage!r} cannot be swept; steerable stages: "
                             f"{list(self.steerable)}")
        knobs = dict(knobs or {})
        base = knobs.get(stage, Knob())
        sweep_mode = base.mode or control.mode
        if sweep_mode not in ADAPTIVE_MODES:
            sweep_mode = "arp"
        ks_arr = sweep_ks() if ks is None else np.asarray([float(k) for k in ks])
        cache = StageCache(self.model, self.cache.image_size, self.cache.conv3_input,
                           max_entries=8, mask=self.cache.mask)
        probs, sizes, rates, crops = [], [], [], []
        boxes: dict[str, list[tuple[float, ...]]] = {}
        with torch.no_grad():
            for step, k in enumerate(ks_arr):
                knobs[stage] = Knob(float(k), base.dsr, base.tau, sweep_mode)
                explanation = self.model.explain_from(
                    cache, overrides_from(self.controls, knobs))
                probs.append(self._probs(explanation))
                for name, box in explanation.image_boxes.items():
                    boxes.setdefault(name, []).append(_tuple(box[0]))
                box = _tuple(explanation.image_boxes[stage][0])
                sizes.append((box[2] - box[0], box[3] - box[1]))
                result = explanation.stages[stage]
                rates.append(_tuple(result.rates[0]))
                crops.append(crop_image(self.image.image, box, tuple(result.features.shape[2:]),
                                        long_side=96))
                if progress is not None:
                    progress((step + 1) / len(ks_arr), f"k {k:g}")
        current = self.explain(knobs | {stage: base})
        classes = tuple(int(r.index) for r in current.predictions.rows[:track])
        same_shape = len({c.shape for c in crops}) == 1
        return KSweep(
            stage=stage,
            ks=ks_arr,
            probs=np.stack(probs),
            crop_w=np.asarray([w for w, _ in sizes]),
            crop_h=np.asarray([h for _, h in sizes]),
            rates=np.asarray(rates),
            classes=classes,
            class_names=tuple(self.class_names[i] for i in classes),
            current_k=base.k if base.k is not None else control.default_k(sweep_mode),
            trained_k=control.k if sweep_mode == control.mode else None,
            mode=sweep_mode,
            boxes={name: np.asarray(values) for name, values in boxes.items()},
            crops=np.stack(crops) if same_shape else None,
            class_list=self.class_names,
        )
