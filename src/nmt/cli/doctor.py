"""nmt-doctor: build what nmt-train would build, run quick pre-flight checks, print pass/warn/fail with knobs."""

from __future__ import annotations

import random
import sys

import torch

from nmt.cli import compose_config, reports_errors
from nmt.cpu_kernels import use_cpu_kernels
from nmt.data import TokenBatchSampler, collate, prepare_data
from nmt.models import build_model, model_width
from nmt.training.device import resolve_device
from nmt.training.diagnostics import (
    Check,
    data_report,
    decoding_report,
    gradient_flow,
    initialisation,
    overfit_one_batch,
    precision_report,
)
from nmt.training.optim import lr_factor

REPORT_BATCHES = 20  # training batches scanned for all-padding rows
OVERFIT_SENTENCES = 8


def peak_lr(optim_cfg, model_dim: int) -> float:
    """The highest rate the configured schedule reaches: with noam, optim.lr is a scale, not a rate."""
    step = max(optim_cfg.warmup_steps - 1, 0)
    return optim_cfg.lr * lr_factor(step, optim_cfg.scheduler, optim_cfg.warmup_steps, step + 1, 0.0, model_dim)


def run_checks(cfg) -> list[Check]:
    """Build data and model as the trainer does (same seed, sampler and device) and run every check."""
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    device = resolve_device(cfg.trainer.device)
    data = prepare_data(cfg.data, log=lambda message: print(message, file=sys.stderr))
    tokenizer, train = data.tokenizer, data.splits["train"]
    pad = tokenizer.specials.pad
    sizes = (tokenizer.src_vocab_size, tokenizer.tgt_vocab_size)
    model = build_model(cfg.model, *sizes, pad, tokenizer.shared_vocab).to(device)
    use_cpu_kernels(model, cfg.kernels, device)
    sampler = TokenBatchSampler.for_pairs(
        train.src_lengths(),
        train.tgt_lengths(),
        cfg.trainer.max_tokens,
        max_sentences=cfg.trainer.max_sentences,
        seed=cfg.seed,
    )
    order = sampler.batches(0)
    batches = [collate(train, indices, tokenizer.specials) for indices in order[:REPORT_BATCHES]]
    first = batches[0].to(device)
    small = collate(train, order[0][:OVERFIT_SENTENCES], tokenizer.specials).to(device)
    lr = peak_lr(cfg.optim, model_width(cfg.model))
    return [
        data_report(data, batches),
        gradient_flow(model, first, pad),
        initialisation(model, first, pad),
        overfit_one_batch(model, small, pad, lr),
        decoding_report(model, data, cfg.trainer.search, device, max_tokens=cfg.trainer.max_tokens),
        precision_report(cfg.trainer.precision, device),
    ]


def format_table(checks: list[Check]) -> str:
    """One aligned row per check: name, status, detail, knob."""
    rows = [("check", "status", "detail", "try"), *((c.name, c.status, c.detail, c.knob) for c in checks)]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in rows
    )


@reports_errors("nmt-doctor")
def main(argv: list[str] | None = None) -> None:
    checks = run_checks(compose_config("train", sys.argv[1:] if argv is None else argv))
    print(format_table(checks))
    if any(c.status == "fail" for c in checks):
        sys.exit(1)


if __name__ == "__main__":
    main()
