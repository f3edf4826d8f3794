"""Batches: the token-budget, length-bucketed batch sampler and collation of id arrays into padded tensors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

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
    """Batches of corpus positions whose padded size n_sentences * max(src_len, tgt_len + 1) fits max_tokens.

    Pairs are sorted by (tgt_len + 1, src_len) so that a batch holds similar lengths and little padding;
    with shuffle, ties and the batch order are permuted by np.random.default_rng((seed, epoch)), so an
    epoch's batches are reproducible (resuming relies on it). Without shuffle the order is sorted, for
    evaluation. A single pair over the budget forms a batch of its own.
    """

    def __init__(
        self,
        src_lengths,
        tgt_lengths,
        max_tokens: int,
        max_sentences: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
    ):
        self.src_lengths = np.asarray(src_lengths, dtype=np.int64)  # (n,)
        self.tgt_lengths = np.asarray(tgt_lengths, dtype=np.int64)  # (n,)
        if self.src_lengths.ndim != 1 or self.src_lengths.shape != self.tgt_lengths.shape:
            raise CorpusError(
                f"TokenBatchSampler: src/tgt lengths have shapes {self.src_lengths.shape} and"
                f" {self.tgt_lengths.shape} — pass one length per pair for each side"
            )
        if max_tokens < 1 or (max_sentences is not None and max_sentences < 1):
            raise CorpusError(
                f"trainer.max_tokens={max_tokens}, trainer.max_sentences={max_sentences}: must be positive"
                " — set a token budget of at least the longest pair (max_sentences may be null)"
            )
        self.max_tokens = max_tokens
        self.max_sentences = max_sentences
        self.shuffle = shuffle
        self.seed = seed
        # Chunk boundaries depend only on the sorted lengths, not on how ties are ordered: the count is fixed.
        self._num_batches = len(self._chunk(self._order(None)))

    def _order(self, rng: np.random.Generator | None) -> np.ndarray:
        """(n,) positions sorted by (tgt_len, src_len); lexsort is stable, so ties keep the permuted order."""
        if rng is None:
            return np.lexsort((self.src_lengths, self.tgt_lengths))
        perm = rng.permutation(len(self.src_lengths))
        return perm[np.lexsort((self.src_lengths[perm], self.tgt_lengths[perm]))]

    def _chunk(self, order: np.ndarray) -> list[np.ndarray]:
        # max(max src, max tgt + 1) over a batch equals the max over its pairs of max(src, tgt + 1).
        widths = np.maximum(self.src_lengths, self.tgt_lengths + 1)[order].tolist()
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
        rng = np.random.default_rng((self.seed, epoch)) if self.shuffle else None
        batches = self._chunk(self._order(rng))
        if rng is not None:
            batches = [batches[j] for j in rng.permutation(len(batches))]
        return batches

    def __len__(self) -> int:
        return self._num_batches
