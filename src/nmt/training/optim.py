"""Optimizers, with per-module lr multipliers or freezing (optim.param_groups), and their lr schedules."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from nmt.errors import UserError

OTHER = "(other)"


def _matches(pattern: str, name: str) -> bool:
    """The parameter itself, a module holding it, or a glob (fnmatch) over its full name."""
    return name == pattern or name.startswith(pattern + ".") or fnmatch.fnmatchcase(name, pattern)


def _assign(model: nn.Module, param_groups) -> dict[str, tuple[Any, list[nn.Parameter]]]:
    """pattern -> (its value, the parameters it takes first), in config order; (other) -> (1.0, the rest)."""
    groups = {}
    for pattern, value in (param_groups or {}).items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if value != "frozen" and not (number and 0 <= value < math.inf):
            raise UserError(
                f"optim.param_groups[{pattern!r}]={value!r} is invalid: give an lr multiplier (a number >= 0) "
                "or 'frozen'"
            )
        groups[str(pattern)] = (value, [])
    groups[OTHER] = (1.0, [])
    matched = set()
    for name, param in model.named_parameters():
        hits = [p for p in groups if p != OTHER and _matches(p, name)]
        matched.update(hits)
        groups[hits[0] if hits else OTHER][1].append(param)
    for pattern, (_, params) in groups.items():
        if pattern != OTHER and pattern not in matched:
            top = ", ".join(name for name, _ in model.named_children())
            raise UserError(
                f"optim.param_groups[{pattern!r}] matches no parameter: name a module or parameter "
                f"(top-level modules: {top}) or a glob such as 'encoder.*'"
            )
        if pattern != OTHER and not params:
            raise UserError(
                f"optim.param_groups[{pattern!r}] gets no parameter: earlier patterns match all of its "
                "(first match wins) — move it before them or remove it"
            )
    return groups


def apply_param_groups(model: nn.Module, param_groups) -> list[dict]:
    """Freeze (requires_grad=False) what optim.param_groups maps to "frozen"; return the optimizer's param groups.

    One group per distinct lr multiplier, as {"params": [...], "lr_scale": multiplier}; frozen parameters are in
    none, so that weight decay cannot move them either.
    """
    frozen, by_scale = [], {}
    for value, params in _assign(model, param_groups).values():
        if value == "frozen":
            frozen += params
        else:
            by_scale.setdefault(float(value), []).extend(p for p in params if p.requires_grad)
    groups = [{"params": params, "lr_scale": scale} for scale, params in by_scale.items() if params]
    if not groups:
        raise UserError("optim.param_groups freezes every parameter: nothing left to train — remove a 'frozen' entry")
    for param in frozen:
        param.requires_grad_(False)
    return groups


def build_optimizer(cfg, model: nn.Module) -> torch.optim.Optimizer:
    """cfg: an OptimConfig. Each group of cfg.param_groups trains at cfg.lr * its multiplier."""
    if cfg.name not in ("adam", "adamw", "sgd"):
        raise UserError(f"optim.name={cfg.name} is unknown: choose adam, adamw or sgd")
    groups = [{**group, "lr": cfg.lr * group["lr_scale"]} for group in apply_param_groups(model, cfg.param_groups)]
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    adam = torch.optim.Adam if cfg.name == "adam" else torch.optim.AdamW
    # fused: one kernel over all parameters instead of a Python loop of small ops per tensor.
    return adam(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay, fused=True)


def describe_param_groups(model: nn.Module, cfg) -> list[str]:
    """Lines to log at the start of training: per pattern of cfg.param_groups, its lr or "frozen", with counts."""
    assigned = _assign(model, cfg.param_groups)
    lines, scales, trainable, total = [], set(), 0, 0
    for pattern, (value, params) in assigned.items():
        label = pattern if len(assigned) > 1 else "(all)"
        numel = sum(p.numel() for p in params)
        total += numel
        if value == "frozen":
            lines.append(f"  {label}: frozen, {numel:,} parameters")
        elif params:
            count = sum(p.numel() for p in params if p.requires_grad)  # the model may have frozen some itself
            trainable += count
            scales.update([float(value)] if count else [])
            lines.append(f"  {label}: lr {cfg.lr * value:.2e} (x{float(value)}), {count:,} parameters")
    groups = f"{len(scales)} group" + ("s" if len(scales) != 1 else "")
    return [f"trainable: {trainable:,} parameters in {groups}; frozen: {total - trainable:,}", *lines]


def clip_gradients(params: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Scale the gradients down to a global norm of max_norm where it is above; their norm before, a 0-dim tensor.

    What clip_grad_norm_ does, except that it multiplies every gradient by its coefficient even when that is
    clamped to 1, ~3% of a training step on a CPU. On a CPU reading the norm to skip that costs nothing; on an
    accelerator it would wait for the device, so there the product stays.
    """
    norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    if norm.device.type != "cpu" or max_norm < norm + 1e-6:  # clip_grad_norm_'s coefficient max_norm / (norm + 1e-6)
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
    return norm


def lr_factor(
    step: int, kind: str, warmup: int, total: int, min_ratio: float, model_dim: int = 1, spent: float = 0.0
) -> float:
    """Multiplier of optim.lr after `step` optimizer steps.

    linear and cosine decay over `total` steps or, where it comes first, a time budget: `spent` is the share of
    it used so far (trainer.max_minutes), so a slow machine still ends its run at the schedule's end.

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
    progress = min(1.0, max(spent, (step - warmup) / max(1, total - warmup)))
    if kind == "linear":
        return 1.0 - (1.0 - min_ratio) * progress
    if kind == "cosine":
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise UserError(f"optim.scheduler={kind} is unknown: choose constant, inverse_sqrt, linear, cosine or noam")


def build_scheduler(
    cfg, optimizer, total_steps: int, model_dim: int, budget_spent: Callable[[], float] = lambda: 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule; its state (the step count) is saved with the optimizer's in checkpoints.

    model_dim: the model's width (d_model or hidden_size), which only noam uses. budget_spent: the share of the
    run's time budget used so far (the same on every rank), which ends linear and cosine decay early.
    """
    min_ratio = cfg.min_lr / cfg.lr if cfg.lr > 0 else 0.0

    def factor(step: int) -> float:
        return lr_factor(step, cfg.scheduler, cfg.warmup_steps, total_steps, min_ratio, model_dim, budget_spent())

    factor(cfg.warmup_steps)  # reject an unknown kind now, not at the first step
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
