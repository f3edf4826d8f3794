"""Optimizers and learning-rate schedules (linear warm-up, then constant, inverse-sqrt, linear or cosine; noam)."""

from __future__ import annotations

import math

import torch

from nmt.errors import UserError


def build_optimizer(cfg, params) -> torch.optim.Optimizer:
    """cfg: an OptimConfig."""
    params = [p for p in params if p.requires_grad]
    if cfg.name in ("adam", "adamw"):
        adam = torch.optim.Adam if cfg.name == "adam" else torch.optim.AdamW
        # fused: one kernel over all parameters instead of a Python loop of small ops per tensor.
        return adam(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay, fused=True)
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise UserError(f"optim.name={cfg.name} is unknown: choose adam, adamw or sgd")


def lr_factor(step: int, kind: str, warmup: int, total: int, min_ratio: float, model_dim: int = 1) -> float:
    """Multiplier of optim.lr after `step` optimizer steps.

    noam (Vaswani et al., 2017): model_dim ** -0.5 * min(n ** -0.5, n * warmup ** -1.5) with n = step + 1, so
    optim.lr is a scale (2.0 in the paper's recipe) rather than the peak rate. The others peak at optim.lr.
    """
    if kind == "noam":
        n = step + 1
        return model_dim**-0.5 * min(n**-0.5, n * max(warmup, 1) ** -1.5)
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    if kind == "inverse_sqrt":
        return max(min_ratio, math.sqrt(max(warmup, 1) / (step + 1)))
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if kind == "linear":
        return 1.0 - (1.0 - min_ratio) * progress
    if kind == "cosine":
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise UserError(f"optim.scheduler={kind} is unknown: choose constant, inverse_sqrt, linear, cosine or noam")


def build_scheduler(cfg, optimizer, total_steps: int, model_dim: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule; its state (the step count) is saved with the optimizer's in checkpoints.

    model_dim: the model's width (d_model or hidden_size), which only noam uses.
    """
    min_ratio = cfg.min_lr / cfg.lr if cfg.lr > 0 else 0.0

    def factor(step: int) -> float:
        return lr_factor(step, cfg.scheduler, cfg.warmup_steps, total_steps, min_ratio, model_dim)

    factor(cfg.warmup_steps)  # reject an unknown kind now, not at the first step
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
