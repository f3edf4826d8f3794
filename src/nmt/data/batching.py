"""Batches: the token-budget batch sampler (bucketed, sorted or random order) and collation into padded tensors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nmt.config import BatchOrder
from nmt.data.corpus import CorpusError
from nmt.data.dataset import TokenizedCorpus, pack
from nmt.data.tokenizer import SpecialIds


@dataclass
class Batch:
    src: torch.Tensor  # (batch, src_len) long, padded with pad
    src_lengths: torch.Tensor  # (batch,) long
    tgt_in: torch.Tensor  # (batch, tgt_len) long: bos + y, padded
    tgt_out: torch.Tensor  # (batch, tgt_len) long: y + eos, padded
    n_tokens: int  # non-pad tokens in tgt_out
    indices: np.ndarray  # (batch,) positions of the pairs in the corpus

    def to(self, device) -> Batch:
        """The same batch with every tensor, src_lengths included, on `device`."""
        return Batch(
            src=self.src.to(device),
            src_lengths=self.src_lengths.to(device),
            tgt_in=self.tgt_in.to(device),
            tgt_out=self.tgt_out.to(device),
            n_tokens=self.n_tokens,
            indices=self.indices,
        )


def _padded(flat: np.ndarray, offsets: np.ndarray, indices: np.ndarray, width: int, pad: int) -> np.ndarray:
    """(batch, width) int64: row r holds sentence indices[r] from the left, then pad."""
    starts = offsets[indices]
    lengths = offsets[indices + 1] - starts
    cols = np.arange(width)
    inside = cols < lengths[:, None]
    out = np.full((len(indices), width), pad, dtype=np.int64)
    out[inside] = flat[(starts[:, None] + cols)[inside]]
    return out


def pad_sequences(sequences, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id sequences -> (batch, max_len) padded long tensor and (batch,) lengths.

    An empty sequence still gets one (pad) column, so that a batch of empty inputs has a shape models accept.
    """
    flat, offsets = pack([list(s) for s in sequences])
    lengths = np.diff(offsets)
    padded = _padded(flat, offsets, np.arange(len(lengths)), max(1, int(lengths.max(initial=0))), pad)
    return torch.from_numpy(padded), torch.from_numpy(lengths)


def collate(corpus: TokenizedCorpus, indices, specials: SpecialIds) -> Batch:
    """Pad the pairs at `indices` ((batch,) ints) into a Batch; target tensors get bos/eos added here."""
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim != 1 or len(indices) == 0:
        raise ValueError(f"collate: indices must be a non-empty 1-D array, got shape {indices.shape}")
    rows = np.arange(len(indices))
    src_lengths = corpus.src_offsets[indices + 1] - corpus.src_offsets[indices]
    tgt_lengths = corpus.tgt_offsets[indices + 1] - corpus.tgt_offsets[indices]
    src = _padded(corpus.src, corpus.src_offsets, indices, int(src_lengths.max()), specials.pad)
    tgt_out = _padded(corpus.tgt, corpus.tgt_offsets, indices, int(tgt_lengths.max()) + 1, specials.pad)
    tgt_in = np.empty_like(tgt_out)
    tgt_in[:, 0] = specials.bos
    # The last column of tgt_out is pad in every row before eos goes in, so y fits in tgt_in[:, 1:].
    tgt_in[:, 1:] = tgt_out[:, :-1]
    tgt_out[rows, tgt_lengths] = specials.eos
    return Batch(
        src=torch.from_numpy(src),
        src_lengths=torch.from_numpy(src_lengths.astype(np.int64)),
        tgt_in=torch.from_numpy(tgt_in),
        tgt_out=torch.from_numpy(tgt_out),
        n_tokens=int(tgt_lengths.sum()) + len(indices),
        indices=indices,
    )


class TokenBatchSampler:
    """Batches of item positions whose padded size n_items * max(width) fits max_tokens, in a BatchOrder:

    bucketed: items sorted by `sort_keys` (np.lexsort order: the last key is the primary one), so that a batch
              holds similar lengths and little padding; ties and the batch order permuted every epoch.
    sorted:   the same sorted batches served in length order, the same every epoch (evaluation uses it).
    random:   batches filled from a permutation of the items, no length grouping (much padding); their count
              varies a little from epoch to epoch, len() is epoch 0's.
    Permutations come from np.random.default_rng((seed, epoch)), so an epoch's batches are reproducible (resuming
    relies on it). A single item over the budget forms a batch of its own.
    Sentence pairs use for_pairs(); dialogue sessions sort by turn count, a session's width being its widest turn.
    """

    def __init__(
        self,
        widths,
        sort_keys,
        max_tokens: int,
        max_sentences: int | None = None,
        order: str = "bucketed",
        seed: int = 0,
    ):
        self.widths = np.asarray(widths, dtype=np.int64)  # (n,)
        self.sort_keys = tuple(np.asarray(k, dtype=np.int64) for k in sort_keys)  # each (n,)
        if self.widths.ndim != 1 or any(k.shape != self.widths.shape for k in self.sort_keys):
            shapes = ", ".join(str(k.shape) for k in self.sort_keys)
            raise CorpusError(
                f"TokenBatchSampler: widths {self.widths.shape} and sort keys {shapes} differ in shape"
                " — pass one value per item"
            )
        if max_tokens < 1 or (max_sentences is not None and max_sentences < 1):
            raise CorpusError(
                f"trainer.max_tokens={max_tokens}, trainer.max_sentences={max_sentences}: must be positive"
                " — set a token budget of at least the longest pair (max_sentences may be null)"
            )
        if order not in BatchOrder.__members__:
            raise CorpusError(
                f"TokenBatchSampler: order '{order}', expected one of [{', '.join(BatchOrder.__members__)}]"
            )
        self.max_tokens = max_tokens
        self.max_sentences = max_sentences
        self.order = str(order)
        self.seed = seed
        self._num_batches = len(self.batches(0))

    @classmethod
    def for_pairs(cls, src_lengths, tgt_lengths, max_tokens: int, **kwargs) -> TokenBatchSampler:
        """Sentence pairs sorted by (tgt_len, src_len); a pair's width max(src_len, tgt_len + 1) counts the
        bos/eos that collate adds to the target."""
        src, tgt = np.asarray(src_lengths, dtype=np.int64), np.asarray(tgt_lengths, dtype=np.int64)
        if src.shape != tgt.shape:
            raise CorpusError(
                f"TokenBatchSampler: src/tgt lengths have shapes {src.shape} and {tgt.shape}"
                " — pass one length per pair for each side"
            )
        return cls(np.maximum(src, tgt + 1), (src, tgt), max_tokens, **kwargs)

    def _chunk(self, order: np.ndarray) -> list[np.ndarray]:
        widths = self.widths[order].tolist()
        max_sentences = self.max_sentences or len(order)
        bounds, start, widest = [], 0, 0
        for i, width in enumerate(widths):
            count = i - start + 1
            if i > start and (count * max(widest, width) > self.max_tokens or count > max_sentences):
                bounds.append(i)
                start, widest = i, width
            else:
                widest = max(widest, width)
        return np.split(order, bounds) if len(order) else []

    def batches(self, epoch: int) -> list[np.ndarray]:
        """The (batch,) int64 position arrays of one epoch; every position appears exactly once."""
        if self.order == "sorted":
            return self._chunk(np.lexsort(self.sort_keys))
        rng = np.random.default_rng((self.seed, epoch))
        perm = rng.permutation(len(self.widths))
        if self.order == "random":
            return self._chunk(perm)
        # lexsort is stable, so ties keep the permuted order.
        batches = self._chunk(perm[np.lexsort(tuple(k[perm] for k in self.sort_keys))])
        return [batches[j] for j in rng.permutation(len(batches))]

    def __len__(self) -> int:
        return self._num_batches


@dataclass
class SessionBatch:
    """Dialogue sessions trained together, longest first, as one pair Batch per turn position.

    turns[t] holds pair t of every session that has one: sessions end at different turns, and sorting them
    longest first makes those still running a prefix, so turns[t] has rows 0..k_t - 1 (k_t non-increasing)
    and finished sessions simply drop out of the batch instead of being padded.
    """

    turns: list[Batch]
    sessions: np.ndarray  # (batch,) session numbers, longest first
    n_tokens: int  # target tokens over all turns (eos included)

    def to(self, device) -> SessionBatch:
        return SessionBatch([turn.to(device) for turn in self.turns], self.sessions, self.n_tokens)


def session_turns(session_offsets: np.ndarray, sessions) -> tuple[np.ndarray, list[np.ndarray]]:
    """The sessions numbered `sessions` (batch,), longest first, and per turn position t the pair positions
    (k_t,) of turn t of those that have one; session s owns pairs session_offsets[s]:session_offsets[s + 1]."""
    sessions = np.asarray(sessions, dtype=np.int64)
    n_pairs = np.diff(session_offsets)[sessions]
    order = np.argsort(-n_pairs, kind="stable")
    sessions, n_pairs = sessions[order], n_pairs[order]
    starts = session_offsets[sessions]
    return sessions, [starts[: int((n_pairs > t).sum())] + t for t in range(int(n_pairs.max(initial=0)))]


def collate_sessions(corpus: TokenizedCorpus, session_offsets, sessions, specials: SpecialIds) -> SessionBatch:
    """Batch the sessions numbered `sessions` (see session_turns)."""
    sessions, pairs = session_turns(session_offsets, sessions)
    turns = [collate(corpus, indices, specials) for indices in pairs]
    return SessionBatch(turns, sessions, sum(turn.n_tokens for turn in turns))


def padding_share(corpus: TokenizedCorpus, batches, session_offsets: np.ndarray | None = None) -> float:
    """Padding positions / all positions of the collated batches, source and target (y + eos) together, from the
    lengths alone. batches: pair positions, or with session_offsets session numbers (each turn a batch)."""
    if session_offsets is not None:
        batches = [pairs for sessions in batches for pairs in session_turns(session_offsets, sessions)[1]]
    src, tgt = corpus.src_lengths(), corpus.tgt_lengths() + 1
    real = padded = 0
    for indices in batches:
        real += int(src[indices].sum() + tgt[indices].sum())
        padded += len(indices) * int(src[indices].max() + tgt[indices].max())
    return 1 - real / padded if padded else 0.0


def session_sampler(corpus: TokenizedCorpus, session_offsets, max_tokens: int, **kwargs) -> TokenBatchSampler:
    """Batches of sessions of similar turn count; a session's width is its widest pair, so every turn of the
    batch fits the token budget. kwargs: max_sentences (sessions), order, seed."""
    session_offsets = np.asarray(session_offsets, dtype=np.int64)
    pair_widths = np.maximum(corpus.src_lengths(), corpus.tgt_lengths() + 1)
    n_pairs = np.diff(session_offsets)
    if len(n_pairs) and n_pairs.min() < 1:
        raise CorpusError("session_sampler: a session without pairs — every session needs at least two turns")
    widths = np.maximum.reduceat(pair_widths, session_offsets[:-1]) if len(n_pairs) else n_pairs
    return TokenBatchSampler(widths, (widths, n_pairs), max_tokens, **kwargs)
