"""Where the app's checkpoints may come from and which are there.

- the checkpoint roots (:func:`checkpoint_roots`: the bundled folder, :func:`converted_cache_dir`,
  the operator's folders) and :func:`allowed_folder`, which accepts a visitor's folder only
  inside them (else :class:`FolderNotAllowed`);
- the checkpoints of a list of folders (:func:`find_checkpoints`) and the one opened first
  (:func:`default_checkpoint`);
- the ImageNet ResNets with ARP the sidebar offers (:func:`imagenet_offers`,
  :class:`ImagenetOffer`, :func:`imagenet_label`): from the torch cache, or downloaded on
  request (:func:`get_offer`, :func:`downloads_offered`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from arpviz.bundled import DEFAULT_CLASSIFICATION, bundled_dir
from arpviz.convert import (
    ARCHITECTURES,
    Progress,
    cached_weights,
    convert_cached,
    converted_cache_dir,
    converted_name,
    download_entry,
    imagenet_config,
)
from arpviz.weights import WeightsEntry, offline

__all__ = [
    "BUNDLED_DEFAULT",
    "FolderNotAllowed",
    "ImagenetOffer",
    "allowed_folder",
    "bundled_dir",
    "checkpoint_roots",
    "converted_cache_dir",
    "default_checkpoint",
    "downloads_offered",
    "find_checkpoints",
    "get_offer",
    "imagenet_label",
    "imagenet_offers",
    "listing_roots",
    "within_roots",
]

logger = logging.getLogger(__name__)

#: The checkpoint the app opens first when it is present.
BUNDLED_DEFAULT = DEFAULT_CLASSIFICATION


def checkpoint_roots() -> tuple[Path, ...]:
    """The folders (resolved) whose checkpoints a visitor may list and load.

    Env ``ARPVIZ_CHECKPOINT_ROOTS`` (``os.pathsep``-separated) names them; by default the
    bundled folder and :func:`converted_cache_dir`. The operator's ``ARPVIZ_CHECKPOINT_DIR``,
    when set, is a root too.
    """
    raw = os.environ.get("ARPVIZ_CHECKPOINT_ROOTS", "")
    named = [p for p in raw.split(os.pathsep) if p.strip()]
    folders = named or [str(bundled_dir()), str(converted_cache_dir())]
    extra = os.environ.get("ARPVIZ_CHECKPOINT_DIR", "").strip()
    if extra:
        folders.append(extra)
    out: list[Path] = []
    for folder in folders:
        resolved = Path(folder.strip()).expanduser().resolve()
        if resolved not in out:
            out.append(resolved)
    return tuple(out)


class FolderNotAllowed(ValueError):
    """A folder outside the checkpoint roots (the message is fit to show a visitor)."""


def allowed_folder(folder: str | os.PathLike, roots: Sequence[Path] | None = None) -> Path:
    """``folder`` resolved (symlinks, ``..``, ``~``), when it lies inside one of ``roots``.

    Args:
        folder: a folder a visitor typed.
        roots: the allowed folders (default :func:`checkpoint_roots`).

    Raises:
        FolderNotAllowed: the folder lies outside every root.
    """
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"folder must be a path, got {type(folder).__name__}")
    resolved = Path(folder).expanduser().resolve()
    roots = checkpoint_roots() if roots is None else tuple(Path(r).resolve() for r in roots)
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        raise FolderNotAllowed(
            f"{str(folder)!r} is outside the folders this server lets you open; the operator "
            "names them with ARPVIZ_CHECKPOINT_ROOTS")
    return resolved


def listing_roots() -> tuple[Path, ...]:
    """What a listing may show: :func:`checkpoint_roots` and the bundled folder (resolved)."""
    bundled = bundled_dir().expanduser().resolve()
    roots = checkpoint_roots()
    return roots if bundled in roots else (*roots, bundled)


def within_roots(path: str | os.PathLike, roots: Sequence[Path] | None = None) -> bool:
    """Whether ``path``, its symlinks resolved, lies inside one of ``roots`` (default
    :func:`listing_roots`): a symlinked file that points out of the roots does not."""
    resolved = Path(path).expanduser().resolve()
    roots = listing_roots() if roots is None else tuple(Path(r).resolve() for r in roots)
    return any(resolved == root or resolved.is_relative_to(root) for root in roots)


_ARCH_LABELS = {"resnet18": "ResNet-18", "resnet34": "ResNet-34", "resnet50": "ResNet-50",
                "resnet101": "ResNet-101", "resnext101_32x8d": "ResNeXt-101 32x8d"}


def imagenet_label(arch: str) -> str:
    """What the sidebar calls a converted torchvision network: "ImageNet ResNet-50 with ARP"."""
    return f"ImageNet {_ARCH_LABELS.get(arch, arch)} with ARP"


@dataclass(frozen=True)
class ImagenetOffer:
    """A torchvision ImageNet network the sidebar offers with ARP in Conv3 and Conv4.

    Attributes:
        arch: ``"resnet50"``, ...; label: :func:`imagenet_label`.
        weights: torchvision's file in the torch hub cache (where the download puts it when
            it is not there yet).
        target: where :func:`arpviz.convert.convert_cached` writes (or finds) its default
            conversion; it may not exist yet.
        ready: whether ``weights`` is in the torch cache (no download needed).
        entry: the weights a download fetches (URL, size, checksum prefix).
    """

    arch: str
    label: str
    weights: Path
    target: Path
    ready: bool = True
    entry: WeightsEntry | None = None

    @property
    def status(self) -> str:
        """``"ready"`` or ``"download 98 MB"``."""
        if self.ready or self.entry is None:
            return "ready"
        return f"download {self.entry.size_text}"

    @property
    def manual(self) -> str:
        """How to put the weights in place by hand (the URL and the torch cache path)."""
        if self.entry is None:
            return f"Put torchvision's {self.arch} weights at {self.weights}"
        return self.entry.manual()


def imagenet_offers(out_dir: str | os.PathLike | None = None, *,
                    downloadable: bool = False) -> list[ImagenetOffer]:
    """One :class:`ImagenetOffer` per architecture whose weights are in the torch cache, and
    with ``downloadable`` one for every other supported architecture too (``ready`` False,
    torchvision's default weights to download), converting into ``out_dir`` (default
    :func:`arpviz.convert.converted_cache_dir`) with the default settings."""
    folder = Path(out_dir) if out_dir is not None else converted_cache_dir()
    offers = []
    for arch in ARCHITECTURES:
        entry = download_entry(arch)
        cached = cached_weights(arch)
        if cached is None and not downloadable:
            continue
        weights = cached if cached is not None else entry.cache_path
        offers.append(ImagenetOffer(arch, imagenet_label(arch), weights,
                                    folder / converted_name(imagenet_config(arch), weights),
                                    ready=cached is not None, entry=entry))
    return offers


def downloads_offered() -> bool:
    """Whether the app may offer to download weights (env ``ARPVIZ_OFFLINE`` unset)."""
    return not offline()


def get_offer(offer: ImagenetOffer, progress: Progress | None = None) -> Path:
    """The offer's converted checkpoint: torchvision's weights downloaded first when they are
    not in the torch cache (the checksum verified), converted once, then reused.

    Raises:
        arpviz.weights.WeightsError: the download failed (``.message`` one line, ``.manual``
            the way by hand); nothing is left in the cache.
        FileNotFoundError, arpviz.convert.ConvertError: the weights cannot be converted.
    """
    if not isinstance(offer, ImagenetOffer):
        raise TypeError(f"offer must be an ImagenetOffer, got {type(offer).__name__}")
    return convert_cached(offer.arch, offer.target.parent, progress, download=True)


def find_checkpoints(folders: Iterable[str | os.PathLike | None], *,
                     roots: Sequence[Path] | None = None) -> list[Path]:
    """Every ``*.safetensors`` checkpoint in ``folders`` (not recursive), in folder order.

    Training-state files (``*.state.safetensors``) and missing folders are skipped; a file
    found twice is listed once. With ``roots`` (the app passes :func:`listing_roots`), a file
    whose symlinks resolve outside them is left out (and logged): the roots mean the roots.
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
            if roots is not None and not within_roots(resolved, roots):
                logger.warning("not listed: %s resolves outside the checkpoint roots", file)
                continue
            if resolved not in seen:
                seen.add(resolved)
                found.append(file)
    return found


def default_checkpoint(paths: Sequence[Path]) -> Path | None:
    """``synthbirds_wide_msgn_arp.safetensors`` when listed, else the first path, else ``None``."""
    for path in paths:
        if path.name == BUNDLED_DEFAULT:
            return path
    return paths[0] if paths else None
