"""Put ARP into a torchvision ImageNet ResNet; ``arpviz-convert --help``.

The converted network is the torchvision ResNet itself, weights untouched and not fine-tuned,
with the stride of Conv3 (``layer2``) and Conv4 (``layer3``) replaced by Adaptive Region Pooling
of the stage input followed by the stage at stride 1, as MSGN places it (an MSGN with
``local_branches=0``, one branch ``"main"``, and ``embedding_dim=0``: torchvision's ``fc`` is the
classifier). The result is an ordinary arpviz checkpoint (:func:`arpviz.checkpoint.save`): 1000
ImageNet classes named from torchvision's weights ``meta["categories"]``, input 224 evaluated as
torchvision does (the shorter side resized to the weights' resize, 256 or 232, the aspect kept,
then the centre crop), ImageNet mean and std, and a ``dataset`` record that says what it is.

Weights come from a file the user names (read with ``torch.load(weights_only=True)``: a pickle
that would run code is refused, never executed) or from torchvision's file in the torch hub
cache (``torch.hub.get_dir()/checkpoints``), which is downloaded only on request
(``download=True``, ``arpviz-convert --download``; :mod:`arpviz.weights`: torchvision's URL or
``ARPVIZ_WEIGHTS_MIRROR``, the checksum verified). With ``conv3="stride"`` and
``conv4="stride"`` the converted network is the plain torchvision one (same logits).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import Tensor
from torchvision.models import get_model_weights
from tqdm.auto import tqdm

from arpviz import checkpoint as ckpt
from arpviz.commands import command_parser
from arpviz.images import IMAGENET_MEAN, IMAGENET_STD
from arpviz.models import MSGN, MSGNConfig
from arpviz.models.pretrained import load_backbone_state_dict, read_state_dict
from arpviz.models.stages import ADAPTIVE_MODES, STEERABLE_MODES
from arpviz.validation import check_output_file
from arpviz.weights import (
    MIRROR_ENV,
    OFFLINE_ENV,
    DownloadInterrupted,
    WeightsEntry,
    download_weights,
    file_sha256,
    resolve_weights,
    verify_file,
    weights_entries,
)

__all__ = [
    "ARCHITECTURES",
    "INPUT_SIZE",
    "PROG",
    "RESIZE",
    "STAGE_MODES",
    "Conversion",
    "ConvertError",
    "available_in_torch_cache",
    "cached_weights",
    "convert",
    "convert_cached",
    "converted_cache_dir",
    "converted_name",
    "download_entry",
    "guess_architecture",
    "imagenet_config",
    "imagenet_meta",
    "main",
    "model_from_state_dict",
    "torch_cache_candidates",
]

logger = logging.getLogger(__name__)

ARCHITECTURES: tuple[str, ...] = (
    "resnet18", "resnet34", "resnet50", "resnet101", "resnext101_32x8d",
)
INPUT_SIZE = 224
#: The evaluation resize of the shorter side when the weights do not say (torchvision's V1).
RESIZE = 256
#: How Conv3/Conv4 may downsample: the modes a user may steer a stage to, or the stride.
STAGE_MODES: tuple[str, ...] = (*STEERABLE_MODES, "stride")
PROG = "arpviz-convert"

Progress = Callable[[float, str], None]
"""``progress(fraction in [0, 1], message)``, e.g. ``st.progress(fraction, text=message)``."""


class ConvertError(ValueError):
    """Weights that cannot be converted (the one-line message says why)."""


@dataclass(frozen=True)
class Conversion:
    """What :func:`convert` made.

    Attributes:
        path: the checkpoint written (or found and reused).
        weights_path: the torchvision state-dict file it came from.
        meta: the checkpoint's metadata (``meta.dataset`` describes the conversion).
        reused: ``True`` when an existing matching checkpoint was kept instead of converting.
    """

    path: Path
    weights_path: Path
    meta: ckpt.CheckpointMeta
    reused: bool = False


# ----------------------------------------------------------------------------- locations


def converted_cache_dir() -> Path:
    """Where converted checkpoints are kept: ``$ARPVIZ_CACHE/converted`` (default
    ``~/.cache/arpviz/converted``). Not created here."""
    root = os.environ.get("ARPVIZ_CACHE") or Path.home() / ".cache" / "arpviz"
    return Path(root).expanduser() / "converted"


def _check_arch(arch: object) -> str:
    if arch not in ARCHITECTURES or not isinstance(arch, str):
        raise ValueError(f"arch must be one of {ARCHITECTURES}, got {arch!r}")
    return arch


def _categories(arch: str) -> tuple[str, ...]:
    """The 1000 ImageNet class names of torchvision's weights of ``arch``."""
    family = get_model_weights(arch)
    return tuple(str(c) for c in family.DEFAULT.meta["categories"])


def torch_cache_candidates(arch: str) -> list[Path]:
    """Every file name torchvision would cache ``arch``'s ImageNet weights under (default
    first, :func:`arpviz.weights.weights_entries`); none of them need exist."""
    return [entry.cache_path for entry in weights_entries(_check_arch(arch))]


def cached_weights(arch: str) -> Path | None:
    """The first of :func:`torch_cache_candidates` that is a file, else ``None``."""
    return next((p for p in torch_cache_candidates(arch) if p.is_file()), None)


def available_in_torch_cache() -> list[tuple[str, Path]]:
    """``(arch, weights file)`` for every supported architecture whose torchvision ImageNet
    weights are in the torch hub cache (what a sidebar may offer without a download)."""
    found = ((arch, cached_weights(arch)) for arch in ARCHITECTURES)
    return [(arch, path) for arch, path in found if path is not None]


def download_entry(arch: str) -> WeightsEntry:
    """The weights a download of ``arch`` fetches: torchvision's default
    (:func:`arpviz.weights.resolve_weights`)."""
    return resolve_weights(_check_arch(arch), "DEFAULT")


def _entry_of(arch: str, weights_path: Path) -> WeightsEntry | None:
    """The weights entry whose cache file name ``weights_path`` has, else ``None``."""
    return next((e for e in weights_entries(arch) if e.file_name == weights_path.name), None)


# ----------------------------------------------------------------------------- building


def imagenet_config(
    arch: str,
    *,
    conv3: str = "arp",
    conv4: str = "arp",
    conv3_k: float = 1.0,
    conv4_k: float = 0.7,
    dsr: float | tuple[float, float] = 0.5,
) -> MSGNConfig:
    """The :class:`MSGNConfig` of a converted ``arch``: one branch, no embedding layer, 1000
    classes; ``conv3``/``conv4`` are one of :data:`STAGE_MODES` (``"arp"``, ``"rp"``,
    ``"arpfg"``, ``"arpfg_peak"`` or ``"stride"``)."""
    _check_arch(arch)
    for name, mode in (("conv3", conv3), ("conv4", conv4)):
        if mode not in STAGE_MODES:
            raise ValueError(f"{name} must be one of {STAGE_MODES}, got {mode!r}")
    return MSGNConfig(
        backbone=arch, num_classes=1000, local_branches=0, conv3=conv3, conv3_k=conv3_k,
        conv4=conv4, conv4_k=conv4_k, dsr=dsr, embedding_dim=0,
    )


def model_from_state_dict(
    config: MSGNConfig, state_dict: Mapping[str, Tensor], source: str = "state dict"
) -> MSGN:
    """Build the converted MSGN and copy a torchvision ResNet state dict into it.

    ``conv1``/``bn1`` go to ``stem``, ``layer1``..``layer4`` to themselves (``layer3``/``layer4``
    under ``branches.main``), ``fc`` to ``classifier``.

    Raises:
        ConvertError: keys or shapes of another architecture, no 1000-way ``fc``, or non-finite
            values; the message starts with ``source``.
    """
    if config.local_branches != 0 or config.embedding_dim != 0:
        raise ValueError("config must have local_branches=0 and embedding_dim=0 "
                         "(use imagenet_config)")
    arch = config.backbone
    model = MSGN(config)
    try:
        load_backbone_state_dict(model, state_dict)
    except ValueError as exc:
        guess = guess_architecture(state_dict)
        hint = f"; it looks like {guess} (--arch {guess})" if guess else ""
        raise ConvertError(f"{source}: not {arch} weights{hint}: {exc}") from None
    weight, bias = state_dict.get("fc.weight"), state_dict.get("fc.bias")
    if weight is None or bias is None:
        raise ConvertError(f"{source}: no fc.weight/fc.bias (the ImageNet classifier is missing)")
    expected = tuple(model.classifier.weight.shape)
    if tuple(weight.shape) != expected or tuple(bias.shape) != expected[:1]:
        raise ConvertError(
            f"{source}: fc is {tuple(weight.shape)}, {arch} on ImageNet has {expected} "
            "(a fine-tuned or other-architecture network?)"
        )
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not v.isfinite().all()]
    if bad:
        raise ConvertError(f"{source}: non-finite values in {bad[:3]}")
    with torch.no_grad():
        model.classifier.weight.copy_(weight)
        model.classifier.bias.copy_(bias)
    return model.eval()


def guess_architecture(state_dict: Mapping[str, Tensor]) -> str | None:
    """The architecture of :data:`ARCHITECTURES` whose torchvision state dict has exactly these
    keys and shapes (``fc`` aside), else ``None``. Builds nothing but meta-device models."""
    shapes = {k: tuple(v.shape) for k, v in state_dict.items() if not k.startswith("fc.")}
    for arch in ARCHITECTURES:
        with torch.device("meta"):
            reference = getattr(torchvision.models, arch)(weights=None).state_dict()
        if shapes == {k: tuple(v.shape) for k, v in reference.items() if not k.startswith("fc.")}:
            return arch
    return None


def imagenet_meta(
    config: MSGNConfig, weights_path: Path, source: str | None = None,
    resize: int = RESIZE, sha256: str | None = None,
) -> ckpt.CheckpointMeta:
    """The checkpoint metadata of a conversion: ImageNet names, input 224, ImageNet mean/std,
    and a ``dataset`` record (``name`` ``"imagenet"``, ``source``, ``fine_tuned`` ``False``,
    ``arp_inserted``, ``conv3``/``conv4`` with their ``k``, ``dsr``, the evaluation ``resize``
    of the shorter side with ``keep_aspect`` true, the weights file's name, size and SHA-256
    (``sha256``, computed when not given)) that a model card can show."""
    stages = (("conv3", config.conv3), ("conv4", config.conv4))
    pooled = [stage for stage, mode in stages if mode != "stride"]
    inserted = [stage for stage, mode in stages if mode == "arp"]
    stat = weights_path.stat()
    dataset = {
        "name": "imagenet",
        "title": "ImageNet-1k, torchvision weights, not fine-tuned",
        "source": source or f"user file {weights_path.name}",
        "fine_tuned": False,
        "arp_inserted": inserted,
        "pooled_stages": pooled,
        "conv3": config.conv3,
        "conv3_k": config.conv3_k if config.conv3 in ADAPTIVE_MODES else None,
        "conv4": config.conv4,
        "conv4_k": config.conv4_k if config.conv4 in ADAPTIVE_MODES else None,
        "dsr": list(config.dsr) if pooled else None,
        "resize": int(resize),
        "keep_aspect": True,
        "weights_file": weights_path.name,
        "weights_bytes": stat.st_size,
        "weights_sha256": sha256 if sha256 is not None else file_sha256(weights_path),
    }
    recipe = {"tool": PROG, "epochs": 0, "trained": False}
    return ckpt.CheckpointMeta(
        config=config, class_names=_categories(config.backbone), input_size=INPUT_SIZE,
        mean=IMAGENET_MEAN, std=IMAGENET_STD, recipe=recipe, dataset=dataset,
    )


def converted_name(config: MSGNConfig, weights_path: Path) -> str:
    """The file name :func:`convert_cached` uses: weights file stem, stage modes, k and DSR."""
    def tag(mode: str, k: float) -> str:
        return f"{mode}{k:g}" if mode in ADAPTIVE_MODES else mode

    dsr = "x".join(f"{r:g}" for r in dict.fromkeys(config.dsr))
    stem = Path(weights_path).name.split(".")[0]
    return (f"{stem}_c3-{tag(config.conv3, config.conv3_k)}_c4-{tag(config.conv4, config.conv4_k)}"
            f"_dsr{dsr}.safetensors")


# ----------------------------------------------------------------------------- conversion


def _resolve_weights(arch: str, weights: str | os.PathLike | None) -> Path:
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"no weights file at {path}")
        return path
    path = cached_weights(arch)
    if path is None:
        looked = ", ".join(str(p) for p in torch_cache_candidates(arch))
        entry = download_entry(arch)
        raise FileNotFoundError(
            f"no {arch} ImageNet weights in the torch cache (looked for {looked}); add "
            f"--download to fetch {entry.file_name} ({entry.size_text}), or pass --weights FILE. "
            f"{entry.manual()}"
        )
    return path


def _scaled(progress: Progress | None, start: float, end: float) -> Progress | None:
    """``progress`` with fractions mapped into ``[start, end]``."""
    if progress is None:
        return None
    return lambda fraction, message: progress(start + (end - start) * fraction, message)


def _weights_file(
    arch: str, weights: str | os.PathLike | None, download: bool, progress: Progress | None
) -> tuple[Path, Progress | None]:
    """The weights file, downloaded first when ``download`` asks for torchvision's file and the
    torch cache has none of ``arch``'s; and the progress callback for the rest of the work
    (a download takes the first 80% of the bar)."""
    if download and weights is not None:
        raise ValueError("download: only torchvision's own file is downloaded; give either "
                         "weights (a file) or download, not both")
    if download and cached_weights(arch) is None:
        download_weights(download_entry(arch), progress=_scaled(progress, 0.0, 0.8))
        return _resolve_weights(arch, None), _scaled(progress, 0.8, 1.0)
    return _resolve_weights(arch, weights), progress


def _matches(path: Path, config: MSGNConfig, weights_path: Path,
             resize: int) -> ckpt.CheckpointMeta | None:
    """The metadata of an existing checkpoint made from the same weights file and config, with
    the same evaluation geometry."""
    try:
        meta = ckpt.read_meta(path)
    except (OSError, ValueError) as exc:
        logger.info("not reusing %s: %s", path, exc)
        return None
    stat = weights_path.stat()
    same = (meta.config == config and meta.dataset.get("weights_file") == weights_path.name
            and meta.dataset.get("weights_bytes") == stat.st_size
            and meta.dataset.get("resize") == resize
            and meta.dataset.get("keep_aspect") is True)
    return meta if same else None


def convert(
    arch: str,
    out: str | os.PathLike,
    weights: str | os.PathLike | None = None,
    *,
    conv3: str = "arp",
    conv4: str = "arp",
    conv3_k: float = 1.0,
    conv4_k: float = 0.7,
    dsr: float | tuple[float, float] = 0.5,
    reuse: bool = False,
    download: bool = False,
    progress: Progress | None = None,
) -> Conversion:
    """Convert torchvision ImageNet weights of ``arch`` into the checkpoint ``out``.

    Args:
        arch: one of :data:`ARCHITECTURES`.
        out: the ``.safetensors`` file to write.
        weights: a torchvision state-dict file (``.pth``); ``None`` takes torchvision's file
            from the torch hub cache (:func:`cached_weights`).
        conv3, conv4: one of :data:`STAGE_MODES`: ``"arp"``, ``"rp"``, ``"arpfg"``,
            ``"arpfg_peak"`` or ``"stride"`` (both ``"stride"``: the plain torchvision network).
        conv3_k, conv4_k: the ``k`` of an adaptive Conv3 and Conv4.
        dsr: the target downsampling rate of the pooled stages (a number or ``(h, w)``).
        reuse: keep ``out`` when it already holds this conversion of the same weights file.
        download: when the torch cache has none of ``arch``'s files, download torchvision's
            default one first (:func:`arpviz.weights.download_weights`: the checksum verified;
            not with ``weights``).
        progress: called with ``(fraction, message)`` as the work goes on.

    Raises:
        FileNotFoundError: no weights file (the message says where it looked).
        ConvertError: (a ``ValueError``) the file is empty, truncated, a pickle with code, or
            not ``arch``'s ImageNet weights.
        arpviz.weights.WeightsError: (an ``OSError``) the download failed or its checksum did
            not match (nothing is left in the cache); ``ChecksumError`` too for a file named as
            torchvision's (in the torch cache, say) whose SHA-256 is not the one its name
            carries.
        ValueError: a bad option (naming it).
    """
    config = imagenet_config(arch, conv3=conv3, conv4=conv4, conv3_k=conv3_k, conv4_k=conv4_k,
                             dsr=dsr)
    out = Path(out)
    weights_path, progress = _weights_file(arch, weights, download, progress)

    def report(fraction: float, message: str) -> None:
        logger.info("%s", message)
        if progress is not None:
            progress(fraction, message)

    entry = _entry_of(arch, weights_path)
    resize = entry.resize if entry is not None else RESIZE
    if reuse and out.is_file():
        meta = _matches(out, config, weights_path, resize)
        if meta is not None:
            report(1.0, f"reusing {out}")
            return Conversion(out, weights_path, meta, reused=True)
    report(0.0, f"checking {weights_path}")
    # a file named as torchvision's (put in the torch cache by hand, say) must be that file
    sha256 = (verify_file(entry, weights_path) if entry is not None
              else file_sha256(weights_path))
    report(0.1, f"reading {weights_path}")
    try:
        state = read_state_dict(weights_path)
    except ValueError as exc:
        raise ConvertError(str(exc)) from None
    report(0.4, f"building {arch} with {conv3} in Conv3 and {conv4} in Conv4")
    model = model_from_state_dict(config, state, weights_path.name)
    meta = imagenet_meta(config, weights_path, entry.name if entry is not None else None, resize,
                         sha256)
    report(0.7, f"writing {out}")
    # a private name first, then one atomic rename: two sessions converting the same
    # architecture at once each write their own file and the last rename wins
    partial = out.with_name(f".{out.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
    try:
        ckpt.save(partial, model, meta)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    report(1.0, f"wrote {out}")
    return Conversion(out, weights_path, meta)


def convert_cached(
    arch: str,
    out_dir: str | os.PathLike | None = None,
    progress: Progress | None = None,
    *,
    weights: str | os.PathLike | None = None,
    download: bool = False,
    **options: object,
) -> Path:
    """Convert once into ``out_dir`` (default :func:`converted_cache_dir`) under
    :func:`converted_name` and return the checkpoint's path; a matching earlier conversion of
    the same weights file is reused (then ``progress`` hears only ``(1.0, "reusing ...")``).

    ``weights`` defaults to torchvision's file in the torch cache, which ``download`` fetches
    first when it is not there (as :func:`convert`); ``options`` are :func:`convert`'s
    ``conv3``, ``conv4``, ``conv3_k``, ``conv4_k`` and ``dsr``.

    Raises:
        FileNotFoundError: no weights file (for the cache: where it looked).
        ConvertError: the weights file cannot be converted.
        arpviz.weights.WeightsError: the download failed (nothing is left in the cache).
        TypeError: an unknown option.
    """
    known = {"conv3", "conv4", "conv3_k", "conv4_k", "dsr"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"convert_cached got unknown option(s) {unknown}; known: {sorted(known)}")
    config = imagenet_config(arch, **options)  # type: ignore[arg-type]
    weights_path, progress = _weights_file(arch, weights, download, progress)
    folder = Path(out_dir) if out_dir is not None else converted_cache_dir()
    out = folder / converted_name(config, weights_path)
    return convert(arch, out, weights_path, reuse=True, progress=progress,
                   **options).path  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        PROG,
        description="Turn torchvision ImageNet ResNet weights into an arpviz checkpoint with ARP "
        "in place of the stride of Conv3 and Conv4 (no training) and print its path. The "
        "weights come from the torch cache or a file; --download fetches torchvision's file "
        "first.",
        epilog=f"Env {MIRROR_ENV}=URL downloads from a mirror, {OFFLINE_ENV}=1 turns downloads "
        "off. Details: docs/convert.md.",
    )
    parser.add_argument("--arch", choices=ARCHITECTURES, default="resnet50",
                        help="the torchvision architecture (default: %(default)s)")
    parser.add_argument("--weights", default=None, metavar="FILE",
                        help="a torchvision state-dict file (.pth) (default: torchvision's file "
                        "in the torch hub cache)")
    parser.add_argument("--download", action="store_true",
                        help="download torchvision's default ImageNet weights of --arch into "
                        f"the torch cache ({Path(torch.hub.get_dir()) / 'checkpoints'}) when "
                        "they are not there; the SHA-256 is checked against the file name "
                        "(default: never download)")
    parser.add_argument("--out", default=None, metavar="FILE",
                        help="the checkpoint to write (.safetensors) (default: a name in "
                        f"{converted_cache_dir()})")
    parser.add_argument("--conv3", choices=STAGE_MODES, default="arp",
                        help="how Conv3 (layer2) downsamples (default: %(default)s)")
    parser.add_argument("--conv4", choices=STAGE_MODES, default="arp",
                        help="how Conv4 (layer3) downsamples (default: %(default)s)")
    parser.add_argument("--conv3-k", type=float, default=1.0, metavar="K",
                        help="k of an adaptive Conv3 (arp, arpfg, arpfg_peak) "
                        "(default: %(default)s)")
    parser.add_argument("--conv4-k", type=float, default=0.7, metavar="K",
                        help="k of an adaptive Conv4 (arp, arpfg, arpfg_peak) "
                        "(default: %(default)s)")
    parser.add_argument("--dsr", type=float, default=0.5,
                        help="target downsampling rate of the pooled stages, in (0, 1] "
                        "(default: %(default)s)")
    parser.add_argument("--list", action="store_true",
                        help="only list the architectures whose weights are in the torch cache")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="hide the progress bar (shown by default)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: prints the checkpoint's path, or one line on error (exit 1)."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.list:
        found = available_in_torch_cache()
        for arch, path in found:
            print(f"{arch}\t{path}")
        if not found:
            print(f"no ImageNet ResNet weights in {Path(torch.hub.get_dir()) / 'checkpoints'}")
        return 0
    if args.download and args.weights is not None:
        parser.error("--download fetches torchvision's own file; leave out --weights")
    if args.out is not None:
        if not args.out.endswith(".safetensors"):
            parser.error(f"--out must name a .safetensors file, got {args.out}")
        try:
            check_output_file(args.out, "--out")
        except ValueError as exc:
            parser.error(str(exc))
    options = {"conv3": args.conv3, "conv4": args.conv4, "conv3_k": args.conv3_k,
               "conv4_k": args.conv4_k, "dsr": args.dsr}
    bar = tqdm(total=100, desc=f"convert {args.arch}", disable=not args.progress,
               bar_format="{percentage:3.0f}% {desc}", file=sys.stderr)

    def progress(fraction: float, message: str) -> None:
        bar.n = round(100 * fraction)
        bar.set_description_str(message)

    try:
        if args.out is None:
            path = convert_cached(args.arch, progress=progress, weights=args.weights,
                                  download=args.download, **options)
        else:
            path = convert(args.arch, args.out, args.weights, download=args.download,
                           progress=progress, **options).path
    except DownloadInterrupted as exc:  # SIGTERM/SIGINT: the temporary file is gone
        bar.close()
        print(f"{PROG}: {exc.message}", file=sys.stderr)
        return 128 + exc.signum
    except (ValueError, TypeError, OSError) as exc:
        bar.close()
        print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    bar.close()
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
