"""What the app can open: checkpoints, model cards, training records and the choice of runs.

- :mod:`~arpviz.explorer.catalog.sources`: where checkpoints may come from
  (:func:`bundled_dir`, :func:`converted_cache_dir`, :func:`checkpoint_roots`,
  :func:`allowed_folder`) and which are there (:func:`find_checkpoints`,
  :func:`default_checkpoint`); the ImageNet ResNets with ARP it offers
  (:func:`imagenet_offers`, :class:`ImagenetOffer`): from the torch cache, or downloaded on
  request (:func:`get_offer`, :func:`downloads_offered`);
- :mod:`~arpviz.explorer.catalog.cards`: what a checkpoint says about its model
  (:func:`describe`, :func:`checkpoint_titles`, :func:`model_card`,
  :func:`trained_on_synthbirds`);
- :mod:`~arpviz.explorer.catalog.runs`: what it says about its training
  (:class:`TrainingRecord`, :func:`load_record`, :func:`metric_columns`,
  :func:`record_epochs`), and which runs the Training page shows (:func:`discover_runs`,
  :func:`default_runs`, :func:`comparison_pairs`).

Every name is re-exported here (``catalog.find_checkpoints(...)``). Every checkpoint file is read
through :mod:`arpviz.checkpoint`; nothing here builds a model.
"""

from arpviz.explorer.catalog.cards import (
    checkpoint_titles,
    describe,
    describe_file,
    model_card,
    trained_on_synthbirds,
)
from arpviz.explorer.catalog.runs import (
    METRICS,
    TrainingRecord,
    comparison_pairs,
    default_runs,
    discover_runs,
    load_record,
    metric_columns,
    recipe_note,
    record_epochs,
    record_from_checkpoint,
    stage_names,
    unique_name,
)
from arpviz.explorer.catalog.sources import (
    BUNDLED_DEFAULT,
    FolderNotAllowed,
    ImagenetOffer,
    allowed_folder,
    bundled_dir,
    checkpoint_roots,
    converted_cache_dir,
    default_checkpoint,
    downloads_offered,
    find_checkpoints,
    get_offer,
    imagenet_label,
    imagenet_offers,
    listing_roots,
    within_roots,
)

__all__ = [
    "BUNDLED_DEFAULT",
    "METRICS",
    "FolderNotAllowed",
    "ImagenetOffer",
    "TrainingRecord",
    "allowed_folder",
    "bundled_dir",
    "checkpoint_roots",
    "checkpoint_titles",
    "comparison_pairs",
    "converted_cache_dir",
    "default_checkpoint",
    "default_runs",
    "describe",
    "describe_file",
    "discover_runs",
    "downloads_offered",
    "find_checkpoints",
    "get_offer",
    "imagenet_label",
    "imagenet_offers",
    "listing_roots",
    "load_record",
    "metric_columns",
    "model_card",
    "recipe_note",
    "record_epochs",
    "record_from_checkpoint",
    "stage_names",
    "trained_on_synthbirds",
    "unique_name",
    "within_roots",
]
