"""The seq2seq interface that training, search and evaluation rely on, for every architecture."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn


@dataclass
class EncoderOut:
    """What the decoder attends to.

    memory: (batch, src_len, dim) encoder outputs
    mask:   (batch, src_len) bool, True at real (non-pad) positions
    cache:  batch-first tensors derived from the memory once per sentence (attention keys/values), which
            decoding steps reuse; their layout is the model's business
    final:  the encoder's final recurrent state (layers, batch, hidden), for models that start from it
    """

    memory: torch.Tensor
    mask: torch.Tensor
    cache: tuple[torch.Tensor, ...] = ()
    final: Optional[LSTMState] = None

    def reorder(self, index: torch.Tensor) -> EncoderOut:
        """Select batch entries by index: beam search uses it to give every beam its sentence."""
        return EncoderOut(
            self.memory.index_select(0, index),
            self.mask.index_select(0, index),
            tuple(t.index_select(0, index) for t in self.cache),
            None if self.final is None else self.final.reorder(index),
        )


@dataclass
class LSTMState:
    """Recurrent decoder state. h, c: (layers, batch, hidden)."""

    h: torch.Tensor
    c: torch.Tensor

    def reorder(self, index: torch.Tensor) -> LSTMState:
        return LSTMState(self.h.index_select(1, index), self.c.index_select(1, index))

    def detach(self) -> LSTMState:
        """The same values cut from the graph: gradients stop here (truncated backpropagation through time)."""
        return LSTMState(self.h.detach(), self.c.detach())


def run_lstm(lstm: nn.LSTM, x, state: Optional[LSTMState] = None):
    """lstm (batch_first) over x, a (batch, len, input) tensor or a PackedSequence, from state (zeros when None)
    -> its outputs (as x: padded or packed) and the final state (layers * directions, batch, hidden)."""
    out, (h, c) = lstm(x, None if state is None else (state.h, state.c))
    return out, LSTMState(h, c)
