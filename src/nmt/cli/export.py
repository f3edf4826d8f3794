"""nmt-export: a checkpoint as safetensors shards of a chosen maximum size, plus config and tokenizer, in a
directory that nmt-eval and nmt-translate take as ckpt=."""

from __future__ import annotations

import sys
from pathlib import Path

from nmt.cli import command_line, compose_config, reports_errors
from nmt.errors import UserError
from nmt.training.checkpoint import resolve_checkpoint
from nmt.training.export import export_safetensors

MB = 1_000_000  # decimal: an upload limit in MB is then kept whether it means 10^6 or 2^20 bytes


def export(cfg) -> list[Path]:
    """Export as an ExportConfig says; returns the shards written."""
    if cfg.max_shard_mb <= 0:
        raise UserError(f"max_shard_mb={cfg.max_shard_mb}: must be positive, e.g. max_shard_mb=1000")
    path = resolve_checkpoint(cfg.ckpt, "best.pt")
    limit = int(cfg.max_shard_mb * MB)
    shards = export_safetensors(path, Path(cfg.out).expanduser(), limit, force=cfg.force)
    for shard in shards:
        if shard.stat().st_size > limit:
            print(f"nmt-export: {shard} is over the limit: it holds one tensor larger than that", file=sys.stderr)
    print(
        f"nmt-export: wrote {path} as {len(shards)} shards (max_shard_mb={cfg.max_shard_mb:g}) to {cfg.out}"
        f" — load it with nmt-eval ckpt={cfg.out} or nmt-translate ckpt={cfg.out}",
        file=sys.stderr,
    )
    return shards


@reports_errors("nmt-export")
def main(argv: list[str] | None = None) -> None:
    export(
        compose_config("export", command_line("nmt-export", __doc__, sys.argv[1:] if argv is None else argv, "export"))
    )


if __name__ == "__main__":
    main()
