"""The library side of the app's Explore and RP-against-ARP pages (no Streamlit here).

Everything a page needs besides widgets and rendering lives here:

- finding checkpoints (:func:`find_checkpoints`, :func:`default_checkpoint`), picking a device
  (:func:`resolve_device`) and summarising a checkpoint (:func:`model_card`);
- turning an upload or a SynthBirds sample into what the network sees (:func:`load_upload`,
  :func:`synth_sample`, :func:`preprocess`): the centre-cropped input image as ``uint8`` for
  display, the normalised tensor, and ground truth mapped into the input's pixels;
- the stages a user can steer (:func:`stage_controls`) and the overrides of a slider setting
  (:func:`overrides_from`);
- :class:`LiveSession`: one image on one model, with the :class:`~arpviz.models.StageCache` of
  ``model.prepare(x)``, so a new ``k`` or DSR recomputes only the stages at or after the first
  changed one. It returns :class:`ExploreView` (plain numpy, ready to draw): every pooled stage's
  boxes in image pixels, the frame its confidence map covers, its rates, and the top-5 with their
  change against the trained setting; :meth:`LiveSession.sweep` runs ``k`` over a range for one
  stage and :meth:`LiveSession.compare_modes` runs RP and ARP side by side.

Coordinates: every box here is ``(x1, y1, x2, y2)`` in pixel-edge coordinates of the network's
input image (``input_size x input_size``), the image :attr:`PreparedImage.image` shows.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from arpviz.checkpoint import CheckpointMeta
from arpviz.data.transforms import default_resize
from arpviz.images import load_image_info
from arpviz.models import MSGN, MSGNExplanation, StageCache, StageOverride, StageSettings
from arpviz.pooling import output_size

__all__ = [
    "BUNDLED_DEFAULT",
    "DSR_RANGE",
    "DSR_STEP",
    "IMAGE_TYPES",
    "K_RANGE",
    "K_STEP",
    "MAX_IMAGE_BYTES",
    "MAX_PIXELS",
    "ExploreView",
    "GroundTruth",
    "KSweep",
    "Knob",
    "LiveSession",
    "ModeComparison",
    "Prediction",
    "PredictionTable",
    "PreparedImage",
    "StageControl",
    "StageView",
    "compare_predictions",
    "crop_image",
    "default_checkpoint",
    "default_threads",
    "find_checkpoints",
    "image_digest",
    "load_upload",
    "model_card",
    "overrides_from",
    "preprocess",
    "resolve_device",
    "sample_count",
    "set_threads",
    "stage_controls",
    "stage_label",
    "synth_sample",
    "trained_knobs",
    "trained_on_synthbirds",
]

logger = logging.getLogger(__name__)

#: The checkpoint the app opens first when it is present.
BUNDLED_DEFAULT = "synthbirds_msgn_arp.safetensors"
#: Largest image upload, in bytes (the uploader also says 20 MB).
MAX_IMAGE_BYTES = 20 * 1024 * 1024
#: Largest image, in pixels, checked from the header before decoding (24 MPx photos fit).
MAX_PIXELS = 25_000_000
#: File extensions the image uploader accepts.
IMAGE_TYPES: tuple[str, ...] = ("png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif")
#: Slider ranges for ARP's k and the DSR.
K_RANGE: tuple[float, float] = (0.1, 2.0)
K_STEP = 0.05
DSR_RANGE: tuple[float, float] = (0.25, 1.0)
DSR_STEP = 0.05
_SWEEP_POINTS = 20


# ----------------------------------------------------------------------------- checkpoints


def find_checkpoints(folders: Iterable[str | os.PathLike | None]) -> list[Path]:
    """Every ``*.safetensors`` checkpoint in ``folders`` (not recursive), in folder order.

    Training-state files (``*.state.safetensors``) and missing folders are skipped; a file
    found twice is listed once.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for folder in folders:
        if not folder:
            continue
        path = Path(folder).expanduser()
        if not path.is_dir():
            continue
        for file in sorted(path.glob("*.safetensors")):
            if file.name.endswith(".state.safetensors") or not file.is_file():
                continue
            resolved = file.resolve()
            if resolved not in seen:
                seen.add(resolved)
                found.append(file)
    return found


def default_checkpoint(paths: Sequence[Path]) -> Path | None:
    """``synthbirds_msgn_arp.safetensors`` when listed, else the first path, else ``None``."""
    for path in paths:
        if path.name == BUNDLED_DEFAULT:
            return path
    return paths[0] if paths else None


def resolve_device(choice: str) -> tuple[str, str | None]:
    """The torch device for ``"auto"``, ``"cpu"`` or ``"cuda"``, and a note when it fell back.

    ``auto`` picks CUDA when present; ``cuda`` without CUDA falls back to the CPU with a note.
    """
    if choice not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {choice!r}")
    cuda = torch.cuda.is_available()
    if choice == "auto":
        return ("cuda" if cuda else "cpu"), None
    if choice == "cuda" and not cuda:
        return "cpu", "CUDA is not available here; running on the CPU."
    return choice, None


def default_threads() -> int:
    """CPU threads for interactive use: env ``ARPVIZ_THREADS``, else half the cores, 1 to 4.

    Small models at interactive sizes gain little from more threads and lose a lot when the
    cores are shared (on 2 busy cores a k change took 8 ms with 1 thread, 100 ms with 2; see
    docs/benchmarks.md).
    """
    raw = os.environ.get("ARPVIZ_THREADS", "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            logger.warning("ignoring ARPVIZ_THREADS=%r (not an integer)", raw)
        else:
            if value >= 1:
                return value
            logger.warning("ignoring ARPVIZ_THREADS=%r (must be >= 1)", raw)
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def set_threads(threads: int | None = None) -> int:
    """Set torch's CPU threads (``None``: :func:`default_threads`); returns the number set."""
    count = default_threads() if threads is None else int(threads)
    if count < 1:
        raise ValueError(f"threads must be >= 1, got {threads!r}")
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
        logger.info("torch CPU threads: %d", count)
    return count


def stage_label(name: str) -> str:
    """A stage name for people: ``conv3`` -> ``Conv3``, ``conv4.local0`` -> ``Conv4 local0``."""
    if name == "conv3":
        return "Conv3"
    if name.startswith("conv4."):
        return f"Conv4 {name.split('.', 1)[1]}"
    return name


def _fmt_rate(dsr: tuple[float, float] | None) -> str:
    if dsr is None:
        return "-"
    return f"{dsr[0]:g}" if dsr[0] == dsr[1] else f"({dsr[0]:g}, {dsr[1]:g})"


def model_card(meta: CheckpointMeta) -> dict[str, Any]:
    """What the sidebar's model card shows, as plain values.

    Keys: ``backbone``, ``classes``, ``input_size``, ``local_branches``, ``dataset``,
    ``stages`` (list of ``{"stage", "mode", "k", "dsr", "detail"}``; ``detail`` is
    ``"bounded box"`` for a bounded spatial transformer, else ``None``), ``epochs``,
    ``metrics`` (the last history entry's numbers, e.g. ``val_top1``), ``best_val_top1``.
    """
    cfg = meta.config
    stages = [{"stage": "Conv3", "mode": cfg.conv3,
               "k": cfg.conv3_k if cfg.conv3 == "arp" else None,
               "dsr": _fmt_rate(cfg.dsr) if cfg.conv3 != "stride" else "-", "detail": None}]
    branches = ["main"] if cfg.local_branches == 0 else [
        f"local{i}" for i in range(cfg.local_branches)]
    for branch in branches:
        stages.append({"stage": f"Conv4 {branch}", "mode": cfg.conv4,
                       "k": cfg.conv4_k if cfg.conv4 == "arp" else None,
                       "dsr": _fmt_rate(cfg.dsr) if cfg.conv4 != "stride" else "-",
                       "detail": "bounded box" if cfg.stn_bounded else None})
    history = list(meta.history)
    last = history[-1] if history else {}
    metrics = {key: value for key, value in last.items()
               if isinstance(value, (int, float)) and key not in ("epoch", "seconds", "lr")}
    tops = [h.get("val_top1") for h in history if isinstance(h.get("val_top1"), (int, float))]
    return {
        "backbone": cfg.backbone,
        "classes": cfg.num_classes,
        "input_size": meta.input_size,
        "local_branches": cfg.local_branches,
        "dataset": str(meta.dataset.get("name", "unknown")),
        "stages": stages,
        "epochs": int(last.get("epoch", len(history))) if history else 0,
        "metrics": metrics,
        "best_val_top1": max(tops) if tops else None,
    }


def trained_on_synthbirds(meta: CheckpointMeta) -> bool:
    """Whether the checkpoint's data set record names SynthBirds."""
    return meta.dataset.get("name") == "synthbirds"


# ----------------------------------------------------------------------------- images


@dataclass(frozen=True)
class GroundTruth:
    """A SynthBirds sample's truth in input-image pixels (after resize and centre crop)."""

    label: int
    name: str
    box: tuple[float, float, float, float]
    keypoints: Mapping[str, tuple[float, float]]


@dataclass(frozen=True, eq=False)
class PreparedImage:
    """An image as the network sees it.

    Attributes:
        image: ``uint8 [S, S, 3]``, the resized and centre-cropped input (what figures show).
        tensor: ``float32 [1, 3, S, S]``, ``image`` scaled to [0, 1] and normalised.
        key: a digest of the pixels and the normalisation (cache key of this input).
        source_size: ``(width, height)`` of the decoded file.
        name: where it came from ("val #3", the file name, ...).
        notes: conversions the loader made (EXIF rotation, alpha, 16-bit, first frame, ...).
        truth: the ground truth of a SynthBirds sample, else ``None``.
    """

    image: np.ndarray
    tensor: torch.Tensor
    key: str
    source_size: tuple[int, int]
    name: str = ""
    notes: tuple[str, ...] = ()
    truth: GroundTruth | None = None


def image_digest(data: bytes | np.ndarray) -> str:
    """A short hex digest of bytes or of an array's shape and contents."""
    digest = hashlib.sha256()
    if isinstance(data, np.ndarray):
        digest.update(repr((data.shape, str(data.dtype))).encode())
        digest.update(np.ascontiguousarray(data).tobytes())
    else:
        digest.update(bytes(data))
    return digest.hexdigest()[:24]


def _resize_crop_geometry(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """``(resize_w, resize_h, left, top)`` of eval_transform: square resize, centre crop."""
    resize = default_resize(size)
    # torchvision's CenterCrop: top = round((H - crop) / 2), likewise left
    left = int(round((resize - size) / 2.0))
    return resize, resize, left, left


def preprocess(
    image: Image.Image | np.ndarray,
    meta: CheckpointMeta,
    *,
    name: str = "",
    notes: Sequence[str] = (),
    truth: GroundTruth | None = None,
) -> PreparedImage:
    """Resize to ``default_resize(input_size)`` square, centre-crop ``input_size``, normalise.

    The same geometry as :func:`arpviz.data.transforms.eval_transform` (bilinear, antialiased
    resize of the uint8 image), with the checkpoint's mean and std.
    """
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be HxWx3 uint8, got {image.shape} {image.dtype}")
        pil = Image.fromarray(image)
    elif isinstance(image, Image.Image):
        pil = image if image.mode == "RGB" else image.convert("RGB")
    else:
        raise TypeError(f"image must be a PIL image or an array, got {type(image).__name__}")
    size = meta.input_size
    resize_w, resize_h, left, top = _resize_crop_geometry(pil.width, pil.height, size)
    from torchvision.transforms.v2 import functional as TF

    x = TF.pil_to_tensor(pil)  # uint8 [3, H, W]
    if (pil.height, pil.width) != (resize_h, resize_w):
        x = TF.resize(x, [resize_h, resize_w], antialias=True)
    x = x[:, top : top + size, left : left + size].contiguous()
    shown = x.permute(1, 2, 0).numpy().copy()
    mean = torch.tensor(meta.mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(meta.std, dtype=torch.float32).view(3, 1, 1)
    tensor = ((x.float() / 255.0 - mean) / std).unsqueeze(0).contiguous()
    key = image_digest(shown) + image_digest(np.array(meta.mean + meta.std))[:8]
    return PreparedImage(shown, tensor, key, (pil.width, pil.height), name, tuple(notes), truth)


def load_upload(data: bytes, meta: CheckpointMeta, name: str = "uploaded file") -> PreparedImage:
    """Decode an uploaded image safely (size and pixel limits) and :func:`preprocess` it.

    Raises:
        ValueError: empty, corrupt, truncated, unsupported, too many pixels or bytes (the
            message is fit to show a user).
    """
    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError(f"{name!r} is {len(data) / 1e6:.1f} MB, more than the "
                         f"{MAX_IMAGE_BYTES // (1024 * 1024)} MB limit")
    try:
        info = load_image_info(data, max_pixels=MAX_PIXELS, max_bytes=MAX_IMAGE_BYTES)
    except ValueError as exc:
        raise ValueError(str(exc).replace("'image data'", repr(name))) from exc
    return preprocess(info.image, meta, name=name, notes=info.notes)


def sample_count(meta: CheckpointMeta) -> int:
    """How many SynthBirds samples the checkpoint's evaluation split has (0 if not SynthBirds)."""
    if not trained_on_synthbirds(meta):
        return 0
    from arpviz.datasources import synth_config

    config = synth_config(meta.dataset, meta.input_size)
    return config.split_size(str(meta.dataset.get("eval_split", "val")))


def synth_sample(meta: CheckpointMeta, index: int) -> PreparedImage:
    """Render sample ``index`` of the checkpoint's SynthBirds evaluation split, with its truth.

    Raises:
        ValueError: the checkpoint was not trained on SynthBirds.
        IndexError: ``index`` out of range.
    """
    if not trained_on_synthbirds(meta):
        raise ValueError("this checkpoint was not trained on SynthBirds; it has no samples")
    from arpviz.data.synthbirds import SynthBirds
    from arpviz.datasources import synth_config

    config = synth_config(meta.dataset, meta.input_size)
    split = str(meta.dataset.get("eval_split", "val"))
    data = SynthBirds(config, split)
    sample = data.render(int(index))
    height, width = sample.image.shape[:2]
    resize_w, resize_h, left, top = _resize_crop_geometry(width, height, meta.input_size)
    sx, sy = resize_w / width, resize_h / height
    size = float(meta.input_size)

    def point(x: float, y: float) -> tuple[float, float]:
        return (x * sx - left, y * sy - top)

    x1, y1 = point(sample.box[0], sample.box[1])
    x2, y2 = point(sample.box[2], sample.box[3])
    box = (min(max(x1, 0.0), size), min(max(y1, 0.0), size),
           min(max(x2, 0.0), size), min(max(y2, 0.0), size))
    keypoints = {part: point(*xy) for part, xy in sample.keypoints.items()}
    names = meta.class_names
    label_name = names[sample.label] if sample.label < len(names) else str(sample.label)
    truth = GroundTruth(sample.label, label_name, box, keypoints)
    return preprocess(sample.image, meta, name=f"{split} #{int(index)}", truth=truth)


def crop_image(
    image: np.ndarray,
    box: Sequence[float],
    out_size: tuple[int, int],
    long_side: int = 160,
) -> np.ndarray:
    """The image region ``box`` covers, resampled bilinearly to the stage's output aspect.

    Args:
        image: ``uint8 [H, W, 3]``.
        box: ``(x1, y1, x2, y2)`` in the image's pixel-edge coordinates.
        out_size: ``(h, w)`` of the stage's output map (its aspect is kept).
        long_side: the returned crop's longer side in pixels.

    Returns:
        ``uint8 [h', w', 3]`` with ``max(h', w') == long_side``.
    """
    out_h, out_w = max(1, int(out_size[0])), max(1, int(out_size[1]))
    scale = long_side / max(out_h, out_w)
    size = (max(1, round(out_w * scale)), max(1, round(out_h * scale)))
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"box must have x2 > x1 and y2 > y1, got {tuple(box)}")
    pil = Image.fromarray(np.ascontiguousarray(image))
    return np.asarray(pil.resize(size, Image.Resampling.BILINEAR, box=(x1, y1, x2, y2)))


# ----------------------------------------------------------------------------- controls


@dataclass(frozen=True)
class StageControl:
    """One stage of a model as the pages show it.

    ``steerable`` stages (RP/ARP) get sliders; ``k`` and ``dsr`` are the trained values
    (``k`` only for ARP; ``dsr`` ``None`` for a strided stage).
    """

    name: str
    label: str
    mode: str
    k: float | None
    dsr: tuple[float, float] | None
    default_k: float

    @property
    def steerable(self) -> bool:
        """RP and ARP stages can be steered; strided and STN stages cannot."""
        return self.mode in ("rp", "arp")

    @property
    def trained_dsr(self) -> float | None:
        """The trained DSR as one number (the height's when the two differ)."""
        return None if self.dsr is None else float(self.dsr[0])


@dataclass(frozen=True)
class Knob:
    """A slider setting of one stage: ARP's ``k`` (``None`` for RP) and the DSR."""

    k: float | None = None
    dsr: float | None = None


def stage_controls(model: MSGN) -> tuple[StageControl, ...]:
    """Every stage of ``model`` with its trained settings, in execution order."""
    cfg = model.config
    out = []
    for name, settings in model.stage_settings().items():
        default_k = cfg.conv3_k if name == "conv3" else cfg.conv4_k
        out.append(StageControl(name, stage_label(name), settings.mode, settings.k,
                                settings.dsr, default_k))
    return tuple(out)


def trained_knobs(controls: Iterable[StageControl]) -> dict[str, Knob]:
    """The trained setting of every steerable stage."""
    return {c.name: Knob(c.k, c.trained_dsr) for c in controls if c.steerable}


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=0, abs_tol=1e-9)


def overrides_from(
    controls: Iterable[StageControl], knobs: Mapping[str, Knob], mode: str | None = None
) -> dict[str, StageOverride]:
    """The overrides that turn the trained setting into ``knobs``.

    Only stages whose ``k`` or DSR differ from the trained values get an override (so the
    trained setting gives ``{}``). ``mode`` ``"rp"``/``"arp"`` switches every steerable stage.
    A ``k`` on an RP stage is ignored unless ``mode`` is ``"arp"``.
    """
    out: dict[str, StageOverride] = {}
    for control in controls:
        if not control.steerable:
            continue
        knob = knobs.get(control.name, Knob())
        target = mode or control.mode
        k = None
        if target == "arp":
            k = knob.k if knob.k is not None else (control.k or control.default_k)
            if control.mode == "arp" and mode is None and _close(k, control.k):
                k = None
        dsr = knob.dsr
        if dsr is not None and control.dsr is not None and _close(dsr, control.dsr[0]) \
                and control.dsr[0] == control.dsr[1]:
            dsr = None
        if mode is None and k is None and dsr is None:
            continue
        out[control.name] = StageOverride(mode=mode, k=k, dsr=dsr)  # type: ignore[arg-type]
    return out


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class StageView:
    """One pooled stage of one explanation, in numbers ready to draw.

    Attributes:
        name, label: ``"conv4.local0"`` and ``"Conv4 local0"``.
        mode, k, dsr: the settings used (``k`` ``None`` for RP/STN).
        rates: ``(rate_h, rate_w)``.
        box: ``(x1, y1, x2, y2)`` in the stage's input map.
        image_box: the same box in input-image pixels.
        frame: the region of the input image the stage's input map covers (the whole image for
            Conv3; Conv3's image box for Conv4 when Conv3 is pooled).
        map_size: ``(h, w)`` of the stage's input map; ``out_size``: of its resampled output.
        confidence: ``float32 [h, w]``, the keypoint confidence map.
    """

    name: str
    label: str
    mode: str
    k: float | None
    dsr: tuple[float, float] | None
    rates: tuple[float, float]
    box: tuple[float, float, float, float]
    image_box: tuple[float, float, float, float]
    frame: tuple[float, float, float, float]
    map_size: tuple[int, int]
    out_size: tuple[int, int]
    confidence: np.ndarray

    @property
    def crop_size(self) -> tuple[float, float]:
        """``(width, height)`` of the crop in input-image pixels."""
        x1, y1, x2, y2 = self.image_box
        return (x2 - x1, y2 - y1)


@dataclass(frozen=True)
class Prediction:
    """One row of the top-5: the class, its probability now and under the reference setting.

    ``rank`` and ``ref_rank`` are 1-based; ``rank_change`` is ``ref_rank - rank`` (positive:
    the class moved up); ``delta`` is ``prob - ref_prob``.
    """

    rank: int
    index: int
    name: str
    prob: float
    ref_prob: float
    ref_rank: int

    @property
    def delta(self) -> float:
        """Probability change against the reference."""
        return self.prob - self.ref_prob

    @property
    def rank_change(self) -> int:
        """Ranks gained (positive) or lost (negative) against the reference."""
        return self.ref_rank - self.rank


@dataclass(frozen=True)
class PredictionTable:
    """The top-k against a reference setting and whether the top-1 class flipped."""

    rows: tuple[Prediction, ...]
    ref_top1: int
    ref_top1_name: str
    ref_top1_prob: float

    @property
    def top1(self) -> Prediction:
        """The current top-1 row."""
        return self.rows[0]

    @property
    def flipped(self) -> bool:
        """The top-1 class differs from the reference's top-1."""
        return self.rows[0].index != self.ref_top1


def _ranks(probs: np.ndarray) -> np.ndarray:
    order = np.argsort(-probs, kind="stable")
    ranks = np.empty_like(order)
    ranks[order] = np.arange(1, len(probs) + 1)
    return ranks


def compare_predictions(
    probs: np.ndarray, reference: np.ndarray, class_names: Sequence[str], top: int = 5
) -> PredictionTable:
    """The ``top`` classes of ``probs`` with their probability and rank under ``reference``."""
    probs = np.asarray(probs, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if probs.shape != reference.shape or probs.ndim != 1:
        raise ValueError(f"probs and reference must be 1-D of equal length, "
                         f"got {probs.shape} and {reference.shape}")
    ranks, ref_ranks = _ranks(probs), _ranks(reference)
    order = np.argsort(ranks)[: min(top, len(probs))]

    def label(i: int) -> str:
        return class_names[i] if i < len(class_names) else str(i)

    rows = tuple(
        Prediction(int(ranks[i]), int(i), label(int(i)), float(probs[i]), float(reference[i]),
                   int(ref_ranks[i]))
        for i in order
    )
    ref_top = int(np.argmin(ref_ranks))
    return PredictionTable(rows, ref_top, label(ref_top), float(reference[ref_top]))


@dataclass(frozen=True)
class ExploreView:
    """One explanation of one image, in plain numbers.

    ``stages`` holds every pooled stage (RP, ARP, STN) by name; ``settings`` every stage's
    settings; ``probs`` the softmax over the classes; ``predictions`` the top-5 against the
    reference (the trained setting unless said otherwise); ``overrides`` what was changed.
    """

    image: np.ndarray
    settings: Mapping[str, StageSettings]
    stages: Mapping[str, StageView]
    probs: np.ndarray
    predictions: PredictionTable
    overrides: Mapping[str, StageOverride] = field(default_factory=dict)

    def crops(self, long_side: int = 160) -> dict[str, np.ndarray]:
        """The image region of every stage's crop, resampled (see :func:`crop_image`)."""
        return {name: crop_image(self.image, s.image_box, s.out_size, long_side)
                for name, s in self.stages.items()}


@dataclass(frozen=True)
class KSweep:
    """How the prediction and one stage's crop move as ``k`` runs over a range.

    ``probs`` is ``[n, num_classes]``; ``crop_w``/``crop_h`` the crop's size in input-image
    pixels; ``rates`` ``[n, 2]``; ``classes`` the tracked classes (the current top 3).
    """

    stage: str
    ks: np.ndarray
    probs: np.ndarray
    crop_w: np.ndarray
    crop_h: np.ndarray
    rates: np.ndarray
    classes: tuple[int, ...]
    class_names: tuple[str, ...]
    current_k: float | None
    trained_k: float | None


@dataclass(frozen=True)
class ModeComparison:
    """The same image through ARP and through RP on every steerable stage.

    ``arp`` is compared against the trained setting, ``rp`` against ``arp``.
    """

    arp: ExploreView
    rp: ExploreView


def _tuple(t: torch.Tensor) -> tuple[float, ...]:
    return tuple(float(v) for v in t.detach().float().cpu().tolist())


class LiveSession:
    """One image on one model, kept ready for fast re-explanation.

    Holds the :class:`~arpviz.models.StageCache` of ``model.prepare(x)`` and the trained
    setting's result. :meth:`explain` recomputes only the stages at or after the first stage
    whose setting changed (the rest comes from the cache).
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
        with torch.no_grad():
            self.cache: StageCache = model.prepare(
                image.tensor.to(self.device), max_entries=max_entries)
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
            frame = whole if name == "conv3" else conv3_frame
            out_size = tuple(result.features.shape[2:])
            if settings.dsr is not None:
                out_size = output_size(map_size[0], map_size[1], settings.dsr)
            stages[name] = StageView(
                name=name,
                label=stage_label(name),
                mode=settings.mode,
                k=settings.k,
                dsr=settings.dsr,
                rates=_tuple(result.rates[0]),  # type: ignore[arg-type]
                box=_tuple(result.boxes[0]),  # type: ignore[arg-type]
                image_box=_tuple(explanation.image_boxes[name][0]),  # type: ignore[arg-type]
                frame=frame,
                map_size=(int(map_size[0]), int(map_size[1])),
                out_size=(int(out_size[0]), int(out_size[1])),
                confidence=result.confidence[0].detach().float().cpu().numpy(),
            )
        table = compare_predictions(probs, reference, self.class_names)
        return ExploreView(self.image.image, dict(explanation.settings), stages, probs, table,
                           dict(overrides))

    # -------------------------------------------------------------- public

    def explain_overrides(
        self, overrides: Mapping[str, StageOverride], reference: np.ndarray | None = None
    ) -> ExploreView:
        """The view under ``overrides`` (predictions against ``reference``, default trained)."""
        if not overrides:
            if reference is None:
                return self.trained
        with torch.no_grad():
            explanation = self.model.explain_from(self.cache, dict(overrides))
        probs = self._probs(explanation)
        ref = self.trained_probs if reference is None else reference
        return self._view(explanation, overrides, probs, ref)

    def explain(self, knobs: Mapping[str, Knob] | None = None) -> ExploreView:
        """The view for a slider setting (``None`` or the trained values: the trained view)."""
        overrides = overrides_from(self.controls, knobs or {})
        return self.explain_overrides(overrides)

    def compare_modes(self, knobs: Mapping[str, Knob] | None = None) -> ModeComparison:
        """ARP against RP on every steerable stage, with ``knobs`` (k for ARP, DSR for both)."""
        knobs = knobs or {}
        arp = self.explain_overrides(overrides_from(self.controls, knobs, mode="arp"))
        rp = self.explain_overrides(overrides_from(self.controls, knobs, mode="rp"),
                                    reference=arp.probs)
        return ModeComparison(arp, rp)

    def sweep(
        self,
        stage: str,
        knobs: Mapping[str, Knob] | None = None,
        ks: Sequence[float] | None = None,
        track: int = 3,
    ) -> KSweep:
        """Run ARP's ``k`` of ``stage`` over ``ks`` (default 20 steps over :data:`K_RANGE`).

        The other stages keep ``knobs``. Uses a cache of its own (sharing the stem output) so
        the live cache keeps its entries. The tracked classes are the ``track`` most likely
        under ``knobs``.
        """
        control = {c.name: c for c in self.controls}.get(stage)
        if control is None or not control.steerable:
            steerable = [c.name for c in self.controls if c.steerable]
            raise ValueError(f"stage {stage!r} cannot be swept; steerable stages: {steerable}")
        knobs = dict(knobs or {})
        base = knobs.get(stage, Knob())
        if ks is None:
            ks = np.linspace(K_RANGE[0], K_RANGE[1], _SWEEP_POINTS)
        ks_arr = np.asarray([float(k) for k in ks], dtype=np.float64)
        cache = StageCache(self.model, self.cache.image_size, self.cache.conv3_input,
                           max_entries=8)
        probs, widths, heights, rates = [], [], [], []
        with torch.no_grad():
            for k in ks_arr:
                knobs[stage] = Knob(float(k), base.dsr)
                overrides = overrides_from(self.controls, knobs)
                overrides[stage] = StageOverride(
                    mode="arp", k=float(k), dsr=overrides.get(stage, StageOverride()).dsr)
                explanation = self.model.explain_from(cache, overrides)
                probs.append(self._probs(explanation))
                x1, y1, x2, y2 = _tuple(explanation.image_boxes[stage][0])
                widths.append(x2 - x1)
                heights.append(y2 - y1)
                rates.append(_tuple(explanation.stages[stage].rates[0]))
        current = self.explain(knobs | {stage: base})
        classes = tuple(int(r.index) for r in current.predictions.rows[:track])
        return KSweep(
            stage=stage,
            ks=ks_arr,
            probs=np.stack(probs),
            crop_w=np.asarray(widths),
            crop_h=np.asarray(heights),
            rates=np.asarray(rates),
            classes=classes,
            class_names=tuple(self.class_names[i] for i in classes),
            current_k=base.k if base.k is not None else control.k,
            trained_k=control.k,
        )
