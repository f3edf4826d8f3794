"""Preprocessing: prepare_data builds the binarized corpus (nmt.data.binarized) of a data config once, tokenizing
with worker processes, and memory-maps it in every later run, so that training starts in seconds and holds no
corpus in memory."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import multiprocessing
import os
import random
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import sentencepiece as spm
from omegaconf import OmegaConf

from nmt.atomic import DiskFullError, hidden_beside
from nmt.config import DataConfig
from nmt.data.binarized import (
    FORMAT,
    IDS,
    MANIFEST,
    OFFSETS,
    DamagedCorpus,
    load_binarized,
    manifest_checksum,
    tokenizer_files,
)
from nmt.data.corpus import CorpusError, Example, filter_pairs
from nmt.data.dataset import PreparedData, TokenizedCorpus, dialogue_pairs, pack, read_splits
from nmt.data.tokenizer import Tokenizer, build_tokenizer

CHUNK_PAIRS = 5000  # pairs per task of a tokenizing worker
_SPLITS = ("train", "dev", "test")
_NOT_CONTENT = ("name", "src_lang", "tgt_lang", "cache_dir")  # data settings that change no byte of the corpus
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


# --- the key -------------------------------------------------------------------------------------------------------


def _settings(cfg: DataConfig) -> dict:
    if OmegaConf.is_config(cfg):
        settings = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    else:
        settings = dataclasses.asdict(cfg)
    return {key: value for key, value in settings.items() if key not in _NOT_CONTENT}


def _input_files(settings: dict) -> list[str]:
    """The paths of the corpus files and of a given tokenizer model; a malformed spec is read_splits' to refuse."""
    paths = []
    for spec in [*(settings.get(split) for split in _SPLITS), settings["tokenizer"].get("model")]:
        paths += [p for p in (spec if isinstance(spec, list) else [spec]) if isinstance(p, str)]
    return paths


def _file_state(path: str) -> list:
    absolute = os.path.abspath(path)
    try:
        stat = os.stat(absolute)
    except OSError:
        return [absolute, None, None]  # building reports the missing file
    return [absolute, stat.st_size, stat.st_mtime_ns]


def binarized_dir(cfg: DataConfig) -> Path:
    """Where the binarized corpus of `cfg` lives; finding it costs one stat() per input file, no reading.

    A file rewritten with the same size within its modification-time granularity would go unnoticed: delete the
    directory (or touch the file) then.
    """
    settings = _settings(cfg)
    state = {
        "format": FORMAT,
        "sentencepiece": spm.__version__,
        "settings": settings,
        "inputs": [_file_state(p) for p in _input_files(settings)],
    }
    key = hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()[:20]
    return Path(cfg.cache_dir) / f"binarized-{key}"


# --- tokenizing with worker processes ------------------------------------------------------------------------------

_worker_tokenizer: Tokenizer | None = None


def _start_worker(state: dict) -> None:
    global _worker_tokenizer
    _worker_tokenizer = Tokenizer.from_state(state)


def _encode(tokenizer: Tokenizer, chunk: tuple[list[str], list[str]]) -> TokenizedCorpus:
    sources, targets = chunk
    return TokenizedCorpus(*pack(tokenizer.encode_src(sources)), *pack(tokenizer.encode_tgt(targets)))


def _encode_in_worker(chunk: tuple[list[str], list[str]]) -> TokenizedCorpus:
    return _encode(_worker_tokenizer, chunk)


def encode_chunks(
    tokenizer: Tokenizer, examples: Sequence[Example], workers: int = 1, chunk_pairs: int = CHUNK_PAIRS
) -> Iterator[TokenizedCorpus]:
    """The pairs encoded chunk_pairs at a time, in order. With workers > 1 and more than one chunk, a pool of that
    many processes encodes them, each rebuilding the tokenizer once from its serialized models."""
    chunks = (
        ([e.src for e in examples[i : i + chunk_pairs]], [e.tgt for e in examples[i : i + chunk_pairs]])
        for i in range(0, len(examples), chunk_pairs)
    )
    n_chunks = -(-len(examples) // chunk_pairs)
    if workers < 2 or n_chunks < 2:
        for chunk in chunks:
            yield _encode(tokenizer, chunk)
        return
    with multiprocessing.Pool(min(workers, n_chunks), _start_worker, (tokenizer.state(),)) as pool:
        yield from pool.imap(_encode_in_worker, chunks)


# --- building ------------------------------------------------------------------------------------------------------


class _Files:
    """The files of a corpus being written, each hashed as its bytes go out; close() gives the manifest's record."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._open: dict[str, tuple] = {}  # name -> (file, sha256, [bytes])

    def write(self, name: str, data: bytes) -> None:
        if name not in self._open:
            self._open[name] = (open(self.directory / name, "wb"), hashlib.sha256(), [0])
        file, digest, size = self._open[name]
        file.write(data)
        digest.update(data)
        size[0] += len(data)

    def close(self) -> dict:
        for file, _, _ in self._open.values():
            file.flush()
            os.fsync(file.fileno())
            file.close()
        opened = self._open.items()
        return {name: {"bytes": size[0], "sha256": digest.hexdigest()} for name, (_, digest, size) in opened}

    def abort(self) -> None:
        for file, _, _ in self._open.values():
            file.close()


def _offsets(lengths: list[np.ndarray]) -> np.ndarray:
    """(n + 1,) offsets of items with these lengths (a list of (k,) arrays)."""
    lengths = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=OFFSETS)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def _rows(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    """Per-sentence views of packed ids; np.split alone would return one empty row for an empty corpus."""
    return np.split(flat, offsets[1:-1]) if len(offsets) > 1 else []


def _truncate(corpus: TokenizedCorpus, max_len: int) -> tuple[TokenizedCorpus, int]:
    """Cut both sides to max_len tokens (dialogue turns: dropping one would break its session); (corpus, pairs cut)."""
    if max_len < 1:
        raise CorpusError(f"data.max_len={max_len}: must be a positive number of tokens")
    cut = int(((corpus.src_lengths() > max_len) | (corpus.tgt_lengths() > max_len)).sum())
    src = pack([row[:max_len] for row in _rows(corpus.src, corpus.src_offsets)])
    tgt = pack([row[:max_len] for row in _rows(corpus.tgt, corpus.tgt_offsets)])
    return TokenizedCorpus(*src, *tgt), cut


def _subsample(train: list, max_pairs: int | None, seed: int) -> list:
    if max_pairs is not None and max_pairs < 1:
        raise CorpusError(f"data.max_train_pairs={max_pairs}: must be positive — or null to use all pairs")
    if max_pairs is None or max_pairs >= len(train):
        return train
    keep = sorted(random.Random(seed).sample(range(len(train)), max_pairs))
    return [train[i] for i in keep]


def _write_split(files: _Files, split: str, examples: list[Example], encoded, max_len, dialogue: bool) -> tuple:
    """Filter each encoded chunk's pairs (dialogue: cut its turns to max_len) and append what is kept to the split's
    files; returns (counts, sizes) for the manifest."""
    counts = {"truncated": 0} if dialogue else {"empty": 0, "too_long": 0}
    lengths: dict[str, list[np.ndarray]] = {"src": [], "tgt": [], "texts": []}
    for name in ("src.bin", "tgt.bin", "texts"):
        files.write(f"{split}.{name}", b"")  # a split without pairs still has its (empty) files
    start = 0
    for chunk in encoded:
        part, start = examples[start : start + len(chunk)], start + len(chunk)
        if dialogue:
            if max_len is not None:
                chunk, cut = _truncate(chunk, max_len)
                counts["truncated"] += cut
        else:
            kept, chunk_counts = filter_pairs(
                _rows(chunk.src, chunk.src_offsets), _rows(chunk.tgt, chunk.tgt_offsets), max_len
            )
            chunk, part = chunk.select(kept), [part[i] for i in kept]
            counts["empty"] += chunk_counts["empty"]
            counts["too_long"] += chunk_counts["too_long"]
        for side in ("src", "tgt"):
            files.write(f"{split}.{side}.bin", getattr(chunk, side).astype(IDS, copy=False).tobytes())
            lengths[side].append(np.diff(getattr(chunk, f"{side}_offsets")))
        # Normalised texts hold no tab or newline, so each pair is one unambiguous line.
        lines = [f"{e.src}\t{e.tgt}\n".encode() for e in part]
        files.write(f"{split}.texts", b"".join(lines))
        lengths["texts"].append(np.fromiter(map(len, lines), dtype=np.int64, count=len(lines)))
    offsets = {name: _offsets(parts) for name, parts in lengths.items()}
    for name, array in offsets.items():
        files.write(f"{split}.{name}.idx", array.tobytes())
    pairs = len(offsets["src"]) - 1
    counts["kept"] = pairs
    sizes = {"pairs": pairs, "src_tokens": int(offsets["src"][-1]), "tgt_tokens": int(offsets["tgt"][-1])}
    sizes["text_bytes"] = int(offsets["texts"][-1])
    return counts, sizes


def _write_corpus(directory: Path, key: str, cfg: DataConfig, workers: int, log) -> dict:
    """Read, split, subsample, build the tokenizer, encode and filter; write every file; return the manifest."""
    dialogue = cfg.format == "dialogue"
    texts = read_splits(cfg, log)
    available = len(texts["train"])
    texts["train"] = _subsample(texts["train"], cfg.max_train_pairs, cfg.split_seed)
    sessions = {}
    if dialogue:
        for name in texts:
            texts[name], sessions[name] = dialogue_pairs(texts[name])
    tokenizer = build_tokenizer(cfg.tokenizer, texts["train"], cfg.cache_dir, log)
    stats: dict = {
        "split_seed": cfg.split_seed,
        "max_train_pairs": cfg.max_train_pairs,
        "src_vocab_size": tokenizer.src_vocab_size,
        "tgt_vocab_size": tokenizer.tgt_vocab_size,
    }
    files = _Files(directory)
    try:
        summary, splits = [], {}
        for name, examples in texts.items():
            max_len = cfg.max_len if name == "train" else None
            # closing(): a failure in _write_split stops the worker pool now, not when the generator is collected.
            with contextlib.closing(encode_chunks(tokenizer, examples, workers)) as encoded:
                counts, splits[name] = _write_split(files, name, examples, encoded, max_len, dialogue)
            stats[name] = {"read": len(examples), **counts}
            sampled = f" (sampled from {available})" if name == "train" and available > len(examples) else ""
            if dialogue:
                files.write(f"{name}.sessions.idx", sessions[name].astype(OFFSETS).tobytes())
                splits[name]["sessions"] = len(sessions[name]) - 1
                cut = f", {counts['truncated']} with a turn cut to {max_len} tokens" if max_len is not None else ""
                n_sessions = splits[name]["sessions"]
                summary.append(f"data {name}: {n_sessions} sessions{sampled}, {len(examples)} turn pairs{cut}")
            else:
                too_long = f", {counts['too_long']} longer than {max_len} tokens" if max_len is not None else ""
                summary.append(
                    f"data {name}: {len(examples)} pairs{sampled}, {counts['empty']} empty{too_long},"
                    f" {counts['kept']} kept"
                )
            log(summary[-1])
        if not splits["train"]["pairs"]:
            raise CorpusError(
                f"{cfg.train}: no training pairs left after filtering ({stats['train']}) — raise data.max_len"
                " or check the corpus"
            )
        state = tokenizer.state()
        models = [state["src_model"]] if tokenizer.joint else [state["src_model"], state["tgt_model"]]
        for name, model in zip(tokenizer_files(tokenizer.joint), models, strict=True):
            files.write(name, model)
    except BaseException:
        files.abort()
        raise
    manifest = {
        "format": FORMAT,
        "key": key,
        "dtypes": {"ids": IDS.str, "offsets": OFFSETS.str},
        "tokenizer": {
            "joint": tokenizer.joint,
            "fingerprint": tokenizer.fingerprint,
            "target_ids": tokenizer.target_ids,
        },
        "splits": splits,
        "stats": stats,
        "summary": summary,
        "files": files.close(),
    }
    manifest["checksum"] = manifest_checksum(manifest)
    return manifest


def _publish(tmp: Path, path: Path) -> None:
    """Rename the finished corpus to `path`, so that readers find all of it or nothing; when another process
    published the same corpus meanwhile, keep that one."""
    try:
        os.replace(tmp, path)
    except OSError:
        if not (path / MANIFEST).is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def _discard(path: Path) -> None:
    """Delete a damaged corpus, renamed away first so that no reader finds it half deleted."""
    stale = hidden_beside(path, "stale")
    try:
        os.replace(path, stale)
    except FileNotFoundError:
        return  # another process discarded it meanwhile
    shutil.rmtree(stale, ignore_errors=True)


def _build(cfg: DataConfig, path: Path, workers: int | None, log) -> None:
    """Build the binarized corpus of `cfg` at `path` (binarized_dir(cfg)), tokenizing with `workers` processes
    (None: min(4, CPU count)). Dialogue data: max_train_pairs counts sessions, and over-long turns are cut to max_len
    instead of dropped."""
    started = time.perf_counter()
    workers = workers or min(4, os.cpu_count() or 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkdtemp, whose directory only its owner may read: this one gets the umask's permissions.
    tmp = hidden_beside(path, "tmp")
    tmp.mkdir()
    try:
        manifest = _write_corpus(tmp, path.name, cfg, workers, log)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        _publish(tmp, path)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and e.errno in _DISK_FULL:
            raise DiskFullError(
                f"{path.parent}: the disk is full (or over quota) writing the binarized corpus — free some space"
                " or set data.cache_dir (NMT_CACHE_DIR) to another disk"
            ) from None
        raise
    seconds = time.perf_counter() - started
    pairs = sum(stats["read"] for name, stats in manifest["stats"].items() if name in _SPLITS)
    megabytes = sum(record["bytes"] for record in manifest["files"].values()) / 1e6
    log(
        f"binarized corpus: wrote {path} ({megabytes:.1f} MB) in {seconds:.1f} s, {pairs / seconds:.0f} pairs/s"
        f" (workers={workers})"
    )


def prepare_data(cfg: DataConfig, log=print, workers: int | None = None, verify: bool = False) -> PreparedData:
    """The prepared splits of `cfg`, memory-mapped from its binarized corpus (binarized_dir), which is built first,
    tokenizing with `workers` processes (None: min(4, CPU count)), when there is none, and rebuilt when it fails a
    check (load_binarized; verify=True adds the sha256 of every file)."""
    if OmegaConf.is_config(cfg) and OmegaConf.is_missing(cfg, "train"):
        raise CorpusError("data.train: not set — give a TSV file or [src_file, tgt_file]")
    if cfg.format == "dialogue" and not cfg.tokenizer.joint:
        raise CorpusError("data.tokenizer.joint=false: dialogue turns are both sources and replies — set it true")
    path = binarized_dir(cfg)
    if path.exists():
        try:
            data, summary = load_binarized(path, verify)
        except DamagedCorpus as e:
            log(f"binarized corpus {path}: {e} — rebuilding it")
            _discard(path)
        else:
            log(f"binarized corpus: loaded cached {path}{' (sha256 of every file verified)' if verify else ''}")
            for line in summary:
                log(line)
            return data
    _build(cfg, path, workers, log)
    return load_binarized(path)[0]
