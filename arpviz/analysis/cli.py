"""``arpviz-analysis`` (``python -m arpviz.analysis``): analyse a checkpoint, print a table,
write JSON."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from arpviz.analysis.measure import DEFAULT_K_VALUES, analyse
from arpviz.analysis.report import AdaptivityReport
from arpviz.bundled import default_checkpoint_path
from arpviz.commands import command_parser
from arpviz.validation import check_count, check_device, check_output_file

__all__ = ["PROG", "format_table", "main"]

PROG = "arpviz-analysis"


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _fmt_corr(corr: Mapping[str, Any] | None) -> str:
    if corr is None or corr.get("spearman") is None:
        return "-"
    ci = corr["ci95"]["spearman"]
    return f"{corr['spearman']:+.2f} [{ci[0]:+.2f},{ci[1]:+.2f}]" if ci else \
        f"{corr['spearman']:+.2f}"


def format_table(report: AdaptivityReport) -> str:
    """A plain-text table of the report's main figures."""
    lines = [f"{report.checkpoint or '(checkpoint)'}  {report.split}  {report.count} images  "
             f"tau {report.tau:g}  top-1 {report.top1:.1f}%"]
    width = max([5] + [len(st.mode) + 1 for st in report.stages.values()])
    header = (f"{'stage':<14}{'mode':<{width}}{'rate_h mean+-sd [min,max]':<31}"
              f"{'rho(rate_h,height)':<22}{'rho(rate_h,spread)':<22}{'prec':>6}{'recall':>7}"
              f"{'arp':>7}{'centre':>7}{'random':>7}{'least':>7}{'contrast':>9}")
    lines.append(header)
    for name, st in report.stages.items():
        r = st.rate["h"]
        rate = (f"{_fmt(r['mean'])}+-{_fmt(r['sd'], '.4f')} "
                f"[{_fmt(r['min'])},{_fmt(r['max'])}]")
        rvo = st.rate_vs_object or {}
        spread = (rvo.get("keypoint_spread") or {}).get("h")
        p = st.placement
        contrast = (st.confidence.get("contrast") or {}).get("mean")
        pct = (lambda v: "-" if v is None else f"{100 * v:.1f}")  # noqa: E731
        lines.append(
            f"{name:<14}{st.mode:<{width}}{rate:<31}{_fmt_corr(rvo.get('height')):<22}"
            f"{_fmt_corr(spread):<22}{pct(st.crop_precision):>6}{pct(st.keypoint_recall):>7}"
            f"{p['arp']:>7.1f}{p['centred']:>7.1f}{p['random']:>7.1f}"
            f"{p['least_confident']:>7.1f}{_fmt(contrast):>9}")
        free = st.floor_free
        if free and free["rate_vs_object"]:
            r = free["rate"]["h"]
            lines.append(f"{'':<14}floor-free rate_h {_fmt(r['mean'])}+-{_fmt(r['sd'], '.4f')}"
                         f"  rho(height) {_fmt_corr(free['rate_vs_object']['height'])}"
                         f"  rho(width) {_fmt_corr(free['rate_vs_object']['width'])}")
        for rule, ideal in (st.ideal or {}).items():
            r = ideal["rate"]["h"]
            lines.append(f"{'':<14}ideal map, {rule} (k {ideal['k']:g}): rate_h "
                         f"{_fmt(r['mean'])}+-{_fmt(r['sd'], '.4f')} [{_fmt(r['min'])},"
                         f"{_fmt(r['max'])}]  rho(height) "
                         f"{_fmt_corr(ideal['rate_vs_object']['height'])}")
        if st.k_curve:
            pairs = ", ".join(f"{k:g}: {t:.1f}" for k, t in zip(st.k_curve["k"],
                                                               st.k_curve["top1"], strict=True))
            lines.append(f"{'':<14}k curve (top-1 %) {pairs}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        PROG,
        description="Does ARP adapt? Run a checkpoint over a split and measure, for every pooled "
        "stage, the rates against the object's size, crop precision, placement against centred "
        "and random boxes, k curves and the confidence contrast; print a table and, with --out, "
        "write the report as JSON.",
        epilog="What each number means: docs/adaptivity.md.")
    parser.add_argument("checkpoint", nargs="?", default=None,
                        help="a .safetensors checkpoint (default: the bundled classification "
                        "MSGN with ARP)")
    parser.add_argument("--split", default="test", choices=["val", "test"],
                        help="data split (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="analyse the first N images (default: the whole split)")
    parser.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    parser.add_argument("--tau", type=float, default=1.0,
                        help="confidence temperature of RP/ARP stages, beyond the paper "
                        "(default: %(default)s, the paper)")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N",
                        help="images per batch (default: %(default)s)")
    parser.add_argument("--n-random", type=int, default=3, metavar="N",
                        help="random same-size boxes per image, for the placement "
                        "(default: %(default)s)")
    parser.add_argument("--k-values", type=float, nargs="+", default=list(DEFAULT_K_VALUES),
                        metavar="K", help="k values of the k curve (default: "
                        f"{' '.join(f'{k:g}' for k in DEFAULT_K_VALUES)})")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of random boxes and bootstrap (default: %(default)s)")
    parser.add_argument("--n-boot", type=int, default=1000, metavar="N",
                        help="bootstrap resamples (default: %(default)s)")
    parser.add_argument("--faithfulness", action="store_true",
                        help="also run arpviz.faithfulness on the first Conv4 pooled stage")
    parser.add_argument("--ideal", action="store_true",
                        help="also measure the rates of the paper's ARP and of ARP-FG (beyond "
                        "the paper) with every channel of each pooled stage's input replaced "
                        "by the object's ground-truth mask (SynthBirds)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--out", default=None, metavar="FILE",
                        help="write the report as JSON here (default: only the table)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: analyse a checkpoint, print a table, write JSON."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    try:
        if args.out:
            check_output_file(args.out, "--out")
        check_device(args.device, "--device")
        check_count(args.n_boot, "--n-boot")
        if args.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {args.seed}")
        if args.checkpoint is None:
            args.checkpoint = str(default_checkpoint_path())
        report = analyse(args.checkpoint, args.split, limit=args.limit, tau=args.tau,
                         device=args.device, batch_size=args.batch_size, n_random=args.n_random,
                         k_values=args.k_values, seed=args.seed, n_boot=args.n_boot,
                         faithfulness=args.faithfulness, ideal=args.ideal,
                         show_progress=not args.no_progress)
    except (ValueError, TypeError, OSError, RuntimeError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    print(format_table(report))
    if args.out:
        out = Path(args.out)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(report.to_json() + "\n")
        except OSError as exc:
            print(f"{PROG}: error: cannot write --out {out}: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {out}")
    return 0

