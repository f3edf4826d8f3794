"""The classic encoder-decoder without attention: Elman (tanh), GRU or LSTM cells, as people first write it.

The encoder's final state, projected ("bridged"), starts the decoder. With context="every_step" the decoder also
reads that summary vector at every step, beside the previous token, and the output layer sees it too (Cho et al.,
2014); with context="initial" it is only the initial state (Sutskever et al., 2014).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt.models.base import EncoderOut, LSTMState, run_lstm

_CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


@dataclass
class RNNState:
    """h: (layers, batch, hidden)"""

    h: torch.Tensor

    def reorder(self, index: torch.Tensor) -> RNNState:
        return RNNState(self.h.index_select(1, index))


class RNNSeq2Seq(nn.Module):
    """Embeddings, a (bidirectional) multi-layer RNN encoder over packed sequences, a bridge, an RNN decoder."""

    tanh_layers = ("bridge",)  # bridge_c (LSTM) stays linear: a cell state is not squashed
    recurrent = True  # teacher forcing below 1 feeds its own tokens back step by step

    def __init__(self, cfg, src_vocab_size: int, tgt_vocab_size: int, pad_id: int, joint_vocab: bool = False):
        super().__init__()
        if cfg.bidirectional and cfg.hidden_size % 2:
            raise ValueError(f"a bidirectional encoder needs an even hidden_size, got {cfg.hidden_size}")
        cell, hidden = _CELLS[cfg.cell], cfg.hidden_size
        self.every_step = cfg.context == "every_step"
        self.bidirectional = cfg.bidirectional
        self.lstm = cfg.cell == "lstm"
        self.decoder_layers = cfg.decoder_layers
        self.src_embed = nn.Embedding(src_vocab_size, cfg.embed_dim, padding_idx=pad_id)
        self.encoder = cell(
            cfg.embed_dim,
            hidden // 2 if cfg.bidirectional else hidden,
            cfg.encoder_layers,
            batch_first=True,
            bidirectional=cfg.bidirectional,
            dropout=cfg.dropout if cfg.encoder_layers > 1 else 0.0,
        )
        self.bridge = nn.Linear(hidden, cfg.decoder_layers * hidden)
        # An LSTM decoder starts from the encoder's final h and c both, as in Sutskever et al. (2014): the cell is
        # the LSTM's long-range memory, so it is bridged too rather than started at zero.
        self.bridge_c = nn.Linear(hidden, cfg.decoder_layers * hidden) if self.lstm else None
        self.tgt_embed = nn.Embedding(tgt_vocab_size, cfg.embed_dim, padding_idx=pad_id)
        context_size = hidden if self.every_step else 0
        self.decoder = cell(
            cfg.embed_dim + context_size,
            hidden,
            cfg.decoder_layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.decoder_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.output = nn.Linear(hidden + context_size, tgt_vocab_size)

    def _run(self, rnn: nn.RNNBase, x, state: RNNState | LSTMState | None = None):
        """rnn over x (as nn.RNNBase takes it) from state (zeros when None) -> outputs, final state: an LSTMState
        for an LSTM, else an RNNState."""
        if self.lstm:
            return run_lstm(rnn, x, state)
        out, h = rnn(x, None if state is None else state.h)
        return out, RNNState(h)

    def encode(self, src, src_lengths) -> EncoderOut:
        """src: (batch, src_len). The summary vectors (batch, hidden) are the top layer's final state, both ways:
        cache = (h,), or (h, c) for an LSTM."""
        x = self.dropout(self.src_embed(src))
        packed = pack_padded_sequence(x, src_lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, final = self._run(self.encoder, packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        states = (final.h, final.c) if self.lstm else (final.h,)
        summaries = tuple(torch.cat([s[-2], s[-1]], dim=-1) if self.bidirectional else s[-1] for s in states)
        return EncoderOut(memory, src != self.src_embed.padding_idx, summaries)

    def init_state(self, enc: EncoderOut) -> RNNState | LSTMState:
        """Each decoder layer starts from its slice of the bridged summaries: (layers, batch, hidden) each."""
        h = self._layers(torch.tanh(self.bridge(enc.cache[0])))
        return LSTMState(h, self._layers(self.bridge_c(enc.cache[1]))) if self.lstm else RNNState(h)

    def _layers(self, bridged):
        """(batch, layers * hidden) -> (layers, batch, hidden)"""
        return bridged.view(bridged.size(0), self.decoder_layers, -1).transpose(0, 1).contiguous()

    def decode_hidden(self, tgt_in, state: RNNState | LSTMState, enc: EncoderOut):
        """tgt_in: (batch, tgt_len) -> the features the output layer reads (batch, tgt_len, features), new state,
        no attention (None). One RNN call for all steps."""
        x = self.dropout(self.tgt_embed(tgt_in))
        if self.every_step:
            context = enc.cache[0].unsqueeze(1).expand(-1, tgt_in.size(1), -1)
            x = torch.cat([x, context], dim=-1)
        out, state = self._run(self.decoder, x, state)
        if self.every_step:
            out = torch.cat([out, context], dim=-1)
        return self.dropout(out), state, None

    def decode(self, tgt_in, state: RNNState | LSTMState, enc: EncoderOut):
        """tgt_in: (batch, tgt_len) -> logits (batch, tgt_len, vocab), new state, None"""
        features, state, attn = self.decode_hidden(tgt_in, state, enc)
        return self.output(features), state, attn

    def decode_step(self, prev_tokens, state: RNNState | LSTMState, enc: EncoderOut, need_weights: bool = False):
        """prev_tokens: (batch,) -> log_probs (batch, vocab), new state, no attention (None)."""
        logits, state, _ = self.decode(prev_tokens.unsqueeze(1), state, enc)
        return torch.log_softmax(logits.squeeze(1).float(), dim=-1), state, None

    def forward(self, src, src_lengths, tgt_in):
        """Teacher-forced logits (batch, tgt_len, vocab) for the whole target in one pass."""
        enc = self.encode(src, src_lengths)
        return self.decode(tgt_in, self.init_state(enc), enc)[0]
