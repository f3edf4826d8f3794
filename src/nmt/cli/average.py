"""nmt-average: average the weights of named checkpoints, or of the k newest of a run, into one checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

from nmt.cli import command_line, compose_config, reports_errors
from nmt.errors import UserError
from nmt.training.average import average_checkpoints, newest_checkpoints
from nmt.training.checkpoint import resolve_checkpoint, save_checkpoint


def average(cfg) -> Path:
    """Average as an AverageConfig says; returns the checkpoint written."""
    out = Path(cfg.out).expanduser()
    if bool(cfg.inputs) == bool(cfg.ckpt):
        raise UserError("name the checkpoints either with inputs=[a.pt,b.pt] or with ckpt=<run dir> [last=<k>]")
    if cfg.inputs and cfg.last is not None:
        raise UserError(f"last={cfg.last} picks from ckpt=<run dir>; with inputs=[...] every file named is averaged")
    if cfg.inputs:
        paths = [resolve_checkpoint(spec, "best.pt") for spec in cfg.inputs]
    else:
        # out excluded: averaging again into the same file must not count the previous average.
        paths = newest_checkpoints(cfg.ckpt, cfg.last, cfg.pattern, exclude=[out])
    if out.exists() and not cfg.force:
        raise UserError(f"{out}: exists — choose another out= or pass force=true to replace it")
    payload = average_checkpoints(paths)
    save_checkpoint(out, payload)
    print(f"nmt-average: averaged {len(paths)} checkpoints ({', '.join(map(str, paths))}) into {out}", file=sys.stderr)
    return out


@reports_errors("nmt-average")
def main(argv: list[str] | None = None) -> None:
    average(
        compose_config(
            "average", command_line("nmt-average", __doc__, sys.argv[1:] if argv is None else argv, "average")
        )
    )


if __name__ == "__main__":
    main()
