"""Export directories: a checkpoint's weights as safetensors shards of a chosen maximum size, plus config.json and
an index that records each file's sha256; reading one back without pickle."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import shutil
from pathlib import Path

import safetensors.torch
import torch

from nmt.atomic import hidden_beside, write_atomic
from nmt.training.checkpoint import EXPORT_INDEX, FORMAT, CheckpointError, load_checkpoint

CONFIG = "config.json"
_CARRIED = ("step", "dev", "averaged")  # what best.pt and nmt-average record beside the weights
_METADATA = {"format": "pt"}  # what Hugging Face tools expect in a PyTorch safetensors file
# Upper bounds on a shard's header: the 8-byte length, braces, metadata and padding; then per tensor, its entry
# '"<name>":{"dtype":"F8_E4M3","shape":[<dims>],"data_offsets":[<20 digits>,<20 digits>]},' less name and dims.
_HEADER_BYTES = 64
_ENTRY_BYTES = 96
_REEXPORT = "re-download the export or write it again with nmt-export"


def aliases(state: dict) -> dict[str, str]:
    """{name: the first name} for the state-dict entries that are the very tensor of an earlier one (tied weights,
    e.g. the Transformer's shared embedding and output matrix)."""
    first, found = {}, {}
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tensor.shape, tensor.stride())
        if (key, tensor.dtype) in first:
            found[name] = first[key, tensor.dtype]
        else:
            first[key, tensor.dtype] = name
    return found


def tensors(path, ckpt: dict) -> dict:
    """The checkpoint's model state dict, refused in one line naming `path` if it holds anything but tensors."""
    odd = next((name for name, value in ckpt["model"].items() if not isinstance(value, torch.Tensor)), None)
    if odd is not None:
        raise CheckpointError(f"{path}: model entry {odd} is not a tensor — pass a checkpoint nmt-train wrote")
    return ckpt["model"]


def _shard_plan(state: dict, max_shard_bytes: int) -> list[list[str]]:
    """Tensor names per shard, in state-dict order, each shard's file within max_shard_bytes (header included); a
    tensor larger than that alone in its own shard."""
    shards, size = [[]], _HEADER_BYTES
    for name, tensor in state.items():
        need = _ENTRY_BYTES + len(json.dumps(name)) + len(str(list(tensor.shape))) + tensor.nbytes
        if shards[-1] and size + need > max_shard_bytes:
            shards.append([])
            size = _HEADER_BYTES
        shards[-1].append(name)
        size += need
    return shards


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def export_safetensors(ckpt_path, out_dir, max_shard_bytes: int, force: bool = False) -> list[Path]:
    """Write the checkpoint at `ckpt_path` (a .pt file or another export) to `out_dir`: the weights as
    model-0000i-of-0000N.safetensors shards of at most `max_shard_bytes` each (a single tensor larger than that gets
    a shard of its own, bigger than the limit), config.json (the run's config, the SentencePiece models base64
    encoded, the special ids, the FORMAT marker) and EXPORT_INDEX (tensor -> shard, tied names, each file's sha256).

    Tied weights are stored once and their other names recorded as aliases. The directory appears whole or not at
    all: the files are written to a temporary directory beside it, which is then renamed. A non-empty `out_dir` is
    refused unless `force` (and even then unless it is an export). Returns the shards' paths."""
    out_dir = Path(out_dir)
    if max_shard_bytes <= 0:
        raise CheckpointError(f"{out_dir}: the maximum shard size must be positive (got {max_shard_bytes} bytes)")
    _check_target(out_dir, force)
    ckpt = load_checkpoint(ckpt_path)
    state = tensors(ckpt_path, ckpt)
    tied = aliases(state)
    kept = {name: tensor.contiguous() for name, tensor in state.items() if name not in tied}
    plan = _shard_plan(kept, max_shard_bytes)
    tokenizer = ckpt["tokenizer"]
    config = {
        "format": FORMAT,
        "config": ckpt["config"],
        "tokenizer": {
            "joint": tokenizer["joint"],
            "src_model": base64.b64encode(tokenizer["src_model"]).decode("ascii"),
            # A joint tokenizer's target model is its source model: stored once.
            "tgt_model": None if tokenizer["joint"] else base64.b64encode(tokenizer["tgt_model"]).decode("ascii"),
        },
        **{key: ckpt[key] for key in ("specials", *_CARRIED) if key in ckpt},
    }
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = hidden_beside(out_dir, "tmp")
    staging.mkdir()  # honours the umask, unlike tempfile.mkdtemp: the export ends up as readable as a plain mkdir
    try:
        index = {
            "format": FORMAT,
            "metadata": {"total_size": sum(t.nbytes for t in kept.values())},
            "weight_map": {},
            "aliases": tied,
            "sha256": {},
        }
        config_bytes = (json.dumps(config, indent=1) + "\n").encode("utf-8")
        write_atomic(staging / CONFIG, config_bytes)
        index["sha256"][CONFIG] = _sha256(config_bytes)
        shards = [f"model-{i:05d}-of-{len(plan):05d}.safetensors" for i in range(1, len(plan) + 1)]
        for shard, names in zip(shards, plan, strict=True):
            data = safetensors.torch.save({name: kept[name] for name in names}, metadata=_METADATA)
            write_atomic(staging / shard, data)
            index["sha256"][shard] = _sha256(data)
            index["weight_map"].update(dict.fromkeys(names, shard))
        write_atomic(staging / EXPORT_INDEX, (json.dumps(index, indent=1) + "\n").encode("utf-8"))
        _put_in_place(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when renamed into place
    return [out_dir / shard for shard in shards]


def _check_target(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise CheckpointError(f"{out_dir}: a file, not a directory — choose another out=")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if not (out_dir / EXPORT_INDEX).is_file():
        raise CheckpointError(f"{out_dir}: holds files that are not an nmt export — choose another (empty) out=")
    if not force:
        raise CheckpointError(f"{out_dir}: holds an export already — choose another out= or pass force=true")


def _put_in_place(staging: Path, out_dir: Path) -> None:
    """Rename the finished export to out_dir; an existing one (force) is moved aside first, then deleted."""
    if out_dir.is_dir() and any(out_dir.iterdir()):
        aside = hidden_beside(out_dir, "old")
        os.replace(out_dir, aside)
        os.replace(staging, out_dir)
        shutil.rmtree(aside)
    else:
        os.replace(staging, out_dir)  # an empty out_dir is replaced as it stands


def read_export(path) -> dict:
    """An export directory as load_checkpoint returns a checkpoint (weights only, CPU tensors): each file is read
    once, its sha256 checked against the index before anything in it is parsed. Every failure is a one-line
    CheckpointError naming the file."""
    path = Path(path)
    file = path / EXPORT_INDEX
    index = _parse_json(file, _read(file))
    digests, weight_map, tied = index.get("sha256"), index.get("weight_map"), index.get("aliases")
    maps = (digests, weight_map, tied)
    if index.get("format") != FORMAT or not all(isinstance(m, dict) for m in maps) or not _all_str(maps):
        raise CheckpointError(f"{path / EXPORT_INDEX}: not an nmt export index (no '{FORMAT}' marker) — {_REEXPORT}")
    unlisted = sorted({*weight_map.values(), CONFIG} - digests.keys())
    unsafe = [name for name in digests if Path(name).name != name]  # a path elsewhere: ../../etc/passwd
    if unlisted or unsafe:
        raise CheckpointError(
            f"{path / EXPORT_INDEX}: lists {(unlisted or unsafe)[0]!r} without its sha256 or outside the export"
            f" — {_REEXPORT}"
        )
    config = _parse_json(path / CONFIG, _verified(path, CONFIG, digests[CONFIG]))
    state = {}
    for shard in dict.fromkeys(weight_map.values()):
        data = _verified(path, shard, digests[shard])
        try:
            loaded = safetensors.torch.load(data)
        except Exception:  # its sha256 holds, so the index lists a file nmt-export did not write
            raise CheckpointError(f"{path / shard}: not a safetensors file — {_REEXPORT}") from None
        expected = {name for name, where in weight_map.items() if where == shard}
        if loaded.keys() != expected:
            odd = sorted(loaded.keys() ^ expected)[0]
            raise CheckpointError(f"{path / shard}: holds other tensors than the index says ({odd}) — {_REEXPORT}")
        state.update(loaded)
    for name, target in tied.items():
        if target not in weight_map:
            raise CheckpointError(f"{path / EXPORT_INDEX}: {name} is tied to {target}, which no shard holds")
        state[name] = state[target]
    try:
        tokenizer = config["tokenizer"]
        src_model = base64.b64decode(tokenizer["src_model"], validate=True)
        tgt_model = src_model if tokenizer["joint"] else base64.b64decode(tokenizer["tgt_model"], validate=True)
        tokenizer = {"joint": tokenizer["joint"], "src_model": src_model, "tgt_model": tgt_model}
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise CheckpointError(f"{path / CONFIG}: its tokenizer entry is malformed — {_REEXPORT}") from None
    ckpt = {key: config[key] for key in ("format", "config", "specials", *_CARRIED) if key in config}
    return {**ckpt, "model": state, "tokenizer": tokenizer}


def _all_str(maps) -> bool:
    return all(isinstance(value, str) for m in maps for value in m.values())


def _read(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError:
        raise CheckpointError(f"{file}: missing from the export — copy every file {EXPORT_INDEX} lists") from None


def _parse_json(file: Path, data: bytes) -> dict:
    try:
        content = json.loads(data)
    except ValueError:
        content = None
    if not isinstance(content, dict):
        raise CheckpointError(f"{file}: not an nmt export file (no JSON object) — {_REEXPORT}")
    return content


def _verified(path: Path, name: str, digest: str) -> bytes:
    """The bytes of path/name once they match the sha256 the index records."""
    data = _read(path / name)
    if _sha256(data) != digest:
        raise CheckpointError(
            f"{path / name}: corrupted or altered (its sha256 differs from the one {EXPORT_INDEX} records) —"
            f" {_REEXPORT}"
        )
    return data
