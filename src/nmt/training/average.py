"""Checkpoint averaging: the elementwise mean of the weights of several checkpoints of one model, and which
checkpoints of a run count as its last k."""

from __future__ import annotations

from pathlib import Path

import torch

from nmt.training.checkpoint import CheckpointError, load_checkpoint
from nmt.training.export import aliases, tensors

_SAME_RUN = "average checkpoints of one model and vocabulary"


def newest_checkpoints(spec, last: int | None = None, pattern: str = "step-*.pt", exclude=()) -> list[Path]:
    """The `last` (None: all) newest files matching `pattern` in a run's checkpoints/ (or in the directory `spec`),
    newest first by modification time, the order the trainer wrote them; files in `exclude` do not count.

    The trainer writes step-<N>.pt at its last trainer.keep_checkpoints evaluations."""
    path = Path(spec).expanduser()
    directory = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    if not directory.is_dir():
        raise CheckpointError(f"{spec}: not a directory — pass ckpt=<run dir>, or name files with inputs=[a.pt,b.pt]")
    skip = {Path(p).resolve() for p in exclude}
    found = [p for p in directory.glob(pattern) if p.is_file() and p.resolve() not in skip]
    found.sort(key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
    if not found:
        raise CheckpointError(
            f"{directory}: no checkpoint matches {pattern} — train with trainer.keep_checkpoints=k, or pass another"
            " pattern= or inputs=[a.pt,b.pt]"
        )
    if last is not None and not 1 <= last <= len(found):
        raise CheckpointError(
            f"{directory}: last={last}, but {len(found)} checkpoints match {pattern}"
            f" ({', '.join(p.name for p in found)}) — pass last=1 to last={len(found)}"
        )
    return found[:last]


def average_checkpoints(paths) -> dict:
    """The mean of the checkpoints' weights, as a payload for save_checkpoint: weights only (no training state),
    the first checkpoint's config, tokenizer and special ids, and the averaged files under "averaged".

    Floating-point tensors are summed in float64, divided, and cast back to their dtype; other tensors (integer
    buffers, e.g. counters, which have no meaningful mean) are taken from the first checkpoint. Tied weights stay
    one tensor. Checkpoints whose model config, tokenizer, special ids or parameter names, shapes and dtypes differ
    from the first's are refused. Holds the first checkpoint, one other and the float64 sums in memory."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise CheckpointError("no checkpoints to average — name files with inputs=[a.pt,b.pt] or ckpt=<run> last=<k>")
    first = load_checkpoint(paths[0])
    reference = tensors(paths[0], first)
    tied = aliases(reference)
    # copy=True: a float64 tensor would otherwise be its own sum, and the first checkpoint's weights summed into.
    sums = {
        name: t.to(torch.float64, copy=True)
        for name, t in reference.items()
        if t.is_floating_point() and name not in tied
    }
    for path in paths[1:]:
        ckpt = load_checkpoint(path)
        _check_compatible(path, ckpt, paths[0], first)
        for name, total in sums.items():
            total.add_(ckpt["model"][name])
    model = {}
    for name, tensor in reference.items():
        if name in tied:
            model[name] = model[tied[name]]
        elif name in sums:
            model[name] = (sums[name] / len(paths)).to(tensor.dtype)
        else:
            model[name] = tensor
    return {
        "model": model,
        "config": first["config"],
        "tokenizer": first["tokenizer"],
        "specials": first.get("specials"),
        "averaged": [str(p) for p in paths],
    }


def _check_compatible(path: Path, ckpt: dict, first_path: Path, first: dict) -> None:
    """Refuse, in one line naming `path`, a checkpoint that is not the same model as the first."""
    if ckpt["config"]["model"] != first["config"]["model"]:
        ours, theirs = ckpt["config"]["model"], first["config"]["model"]
        keys = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
        raise CheckpointError(f"{path}: model config differs from {first_path}'s (model.{keys[0]}) — {_SAME_RUN}")
    if ckpt["tokenizer"] != first["tokenizer"] or ckpt.get("specials") != first.get("specials"):
        raise CheckpointError(f"{path}: its vocabulary differs from {first_path}'s — {_SAME_RUN}")
    state, reference = tensors(path, ckpt), first["model"]
    for name in sorted(state.keys() ^ reference.keys()):
        where = "has no" if name in reference else "has an extra"
        raise CheckpointError(f"{path}: {where} tensor {name} (compared with {first_path}) — {_SAME_RUN}")
    for name, tensor in reference.items():
        other = state[name]
        if (other.shape, other.dtype) != (tensor.shape, tensor.dtype):
            raise CheckpointError(
                f"{path}: tensor {name} is {tuple(other.shape)} {other.dtype}, {tuple(tensor.shape)} {tensor.dtype}"
                f" in {first_path} — {_SAME_RUN}"
            )
