"""Binarized corpora on disk: their format, and reading one back as memory maps checked against its manifest.

A binarized corpus is the directory <cache_dir>/binarized-<key> that nmt.data.preprocess builds; the key hashes all
that its content depends on: the data settings, the path, size and modification time of every input file (corpora,
a given tokenizer model), the SentencePiece version and FORMAT. Per split it holds <split>.src.bin and .tgt.bin (the
kept pairs' int32 ids, packed) with <split>.src.idx and .tgt.idx (int64 offsets), <split>.texts ('source<TAB>target'
lines, the BLEU references) with <split>.texts.idx (byte offsets) and, for dialogue data, <split>.sessions.idx; then
the tokenizer model(s) and manifest.json: sizes, dtypes, every file's bytes and sha256, the tokenizer's fingerprint,
the stats, the summary lines, and a checksum of the manifest itself. A corpus that fails a check is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nmt.data.corpus import CorpusError, Example
from nmt.data.dataset import PreparedData, TokenizedCorpus
from nmt.data.tokenizer import Tokenizer

FORMAT = 1  # bump when the files or what goes into them change: older corpora then get other keys
MANIFEST = "manifest.json"
IDS, OFFSETS = np.dtype("<i4"), np.dtype("<i8")


class DamagedCorpus(Exception):
    """A binarized corpus that fails a check (the message says which); prepare_data rebuilds it."""


class TextPairs(Sequence):
    """A split's kept pairs, decoded on demand from its memory-mapped .texts file: the texts stay on disk."""

    def __init__(self, data: np.ndarray, offsets: np.ndarray):
        self._data = data  # (bytes,) uint8: 'source<TAB>target\n' lines
        self._offsets = offsets  # (n + 1,) int64 line starts

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = operator.index(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"pair {i} of {len(self)}")
        i %= len(self)
        line = self._data[self._offsets[i] : self._offsets[i + 1] - 1].tobytes().decode("utf-8")
        return Example(*line.split("\t"))

    def __eq__(self, other) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None


def manifest_checksum(manifest: dict) -> str:
    content = {key: value for key, value in manifest.items() if key != "checksum"}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def tokenizer_files(joint: bool) -> list[str]:
    return ["tokenizer.model"] if joint else ["tokenizer.src.model", "tokenizer.tgt.model"]


def _map(path: Path, dtype, count: int) -> np.ndarray:
    """(count,) read-only memory map of the file; an empty one, which mmap refuses, as an empty array."""
    if count == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(count,))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DamagedCorpus(f"no {MANIFEST} (an interrupted build?)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DamagedCorpus(f"{MANIFEST} is unreadable ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("checksum") != manifest_checksum(manifest):
        raise DamagedCorpus(f"{MANIFEST} does not match its checksum")
    if manifest.get("format") != FORMAT or manifest.get("key") != path.name:
        raise DamagedCorpus(f"{MANIFEST} is of format {manifest.get('format')}, key {manifest.get('key')}")
    return manifest


def _check_files(path: Path, manifest: dict, verify: bool) -> None:
    for name, record in manifest["files"].items():
        file = path / name
        size = file.stat().st_size if file.is_file() else None
        if size != record["bytes"]:
            raise DamagedCorpus(f"{name} holds {size} bytes, {MANIFEST} says {record['bytes']}")
        if verify and _sha256(file) != record["sha256"]:
            raise DamagedCorpus(f"{name}: its sha256 differs from {MANIFEST}'s")


def load_binarized(path: Path, verify: bool = False) -> tuple[PreparedData, list[str]]:
    """The PreparedData of the binarized corpus at `path`, and its summary lines. The train split's arrays are
    read-only memory maps and its texts a TextPairs; dev and test are read into memory.

    Checks the manifest's checksum, every file's size, each offset array's last value and the tokenizer's
    fingerprint, which reads the small files and a page of the large ones; verify=True also checks every file's
    sha256 (reads them all).
    Raises DamagedCorpus when a check fails.
    """
    manifest = _read_manifest(path)
    _check_files(path, manifest, verify)
    ids, offsets = np.dtype(manifest["dtypes"]["ids"]), np.dtype(manifest["dtypes"]["offsets"])
    joint = manifest["tokenizer"]["joint"]
    models = [(path / name).read_bytes() for name in tokenizer_files(joint)]
    names = (str(path / tokenizer_files(joint)[0]), str(path / tokenizer_files(joint)[-1]))
    try:
        target_ids = manifest["tokenizer"].get("target_ids")
        tokenizer = Tokenizer(models[0], None if joint else models[1], names=names, target_ids=target_ids)
    except CorpusError as e:
        raise DamagedCorpus(str(e)) from None
    if tokenizer.fingerprint != manifest["tokenizer"]["fingerprint"]:
        raise DamagedCorpus("the tokenizer model is not the one it was encoded with")
    splits, texts, sessions = {}, {}, {}
    for split, sizes in manifest["splits"].items():
        pairs = sizes["pairs"]
        arrays = {}
        for side in ("src", "tgt"):
            arrays[side] = _map(path / f"{split}.{side}.bin", ids, sizes[f"{side}_tokens"])
            arrays[f"{side}_offsets"] = _map(path / f"{split}.{side}.idx", offsets, pairs + 1)
        text_offsets = _map(path / f"{split}.texts.idx", offsets, pairs + 1)
        ends = [(arrays["src_offsets"], "src_tokens"), (arrays["tgt_offsets"], "tgt_tokens")]
        if any(array[-1] != sizes[size] for array, size in [*ends, (text_offsets, "text_bytes")]):
            raise DamagedCorpus(f"the offsets of split {split} do not end at its size")
        pair_texts = TextPairs(_map(path / f"{split}.texts", np.uint8, sizes["text_bytes"]), text_offsets)
        if "sessions" in sizes:
            arrays["sessions"] = _map(path / f"{split}.sessions.idx", offsets, sizes["sessions"] + 1)
        if split != "train":
            # Dev and test are small and used whole (references, samples, attention plots, which hand id views to
            # torch: it warns about read-only arrays): in memory. Only the train split stays on disk.
            arrays = {name: np.array(array) for name, array in arrays.items()}
            pair_texts = list(pair_texts)
        if "sessions" in arrays:
            sessions[split] = arrays.pop("sessions")
        splits[split], texts[split] = TokenizedCorpus(**arrays), pair_texts
    data = PreparedData(tokenizer, splits, texts, manifest["stats"], sessions or None)
    return data, manifest["summary"]
