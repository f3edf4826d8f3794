"""A training run's state beyond its weights (progress, optimizer, schedule, RNG) and restoring it from a checkpoint."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf

from nmt.config import flatten
from nmt.training.checkpoint import CheckpointError, newest_resumable, resolve_checkpoint

# Where a run lives and which checkpoint it resumes change with every resume without changing what is trained.
_NOT_SETTINGS = ("paths.", "data.cache_dir", "trainer.resume")


@dataclass
class Progress:
    """Where training stands; saved in last.pt so that a resumed run continues exactly here."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of `epoch` already trained on
    best_bleu: float = -1.0
    bad_evals: int = 0  # evaluations since dev BLEU last improved
    last_eval_step: int = -1
    skipped_steps: int = 0  # steps whose loss or gradient was non-finite
    train_seconds: float = 0.0  # wall time spent in the training loop so far (trainer.max_minutes counts it)


def train_state(optimizer, scheduler, progress: Progress) -> dict:
    """The "train_state" entry of last.pt."""
    rng = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "progress": asdict(progress),
        "rng": rng,
    }


def changed_settings(saved: dict, cfg) -> dict[str, tuple]:
    """{dotted key: (value in the checkpoint's config `saved`, value now)} for each setting that differs."""
    theirs, ours = flatten(saved), flatten(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    keys = sorted(
        (theirs.keys() | ours.keys()) - {k for k in theirs.keys() | ours.keys() if k.startswith(_NOT_SETTINGS)}
    )
    return {k: (theirs.get(k), ours.get(k)) for k in keys if theirs.get(k) != ours.get(k)}


def describe_changes(changes: dict[str, tuple]) -> str:
    """'key: old -> new' for each change, comma-separated."""
    return ", ".join(f"{key}: {old} -> {new}" for key, (old, new) in changes.items())


def check_same_setup(path, ckpt: dict, cfg, tokenizer, resuming: bool) -> None:
    """Refuse a checkpoint whose vocabulary (or, when resuming, model config) differs from this run's."""
    if resuming:
        model_changes = {k: v for k, v in changed_settings(ckpt["config"], cfg).items() if k.startswith("model.")}
        if model_changes:
            raise CheckpointError(
                f"{path}: trained with another model config ({describe_changes(model_changes)}: checkpoint -> this"
                " run) — resume with the same model settings"
            )
    if ckpt["tokenizer"] != tokenizer.state():
        raise CheckpointError(f"{path}: its vocabulary differs from this data config's — use the same data")


def load_weights(path, model, ckpt: dict) -> None:
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        lines = str(e).strip().splitlines()
        first = lines[1].strip() if len(lines) > 1 else lines[0]
        raise CheckpointError(
            f"{path}: its weights do not fit this model ({first}) — use the same model=... sizes"
        ) from None


def restore_train_state(path, ckpt: dict, optimizer, scheduler, fresh_optimizer: bool = False) -> Progress:
    """Put the optimizer's state, the schedule's position and the RNGs back as last.pt recorded them; returns its
    Progress. The optimizer's and schedule's settings stay this run's (optim.lr, betas, weight decay, ...: the
    same as the checkpoint's unless changed on resuming); `fresh_optimizer` (another optim.name) keeps no state."""
    if "train_state" not in ckpt:
        raise CheckpointError(f"{path}: holds weights only, no training state — resume from last.pt")
    state = ckpt["train_state"]
    settings = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    if not fresh_optimizer:
        try:
            optimizer.load_state_dict(state["optimizer"])
        except ValueError:
            raise CheckpointError(
                f"{path}: its optimizer state has other parameter groups — resume with the same optim.param_groups"
            ) from None
        for group, own in zip(optimizer.param_groups, settings, strict=True):
            group.update(own)
    base_lrs = list(scheduler.base_lrs)
    scheduler.load_state_dict(state["scheduler"])
    scheduler.base_lrs = base_lrs
    for group, base, factor in zip(optimizer.param_groups, base_lrs, scheduler.lr_lambdas, strict=True):
        group["lr"] = base * factor(scheduler.last_epoch)  # what the schedule gives at this step with these lrs
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
    try:
        progress = Progress(**state["progress"])
    except TypeError:
        raise CheckpointError(f"{path}: written by another nmt version (its progress record differs)") from None
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return progress


def resume_checkpoint(cfg) -> Path:
    """The last.pt that trainer.resume names: a run directory or a checkpoint, or auto: the newest complete one
    of the same experiment (model and data) under paths.log_dir."""
    if cfg.trainer.resume == "auto":
        return newest_resumable(cfg.paths.log_dir, cfg.model.name, cfg.data.name)
    return resolve_checkpoint(cfg.trainer.resume, "last.pt")
