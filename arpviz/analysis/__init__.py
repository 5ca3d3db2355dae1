"""Does ARP adapt? Rates against the object, crop precision, placement, k curves and contrast.

``arpviz-analysis [CKPT] --split test [--limit N] [--tau T] [--ideal] --out FILE.json`` (or
``python -m arpviz.analysis``; without ``CKPT`` the bundled default) runs a checkpoint over a
split and measures, for every pooled stage (RP, ARP, ARP-FG, oracle or STN; keys as in
:class:`arpviz.models.MSGNExplanation`, e.g. ``"conv3"``, ``"conv4.local0"``):

- ``rate``: the downsampling rate actually used, per axis (``h``, ``w``): mean, SD, min, max;
- ``rate_vs_object`` (ground truth only): Pearson and Spearman correlation, with seeded
  bootstrap 95% intervals, of the rate with the object's ``height`` (rate_h) and ``width``
  (rate_w) and with the ``keypoint_spread`` of the parts (SD of the keypoints' y for rate_h,
  x for rate_w). Object sizes are measured *as a share of the stage's frame* (the image region
  the stage's input map spans: the whole image for Conv3 and for Conv4 after a strided Conv3,
  Conv3's crop otherwise), which is what a rate that follows the object would equal;
- ``crop_precision`` (share of the crop's area on the object box) and ``keypoint_recall``
  (share of the parts' keypoints inside the crop), ground truth only;
- ``placement``: top-1 (%) with the stage's boxes as chosen (key ``arp``, whatever the stage's
  mode), replaced by a same-size box centred in the stage's input map (``centred``), by
  same-size boxes at seeded uniform random places (``random``, mean over ``n_random`` draws)
  and by the same-size window of *least* confidence (``least_confident``, Eq. 4 on ``1 - C``);
  everything after the stage runs on the forced crop (:meth:`arpviz.models.MSGN.explain` with
  ``boxes``). ``placement_keypoint_recall`` gives the parts inside each of these boxes;
- ``k_curve`` (ARP stages): top-1 and the mean rates against ``k`` over the split (the paper's
  Figure 6 at data-set level), other stages unchanged;
- ``confidence``: the keypoint confidence map's range and, with ground truth, its mean over the
  cells on the object box and off it, and their difference (``contrast``), per image;
- ``floor_free`` (a diagnostic, **not** the paper's operator): Eq. 9's rate computed from the
  same map with its floor removed, ``relu(C - median(C))`` per image (k of the stage, 1 for
  RP/STN; not bounded below by dsr; no network pass), and its correlation with the object
  (ground truth only): whether the map's shape above its floor could follow the object at all;
- ``ideal`` (``--ideal``, ground truth only): the rates of the paper's ARP (key ``arp``) and of
  ARP-FG (``arpfg``, beyond the paper) when every channel of the stage's input is replaced by
  the object's ground-truth mask on that map (:func:`arpviz.models.mask_on_map` over the
  stage's frame), with ``k`` and ``rate_vs_object`` as above: what each rule would do with a
  perfect map.

What needs ground truth (SynthBirds renders it) is ``None`` (JSON ``null``) on other data.
``tau`` (beyond the paper; 1 is the paper) analyses the checkpoint with every RP/ARP stage's
confidence at that temperature. :func:`analyse` returns an :class:`AdaptivityReport` (a
dataclass with :meth:`~AdaptivityReport.to_dict`); :func:`analyse_cached` caches it as JSON per
(checkpoint digest, split, limit, tau, settings). See ``docs/adaptivity.md``.

For a re-ID checkpoint, :func:`reid_k_curve` gives the k curve of retrieval instead: mAP and
rank-1 against one ARP stage's k over the test query/gallery (a :class:`ReIDKCurve`).
"""

from arpviz.analysis.cache import analyse_cached, cache_key
from arpviz.analysis.cli import format_table, main
from arpviz.analysis.floor import ConfidenceFloor, measure_confidence_floor
from arpviz.analysis.measure import DEFAULT_K_VALUES, analyse
from arpviz.analysis.reid_curve import ReIDKCurve, reid_k_curve
from arpviz.analysis.report import AdaptivityReport, StageAnalysis
from arpviz.analysis.statistics import correlation, stats
from arpviz.checkpoint import file_digest as checkpoint_digest

__all__ = [
    "DEFAULT_K_VALUES",
    "AdaptivityReport",
    "ConfidenceFloor",
    "ReIDKCurve",
    "StageAnalysis",
    "analyse",
    "analyse_cached",
    "cache_key",
    "checkpoint_digest",
    "correlation",
    "format_table",
    "main",
    "measure_confidence_floor",
    "reid_k_curve",
    "stats",
]
