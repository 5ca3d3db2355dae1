"""torchvision's ImageNet weights: which file, where torch keeps it, and its download on request.

Nothing here runs unless a user asks: ``arpviz-convert --download``, ``arpviz-train --pretrained
DEFAULT --download`` or the app's download button call :func:`download_weights`; everything else
only names files and looks in the cache.

The files are torchvision's own: a :class:`WeightsEntry` is made from torchvision's weights enum
(``ResNet50_Weights.IMAGENET1K_V2``: its URL, its file name, whose ``-<hex>.`` part is the
beginning of the file's SHA-256 as ``torch.hub`` checks it, its size and its evaluation resize)
and the file lives where ``torch.hub`` keeps it, ``torch.hub.get_dir()/checkpoints/<file name>``
(``$TORCH_HOME/hub/checkpoints``). A file arpviz fetched is therefore the file
``torchvision.models.resnet50(weights="DEFAULT")`` would use, and the other way round.

- ``ARPVIZ_WEIGHTS_MIRROR=URL``: download from ``URL/<file name>`` instead of torchvision's server
  (for machines that reach weights only through a mirror; an ``http`` or ``https`` URL, nothing
  else); the checksum is checked all the same.
- ``ARPVIZ_OFFLINE=1``: :func:`offline` says so; the app then offers no download button and
  :func:`download_weights` refuses to download (the commands' ``--download`` included).

A download is checked before it is kept (length, SHA-256 prefix; a failed, cut-short or wrong
file leaves nothing in the cache) and bounded in time and size (:data:`TIMEOUT`,
:data:`MIN_RATE`, :data:`DEADLINE`, :attr:`WeightsEntry.max_bytes`): the details are
:mod:`arpviz.weights_download`'s. Every failure is a :class:`WeightsError` (an ``OSError``; a
wrong file a :class:`ChecksumError`, SIGTERM or SIGINT a :class:`DownloadInterrupted`) whose
message is one line and whose :attr:`WeightsError.manual` says how to put the file in place by
hand. :func:`verify_file` checks a file put in the cache by hand against the SHA-256 prefix its
name carries.

Tests (or a site with its own files) add entries with :func:`register_weights`.

This module gathers the two that hold it: :mod:`arpviz.weights_catalog` (the entries, the cache
layout, the errors, the checksums of files on disk) and :mod:`arpviz.weights_download` (the
bounded download; its limits :data:`TIMEOUT`, :data:`MIN_RATE` and :data:`DEADLINE` are read
there, so a test lowers them in that module).
"""

from arpviz import weights_catalog, weights_download
from arpviz.weights_catalog import *  # noqa: F403 - the re-export is this module's purpose
from arpviz.weights_download import *  # noqa: F403

__all__ = [*weights_catalog.__all__, *weights_download.__all__]
