"""nmt-preprocess: build (or check) the binarized corpus that nmt-train with the same overrides trains on."""

from __future__ import annotations

import sys
import time

from nmt.cli import command_line, compose_config, reports_errors
from nmt.data import binarized_dir, prepare_data
from nmt.errors import UserError


def _log(message: str) -> None:
    print(f"nmt-preprocess: {message}", file=sys.stderr)


def preprocess(cfg):
    """Build the binarized corpus of cfg.data unless a sound one exists; print its directory; return it."""
    if cfg.workers is not None and cfg.workers < 1:
        raise UserError(f"workers={cfg.workers}: must be at least 1 — or null for min(4, CPU count)")
    started = time.perf_counter()
    data = prepare_data(cfg.data, log=_log, workers=cfg.workers, verify=cfg.verify)
    pairs = ", ".join(f"{name} {len(corpus)}" for name, corpus in data.splits.items())
    _log(f"ready in {time.perf_counter() - started:.1f} s: {pairs} pairs")
    path = binarized_dir(cfg.data)
    print(path)
    return path


@reports_errors("nmt-preprocess")
def main(argv: list[str] | None = None) -> None:
    preprocess(
        compose_config(
            "preprocess", command_line("nmt-preprocess", __doc__, sys.argv[1:] if argv is None else argv, "preprocess")
        )
    )


if __name__ == "__main__":
    main()
