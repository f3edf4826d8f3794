"""nmt-study: compare training runs (a sweep's or any others) in a table and plots of dev BLEU, loss and any scalar."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nmt.cli import reports_errors
from nmt.study import collect, write_study


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nmt-study",
        description="Compare training runs: one row per run (the settings that differ, dev/test BLEU and chrF, steps,\n"
        "time, speed, size) in table.md and table.csv, and dev BLEU and loss curves by step and by time as PNGs.",
        epilog="example:\n  nmt-train -m optim.lr=1e-3,5e-4 trainer.max_minutes=5\n  nmt-study multirun/<date>/<time>",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keeps the example's lines
    )
    parser.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="a run directory, or a directory of runs at any depth"
    )
    parser.add_argument(
        "--out", type=Path, help="where to write (default: PATH/study for one PATH, else study/ beside the first)"
    )
    parser.add_argument("--name", help="a title for the table and the plots")
    parser.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="TAG",
        help="also a column (train/*: the median, else the last value) and a plot by step of this TensorBoard"
        " scalar, e.g. dev/no_eos_rate or train/padding_share; repeat for more",
    )
    parser.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="TAG",
        help="also write each run's last TensorBoard image of this tag, e.g. attention/0 (a dev sentence's attention"
        " heatmap), as <TAG>-<run>.png",
    )
    return parser.parse_args(argv)


@reports_errors("nmt-study")
def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    study = collect(args.paths, args.tag)
    for warning in study.warnings:
        print(f"nmt-study: warning: {warning}", file=sys.stderr)
    out = args.out or (args.paths[0] / "study" if len(args.paths) == 1 else args.paths[0].parent / "study")
    files, table = write_study(study, out, args.name, args.image)
    print(f"nmt-study: {len(study.rows)} runs; wrote {', '.join(f.name for f in files)} to {out}")
    print(table, end="")


if __name__ == "__main__":
    main()
