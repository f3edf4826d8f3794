"""Self-contained checkpoints: atomic writes, data-only loading, and locating the checkpoint a user means.

A checkpoint is a .pt file nmt-train wrote, or a directory nmt-export wrote (safetensors shards): both load here."""

from __future__ import annotations

import logging
import pickle
import re
import warnings
import zipfile
from pathlib import Path

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nmt.atomic import DiskFullError, write_atomic
from nmt.config import model_config
from nmt.data import Tokenizer
from nmt.errors import UserError
from nmt.models import build_model

FORMAT = "nmt-checkpoint-v1"
EXPORT_INDEX = "model.safetensors.index.json"  # what makes a directory an export (nmt.training.export)
_TRAIN_STATE = ("optimizer", "scheduler", "progress", "rng")
_DAMAGED = "use the run's other checkpoint (best.pt or last.pt) or retrain"

log = logging.getLogger(__name__)


class CheckpointError(UserError):
    """A checkpoint that is missing, damaged, unsafe or incompatible."""


def save_checkpoint(path: Path, payload: dict) -> None:
    """Atomic: a crash or a full disk while saving leaves the previous checkpoint intact."""
    _write(path, lambda f: torch.save({"format": FORMAT, **payload}, f))


def copy_checkpoint(source: Path, target: Path) -> None:
    _write(target, Path(source).read_bytes())


def _write(path, content) -> None:
    try:
        write_atomic(path, content)
    except DiskFullError:
        raise CheckpointError(
            f"{path}: the disk is full, checkpoint not saved (the previous one is intact) — free some space or set "
            "paths.log_dir to a disk with room"
        ) from None


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load with weights_only=True: tensors and plain containers only, never code; an export directory is read
    with safetensors (no pickle at all) after its files' sha256 are checked, into the same layout (CPU tensors).

    Every failure is a one-line CheckpointError naming the file.
    """
    path = Path(path)
    if (path / EXPORT_INDEX).is_file():
        from nmt.training.export import read_export  # imported here: export.py builds on this module

        ckpt = read_export(path)
        _check_layout(path, ckpt)
        return ckpt
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file — pass ckpt=<run dir>/checkpoints/best.pt")
    _check_archive(path)
    try:
        with warnings.catch_warnings():
            # A crafted archive may use a pickle protocol torch warns about; it is refused below all the same.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused to load: it holds code or objects other than tensors and plain data "
            f"({_unpickler_reason(e)}); nothing in it was run — only load checkpoints written by nmt"
        ) from None
    except Exception as e:  # the archive's checksums hold, so whatever else fails means a file nmt did not write
        raise CheckpointError(f"{path}: unreadable checkpoint ({_reason(e)}) — {_DAMAGED}") from None
    _check_layout(path, ckpt)
    return ckpt


def _check_archive(path: Path) -> None:
    """Verify the zip archive torch.save writes, CRC-32s included: torch.load checks none, so flipped bits in a
    tensor would otherwise load as silently wrong weights."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except Exception:  # any way the archive cannot be read means a truncated or foreign file
        raise CheckpointError(
            f"{path}: truncated or corrupted checkpoint, or not one nmt wrote (no complete zip archive) — {_DAMAGED}"
        ) from None
    if damaged is not None:
        raise CheckpointError(f"{path}: corrupted checkpoint ({damaged} fails its checksum) — {_DAMAGED}")


def _unpickler_reason(error: Exception) -> str:
    """The weights-only unpickler's own complaint, without torch's advice to load the file unsafely."""
    found = re.search(r"WeightsUnpickler error:\s*(.+?)(?: was not an allowed| Please use|\n\n|$)", str(error), re.S)
    return " ".join(found.group(1).split())[:160] if found else "unsupported content"


def _reason(error: Exception) -> str:
    """The line of an error message that says what went wrong, kept short."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Error(s) in loading state_dict"):
        lines = lines[1:]  # the first line only names the class; the next says what does not fit
    return lines[0][:200] if lines else type(error).__name__


def _check_layout(path: Path, ckpt) -> None:
    """The entries the trainer and load_for_inference read, so that a malformed file fails here, naming itself."""
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an nmt checkpoint (no '{FORMAT}' marker) — pass a file nmt-train wrote")
    config = ckpt.get("config")
    bad = [key for key in ("model", "config", "tokenizer") if not isinstance(ckpt.get(key), dict)]
    if isinstance(config, dict):
        bad += [f"config.{key}" for key in ("model", "data") if not isinstance(config.get(key), dict)]
    state = ckpt.get("train_state")
    if state is not None and not (isinstance(state, dict) and set(_TRAIN_STATE) <= state.keys()):
        bad.append("train_state")
    if bad:
        raise CheckpointError(f"{path}: incomplete nmt checkpoint ({', '.join(bad)} missing or malformed) — {_DAMAGED}")
    target = _find_target(config)
    if target:
        raise CheckpointError(
            f"{path}: its stored config names a class to instantiate ({target}._target_) — nmt builds models from "
            "its own registry only; pass a checkpoint nmt-train wrote"
        )


def _find_target(config) -> str | None:
    """Where a Hydra `_target_` key sits in a stored config: nmt writes none, so any is foreign. Iterative, and
    each container visited once: a crafted pickle may nest deeply or hold a container inside itself."""
    pending, seen = [("config", config)], set()
    while pending:
        where, node = pending.pop()
        if id(node) in seen or not isinstance(node, (dict, list)):
            continue
        seen.add(id(node))
        if isinstance(node, dict) and "_target_" in node:
            return where
        items = node.items() if isinstance(node, dict) else enumerate(node)
        pending.extend((f"{where}.{key}", value) for key, value in items)
    return None


def resolve_checkpoint(spec, name: str = "last.pt") -> Path:
    """A checkpoint file, or a run directory (its checkpoints/<name>), or a checkpoints directory, or an export
    directory (nmt-export)."""
    path = Path(spec).expanduser()
    for candidate in (path, path / "checkpoints" / name, path / name):
        if candidate.is_file():
            return candidate
    if (path / EXPORT_INDEX).is_file():
        return path
    raise CheckpointError(
        f"{spec}: no checkpoint there (looked for the file, checkpoints/{name}, {name}, an nmt-export directory)"
    )


def newest_checkpoint(root, name: str = "best.pt") -> Path:
    """The most recently written <root>/**/checkpoints/<name>."""
    found = sorted(Path(root).glob(f"**/checkpoints/{name}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise CheckpointError(f"no checkpoints/{name} under {root} — train a model first (nmt-train) or pass ckpt=")
    return found[-1]


def newest_resumable(log_dir, model_name: str, data_name: str) -> Path:
    """trainer.resume=auto: the newest <log_dir>/**/checkpoints/last.pt (sweeps included) of a run with this
    model.name and data.name that loads and holds a training state; damaged ones are skipped with a warning."""
    found = []
    for path in Path(log_dir).expanduser().glob("**/checkpoints/last.pt"):
        try:
            found.append((path.stat().st_mtime, path))
        except OSError:
            continue  # deleted since the glob
    for _, path in sorted(found, reverse=True):
        if _experiment(path.parent.parent) not in (None, (model_name, data_name)):
            continue
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as e:
            log.warning("trainer.resume=auto: skipping %s", e)
            continue
        config = ckpt["config"]
        same = (config["model"].get("name"), config["data"].get("name")) == (model_name, data_name)
        if same and "train_state" in ckpt:
            return path
    raise CheckpointError(
        f"no resumable run of model={model_name} data={data_name} under {log_dir} (no complete checkpoints/last.pt)"
        " — start without trainer.resume"
    )


def _experiment(run_dir: Path) -> tuple[str, str] | None:
    """(model.name, data.name) from the run's .hydra/config.yaml, read without loading its checkpoint; None when
    it cannot tell (the checkpoint's own config decides)."""
    try:
        cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
        return str(cfg.model.name), str(cfg.data.name)
    except Exception:  # missing, unparsable or unresolvable: no answer from the file
        return None


def load_for_inference(path, device):
    """Rebuild model and tokenizer from a checkpoint file or an export directory, through nmt's own registry only.

    Returns (model in eval mode on `device`, tokenizer, the run's config as a plain dict).
    """
    ckpt = load_checkpoint(path)
    try:
        tokenizer = Tokenizer.from_state(ckpt["tokenizer"])
        cfg = model_config(ckpt["config"]["model"])
        model = build_model(
            cfg, tokenizer.src_vocab_size, tokenizer.tgt_vocab_size, tokenizer.specials.pad, tokenizer.shared_vocab
        )
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError, OmegaConfBaseException) as e:
        raise CheckpointError(
            f"{path}: its stored model config or vocabulary is unusable ({_reason(e)}) — {_DAMAGED}"
        ) from None
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, TypeError, AttributeError) as e:
        raise CheckpointError(
            f"{path}: its weights do not fit the {cfg.name} model and vocabulary it names ({_reason(e)}) — {_DAMAGED}"
        ) from None
    return model.to(device).eval(), tokenizer, ckpt["config"]
