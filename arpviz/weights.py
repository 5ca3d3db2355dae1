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

A download goes to a temporary file in the cache folder, is checked (length, SHA-256 prefix) and
only then moved into place with :func:`os.replace`: a failed, cut-short or wrong file leaves
nothing in the cache. It is bounded: :data:`TIMEOUT` to connect and between reads, at least
:data:`MIN_RATE` bytes a second over every :data:`TIMEOUT` window (a trickling server is cut
off), :data:`DEADLINE` for the whole transfer, never more bytes than the file's expected size
(:attr:`WeightsEntry.max_bytes`; a larger ``Content-Length`` is refused before the first byte),
redirects only to ``http``/``https`` (and from ``http`` to ``https`` only on the same host).
One download at a time per cache folder (a lock), which first removes the temporary files
killed downloads left. SIGTERM and SIGINT during a download remove the temporary file and raise
:class:`DownloadInterrupted` (in the main thread). Every failure is a :class:`WeightsError` (an
``OSError``; a wrong file a :class:`ChecksumError`) whose message is one line and whose
:attr:`WeightsError.manual` says how to put the file in place by hand. :func:`verify_file`
checks a file put in the cache by hand against the SHA-256 prefix its name carries.

Tests (or a site with its own files) add entries with :func:`register_weights`.

This module gathers the two that hold it: :mod:`arpviz.weights_catalog` (the entries, the cache
layout, the errors, the checksums of files on disk) and :mod:`arpviz.weights_download` (the
bounded download; its limits :data:`TIMEOUT`, :data:`MIN_RATE` and :data:`DEADLINE` are read
there, so a test lowers them in that module).
"""


from arpviz.weights_catalog import (
    MAX_UNKNOWN_BYTES,
    MIRROR_ENV,
    OFFLINE_ENV,
    ChecksumError,
    DownloadInterrupted,
    Progress,
    WeightsEntry,
    WeightsError,
    file_sha256,
    offline,
    register_weights,
    resolve_weights,
    unregister_weights,
    verify_file,
    weights_entries,
)
from arpviz.weights_download import (
    DEADLINE,
    MIN_RATE,
    TIMEOUT,
    download_weights,
    ensure_weights,
)

__all__ = [
    "DEADLINE",
    "MAX_UNKNOWN_BYTES",
    "MIN_RATE",
    "MIRROR_ENV",
    "OFFLINE_ENV",
    "TIMEOUT",
    "ChecksumError",
    "DownloadInterrupted",
    "Progress",
    "WeightsEntry",
    "WeightsError",
    "download_weights",
    "ensure_weights",
    "file_sha256",
    "offline",
    "register_weights",
    "resolve_weights",
    "unregister_weights",
    "verify_file",
    "weights_entries",
]
