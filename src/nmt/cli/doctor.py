"""nmt-doctor: build what nmt-train would build (or load a trained checkpoint: ckpt=), run quick checks, print
pass/warn/fail with the knobs to try."""

from __future__ import annotations

import random
import sys
import textwrap

import torch
from omegaconf import OmegaConf

from nmt.cli import command_line, compose_config, reports_errors
from nmt.cpu_kernels import use_cpu_kernels
from nmt.data import TokenBatchSampler, collate, prepare_data
from nmt.models import build_model, model_width
from nmt.training.checkpoint import load_checkpoint, resolve_checkpoint
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
from nmt.training.run_state import check_same_setup, load_weights

REPORT_BATCHES = 20  # training batches scanned for all-padding rows
OVERFIT_SENTENCES = 8
TABLE_WIDTH = 100  # columns, so that the table fits a terminal


def peak_lr(optim_cfg, model_dim: int) -> float:
    """The highest rate the configured schedule reaches: with noam, optim.lr is a scale, not a rate."""
    step = max(optim_cfg.warmup_steps - 1, 0)
    return optim_cfg.lr * lr_factor(step, optim_cfg.scheduler, optim_cfg.warmup_steps, step + 1, 0.0, model_dim)


def checkpoint_config(spec: str, overrides: list[str]):
    """The train config a checkpoint (file or run directory: its best.pt) was trained with, then `overrides`."""
    ckpt = load_checkpoint(resolve_checkpoint(spec, "best.pt"))
    run_cfg = ckpt["config"]
    cfg = compose_config("train", [f"model={run_cfg['model']['name']}"])
    return OmegaConf.merge(cfg, run_cfg, OmegaConf.from_dotlist(overrides)), ckpt


def run_checks(cfg, ckpt: dict | None = None, ckpt_name: str = "") -> list[Check]:
    """Build data and model as the trainer does (same seed, sampler and device) and run every check: on the
    model at its initialisation, or with the weights of `ckpt` (a loaded checkpoint named ckpt_name)."""
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    device = resolve_device(cfg.trainer.device)
    data = prepare_data(cfg.data, log=lambda message: print(message, file=sys.stderr))
    tokenizer, train = data.tokenizer, data.splits["train"]
    pad = tokenizer.specials.pad
    sizes = (tokenizer.src_vocab_size, tokenizer.tgt_vocab_size)
    model = build_model(cfg.model, *sizes, pad, tokenizer.shared_vocab)
    if ckpt is not None:
        check_same_setup(ckpt_name, ckpt, cfg, tokenizer, resuming=False)
        load_weights(ckpt_name, model, ckpt)
    model = model.to(device)
    use_cpu_kernels(model, cfg.kernels, device)
    sampler = TokenBatchSampler.for_pairs(
        train.src_lengths(),
        train.tgt_lengths(),
        cfg.trainer.max_tokens,
        max_sentences=cfg.trainer.max_sentences,
        order=cfg.data.batch_order,
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
        initialisation(model, first, pad, trained=ckpt is not None),
        overfit_one_batch(model, small, pad, lr),
        decoding_report(model, data, cfg.trainer.search, device, max_tokens=cfg.trainer.max_tokens),
        precision_report(cfg.trainer.precision, device),
    ]


def format_table(checks: list[Check], width: int = TABLE_WIDTH) -> str:
    """One row per check: name, status, then its detail wrapped to `width` columns and the knob to try."""
    name_width = max(len(c.name) for c in checks)
    indent = " " * (name_width + 10)
    lines = [f"{'check'.ljust(name_width)}  status  detail / what to try"]
    for c in checks:
        lines += textwrap.wrap(
            c.detail, width, initial_indent=f"{c.name.ljust(name_width)}  {c.status.ljust(8)}", subsequent_indent=indent
        )
        if c.knob != "-":
            lines += textwrap.wrap(f"try: {c.knob}", width, initial_indent=indent, subsequent_indent=indent + "     ")
    return "\n".join(lines)


@reports_errors("nmt-doctor")
def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    specs = [a.split("=", 1)[1] for a in argv if a.startswith("ckpt=")]
    usage = "[ckpt=<run or checkpoint>] [nmt-train's key=value ...]"
    overrides = command_line("nmt-doctor", __doc__, [a for a in argv if not a.startswith("ckpt=")], "train", usage)
    if specs:
        cfg, ckpt = checkpoint_config(specs[-1], overrides)
        checks = run_checks(cfg, ckpt, specs[-1])
    else:
        checks = run_checks(compose_config("train", overrides))
    print(format_table(checks))
    if any(c.status == "fail" for c in checks):
        sys.exit(1)


if __name__ == "__main__":
    main()
