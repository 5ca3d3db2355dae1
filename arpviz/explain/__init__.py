"""Explain many images: ``arpviz-explain [--checkpoint CKPT] --out DIR INPUT...``.

An INPUT is an image file or a folder (searched recursively for image files, in sorted order).
The command writes ``DIR/results.jsonl`` (one JSON object per image, in input order),
``DIR/overlays/<nnnnnn>_<name>.png`` (every pooled stage's box drawn on the original image, one
colour per stage) and ``DIR/manifest.json`` (checkpoint digest and card, settings, versions,
device). A file that cannot be read safely gets a record with ``"ok": false`` and the reason;
the run goes on. Exit status: 0 when every image worked, 1 when some failed, 2 for a usage
error. Under ``torchrun`` each rank explains a shard and rank 0 writes one results file.

The library side, for the app's export buttons and its Gallery page:

- :func:`list_images`: the image files of files and folders, in a stable order;
- :func:`load_images`: decode them safely (:func:`arpviz.images.load_image_info`);
- :func:`explain_images`: a batch of decoded images through a checkpoint's model, with stage
  overrides (:class:`~arpviz.models.StageOverride`), into :class:`ImageRecord` s whose boxes are
  in each image's own pixels (:class:`InputGeometry`, re-exported from :mod:`arpviz.geometry`,
  maps them back through the resize and centre crop of
  :func:`arpviz.data.transforms.eval_transform`);
- :func:`explain_files`: both of the above for a list of files, batched, failures included;
  :func:`explain_page`: one page of them, for a gallery;
- :func:`record_to_json` and :func:`overlay_png`: the exported record and overlay.
"""

from arpviz.explain.batch import (
    DEFAULT_MAX_BYTES,
    explain_files,
    explain_images,
    explain_page,
    list_images,
    load_images,
)
from arpviz.explain.cli import main, parse_overrides
from arpviz.explain.overlay import overlay_png
from arpviz.explain.records import (
    ClassScore,
    ExplainedImage,
    ImageRecord,
    StageRecord,
    record_to_json,
)
from arpviz.geometry import InputGeometry, eval_resize

__all__ = [
    "DEFAULT_MAX_BYTES",
    "ClassScore",
    "ExplainedImage",
    "ImageRecord",
    "InputGeometry",
    "StageRecord",
    "eval_resize",
    "explain_files",
    "explain_images",
    "explain_page",
    "list_images",
    "load_images",
    "main",
    "overlay_png",
    "parse_overrides",
    "record_to_json",
]
