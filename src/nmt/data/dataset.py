"""Token-id corpora: packed id arrays (in memory or memory-mapped), nmt-eval's id cache, reading a config's splits.

Dialogue data becomes the same pair corpus, (turn t, turn t + 1) in session order, plus per split the offsets
that say which consecutive pairs form each session. prepare_data (nmt.data.preprocess) builds the prepared splits.
"""

from __future__ import annotations

import hashlib
import io
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nmt.atomic import write_atomic
from nmt.config import DataConfig
from nmt.data.corpus import (
    CorpusError,
    Example,
    make_normalizer,
    read_corpus,
    read_dialogues,
    split_corpus,
)
from nmt.data.tokenizer import Tokenizer


@dataclass
class TokenizedCorpus:
    """Sentence i's ids are src[src_offsets[i]:src_offsets[i + 1]] (likewise tgt); no bos/eos stored.

    The arrays may be read-only np.memmap (a binarized corpus): every method reads only the sentences it needs.
    """

    src: np.ndarray  # (total_src_tokens,) int32
    src_offsets: np.ndarray  # (n + 1,) int64
    tgt: np.ndarray  # (total_tgt_tokens,) int32
    tgt_offsets: np.ndarray  # (n + 1,) int64

    def __len__(self) -> int:
        return len(self.src_offsets) - 1

    def src_lengths(self) -> np.ndarray:
        """(n,) int64 source lengths in tokens."""
        return np.diff(self.src_offsets)

    def tgt_lengths(self) -> np.ndarray:
        """(n,) int64 target lengths in tokens."""
        return np.diff(self.tgt_offsets)

    def src_ids(self, i: int) -> np.ndarray:
        """(src_len,) int32 ids of source sentence i (a view)."""
        return self.src[self.src_offsets[i] : self.src_offsets[i + 1]]

    def tgt_ids(self, i: int) -> np.ndarray:
        """(tgt_len,) int32 ids of target sentence i (a view)."""
        return self.tgt[self.tgt_offsets[i] : self.tgt_offsets[i + 1]]

    def select(self, indices) -> TokenizedCorpus:
        """A new corpus of the sentences at `indices` ((k,) ints), in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        src, src_offsets = _take(self.src, self.src_offsets, indices)
        tgt, tgt_offsets = _take(self.tgt, self.tgt_offsets, indices)
        return TokenizedCorpus(src, src_offsets, tgt, tgt_offsets)


def pack(ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated ids (total,) int32 and offsets (n + 1,) int64."""
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, ids), dtype=np.int64, count=len(ids)), out=offsets[1:])
    flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int32, count=int(offsets[-1]))
    return flat, offsets


def _take(flat: np.ndarray, offsets: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Only the selected offsets are read: np.diff(offsets) would page in a memory-mapped corpus's whole index.
    lengths = offsets[indices + 1] - offsets[indices]
    new_offsets = np.zeros(len(indices) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    # Position j of the output reads flat[start of its sentence + j - new start of that sentence].
    shift = np.repeat(offsets[indices] - new_offsets[:-1], lengths)
    return flat[shift + np.arange(new_offsets[-1])], new_offsets


def _texts_key(examples: list[Example], tokenizer: Tokenizer) -> str:
    digest = hashlib.sha256(tokenizer.fingerprint.encode())
    digest.update(str(len(examples)).encode())
    # Normalised texts hold no tab or newline, so these separators keep the encoding unambiguous.
    digest.update("\n".join(f"{e.src}\t{e.tgt}" for e in examples).encode("utf-8"))
    return digest.hexdigest()[:20]


def encode_corpus(examples: list[Example], tokenizer: Tokenizer, cache_dir: str | Path) -> TokenizedCorpus:
    """Encode the pairs, or load them from cache_dir/ids-<key>.npz (key: tokenizer fingerprint and texts).

    nmt-eval's cache, for a split encoded with a checkpoint's tokenizer; training data is binarized instead.
    """
    cache_dir = Path(cache_dir)
    path = cache_dir / f"ids-{_texts_key(examples, tokenizer)}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as arrays:
            return TokenizedCorpus(**{name: arrays[name] for name in arrays.files})
    src, src_offsets = pack(tokenizer.encode_src([e.src for e in examples]))
    tgt, tgt_offsets = pack(tokenizer.encode_tgt([e.tgt for e in examples]))
    corpus = TokenizedCorpus(src, src_offsets, tgt, tgt_offsets)
    buffer = io.BytesIO()
    np.savez(buffer, src=src, src_offsets=src_offsets, tgt=tgt, tgt_offsets=tgt_offsets)
    cache_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buffer.getvalue())
    return corpus


@dataclass
class PreparedData:
    tokenizer: Tokenizer
    splits: dict[str, TokenizedCorpus]  # "train", "dev", "test", after filtering
    # The kept pairs' normalised texts, aligned with splits (BLEU references); a binarized corpus's train texts are
    # a TextPairs, read from disk on demand, the others lists.
    texts: dict[str, Sequence[Example]]
    stats: dict  # per split {read, empty, too_long, kept}; split_seed, max_train_pairs, vocab sizes
    # Dialogue data only: per split (sessions + 1,) int64, session s owns pairs sessions[s]:sessions[s + 1].
    sessions: dict[str, np.ndarray] | None = None


def read_splits(cfg: DataConfig, log=print) -> dict[str, list]:
    """train/dev/test pairs (dialogue data: sessions): given files, or a seeded split of train for those not given."""

    def read(spec):
        if cfg.format == "pairs":
            return read_corpus(spec, cfg.src_column, cfg.tgt_column, make_normalizer(cfg))
        if cfg.format != "dialogue":
            raise CorpusError(f"data.format={cfg.format}: choose pairs or dialogue")
        sessions, counts = read_dialogues(spec, cfg.turn_separator, make_normalizer(cfg))
        skipped = ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in counts.items() if n)
        log(f"data {spec}: {len(sessions)} sessions{f' ({skipped} skipped)' if skipped else ''}")
        return sessions

    train = read(cfg.train)
    dev = read(cfg.dev) if cfg.dev is not None else None
    test = read(cfg.test) if cfg.test is not None else None
    if dev is None or test is None:
        dev_size = cfg.dev_size if dev is None else 0
        test_size = cfg.test_size if test is None else 0
        train, split_dev, split_test = split_corpus(train, dev_size, test_size, cfg.split_seed, name=str(cfg.train))
        dev = split_dev if dev is None else dev
        test = split_test if test is None else test
    return {"train": train, "dev": dev, "test": test}


def dialogue_pairs(sessions: list[list[str]]) -> tuple[list[Example], np.ndarray]:
    """Every (turn t, turn t + 1) of the sessions in order, and (sessions + 1,) offsets of each session's pairs."""
    pairs = [Example(turns[t], turns[t + 1]) for turns in sessions for t in range(len(turns) - 1)]
    offsets = np.zeros(len(sessions) + 1, dtype=np.int64)
    np.cumsum([len(turns) - 1 for turns in sessions], out=offsets[1:])
    return pairs, offsets
