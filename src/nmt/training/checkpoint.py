"""Self-contained checkpoints: atomic writes, data-only loading, and locating the checkpoint a user means."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from nmt.atomic import write_atomic
from nmt.config import model_config
from nmt.data import Tokenizer
from nmt.errors import UserError
from nmt.models import build_model

FORMAT = "nmt-checkpoint-v1"


class CheckpointError(UserError):
    """A checkpoint that is missing, damaged, unsafe or incompatible."""


def save_checkpoint(path: Path, payload: dict) -> None:
    """Atomic: a crash while saving leaves the previous checkpoint intact."""
    write_atomic(path, lambda f: torch.save({"format": FORMAT, **payload}, f))


def copy_checkpoint(source: Path, target: Path) -> None:
    write_atomic(target, Path(source).read_bytes())


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load with weights_only=True: tensors and plain containers only, never code.

    Every failure is a one-line CheckpointError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file — pass ckpt=<run dir>/checkpoints/best.pt")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e).splitlines()[0] if str(e) else "unsupported content"
        raise CheckpointError(
            f"{path}: refused to load: it holds objects other than tensors and plain data ({reason}) — "
            "only load checkpoints written by nmt"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(
            f"{path}: truncated or corrupted checkpoint ({type(e).__name__}) — use another checkpoint, e.g. last.pt"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an nmt checkpoint (no '{FORMAT}' marker) — pass a file nmt-train wrote")
    return ckpt


def resolve_checkpoint(spec, name: str = "last.pt") -> Path:
    """A checkpoint file, or a run directory (its checkpoints/<name>), or a checkpoints directory."""
    path = Path(spec).expanduser()
    for candidate in (path, path / "checkpoints" / name, path / name):
        if candidate.is_file():
            return candidate
    raise CheckpointError(f"{spec}: no checkpoint there (looked for the file, checkpoints/{name}, {name})")


def newest_checkpoint(root, name: str = "best.pt") -> Path:
    """The most recently written <root>/**/checkpoints/<name>."""
    found = sorted(Path(root).glob(f"**/checkpoints/{name}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise CheckpointError(f"no checkpoints/{name} under {root} — train a model first (nmt-train) or pass ckpt=")
    return found[-1]


def load_for_inference(path, device):
    """Rebuild model and tokenizer from a checkpoint, through nmt's own registry only.

    Returns (model in eval mode on `device`, tokenizer, the run's config as a plain dict).
    """
    ckpt = load_checkpoint(path)
    try:
        tokenizer = Tokenizer.from_state(ckpt["tokenizer"])
        model = build_model(
            model_config(ckpt["config"]["model"]),
            tokenizer.src_vocab_size,
            tokenizer.tgt_vocab_size,
            tokenizer.specials.pad,
            tokenizer.joint,
        )
        model.load_state_dict(ckpt["model"])
    except (KeyError, ValueError, RuntimeError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: does not fit the model or vocabulary it names ({reason})") from None
    return model.to(device).eval(), tokenizer, ckpt["config"]
