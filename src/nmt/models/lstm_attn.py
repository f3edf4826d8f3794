"""LSTM encoder-decoder with attention (Luong et al., 2015; Bahdanau scores optional)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt.models.attention import Attention
from nmt.models.base import EncoderOut, LSTMState, run_lstm


class LSTMEncoder(nn.Module):
    """Embeddings and a (bidirectional) multi-layer LSTM over packed sequences.

    src: (batch, src_len), src_lengths: (batch,)
    returns memory (batch, src_len, hidden_size) and the final state, h and c (layers, batch, hidden_size)
    """

    def __init__(self, vocab_size, embed_dim, hidden_size, num_layers, bidirectional, dropout, pad_id):
        super().__init__()
        if bidirectional and hidden_size % 2:
            raise ValueError(f"a bidirectional encoder needs an even hidden_size, got {hidden_size}")
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.dropout = nn.Dropout(dropout)
        self.rnn = nn.LSTM(
            embed_dim,
            hidden_size // 2 if bidirectional else hidden_size,
            num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )

    def forward(self, src, src_lengths):
        x = self.dropout(self.embed(src))
        # An empty source still gets one (pad) step: packing rejects length 0.
        lengths = src_lengths.clamp(min=1).cpu()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, final = run_lstm(self.rnn, packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        if self.bidirectional:
            final = LSTMState(*(self._join_directions(s) for s in (final.h, final.c)))
        return self.dropout(memory), final

    def _join_directions(self, state):
        """(layers * 2, batch, half) -> (layers, batch, 2 * half): forward and backward side by side."""
        _, batch, half = state.shape
        return state.view(self.num_layers, 2, batch, half).transpose(1, 2).reshape(self.num_layers, batch, 2 * half)


class LSTMAttention(nn.Module):
    """Bidirectional LSTM encoder, bridged final states, LSTM decoder, attention, output over [state; context].

    The decoder takes only the previous target token as input (no input feeding), so teacher-forced training
    runs the whole target sequence through one LSTM call and one batched attention.
    """

    # Layers whose output goes through tanh: Xavier init scales them by tanh's gain.
    tanh_layers = ("bridge_h", "combine", "attention.query_proj", "attention.memory_proj")
    recurrent = True  # teacher forcing below 1 feeds its own tokens back step by step

    def __init__(self, cfg, src_vocab_size: int, tgt_vocab_size: int, pad_id: int, joint_vocab: bool = False):
        super().__init__()
        hidden = cfg.hidden_size
        self.decoder_layers = cfg.decoder_layers
        self.encoder = LSTMEncoder(
            src_vocab_size, cfg.embed_dim, hidden, cfg.encoder_layers, cfg.bidirectional, cfg.dropout, pad_id
        )
        self.bridge_h = nn.Linear(hidden, hidden)
        self.bridge_c = nn.Linear(hidden, hidden)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, cfg.embed_dim, padding_idx=pad_id)
        self.decoder = nn.LSTM(
            cfg.embed_dim,
            hidden,
            cfg.decoder_layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.decoder_layers > 1 else 0.0,
        )
        self.attention = Attention(cfg.attention, hidden, hidden)
        self.combine = nn.Linear(2 * hidden, hidden, bias=False)
        self.dropout = nn.Dropout(cfg.dropout)
        self.output = nn.Linear(hidden, tgt_vocab_size)
        if cfg.tie_target_embeddings:
            if cfg.embed_dim != hidden:
                raise ValueError("tie_target_embeddings needs embed_dim == hidden_size")
            self.output.weight = self.tgt_embed.weight

    def encode(self, src, src_lengths) -> EncoderOut:
        """src: (batch, src_len), src_lengths: (batch,)"""
        return self.with_cache(self.encode_source(src, src_lengths))

    def encode_source(self, src, src_lengths) -> EncoderOut:
        """The encoder's outputs and final state, before the attention keys are derived from them."""
        memory, final = self.encoder(src, src_lengths)
        mask = src != self.tgt_embed.padding_idx
        mask[:, 0] |= src_lengths == 0  # an empty source attends to its single pad step
        return EncoderOut(memory, mask, final=final)

    def with_cache(self, enc: EncoderOut) -> EncoderOut:
        """enc with the attention keys of its memory: what decoding steps reuse."""
        return EncoderOut(enc.memory, enc.mask, (self.attention.keys(enc.memory),), enc.final)

    def init_state(self, enc: EncoderOut) -> LSTMState:
        """Project the encoder's final h and c into the decoder; with fewer encoder layers, repeat the top one."""
        h, c = enc.final.h, enc.final.c
        if h.size(0) != self.decoder_layers:
            h, c = (s[-1:].expand(self.decoder_layers, -1, -1) for s in (h, c))
        return LSTMState(torch.tanh(self.bridge_h(h)).contiguous(), self.bridge_c(c).contiguous())

    def decode_hidden(self, tgt_in, state: LSTMState, enc: EncoderOut):
        """Run the decoder over given input tokens, up to the features the output layer reads.

        tgt_in: (batch, tgt_len) -> attentional vectors (batch, tgt_len, hidden), new state,
        attention (batch, tgt_len, src_len)
        """
        x = self.dropout(self.tgt_embed(tgt_in))
        out, state = run_lstm(self.decoder, x, state)
        context, attn = self.attention(out, enc.memory, enc.mask, enc.cache[0])
        attentional = self.dropout(torch.tanh(self.combine(torch.cat([out, context], dim=-1))))
        return attentional, state, attn

    def decode(self, tgt_in, state: LSTMState, enc: EncoderOut):
        """tgt_in: (batch, tgt_len) -> logits (batch, tgt_len, vocab), new state, attention"""
        features, state, attn = self.decode_hidden(tgt_in, state, enc)
        return self.output(features), state, attn

    def decode_step(self, prev_tokens, state: LSTMState, enc: EncoderOut, need_weights: bool = False):
        """prev_tokens: (batch,) -> log_probs (batch, vocab), new state, attention (batch, src_len) (always: it is
        the decoder's own)"""
        logits, state, attn = self.decode(prev_tokens.unsqueeze(1), state, enc)
        return torch.log_softmax(logits.squeeze(1).float(), dim=-1), state, attn.squeeze(1)

    def forward(self, src, src_lengths, tgt_in):
        """Teacher-forced logits (batch, tgt_len, vocab) for the whole target in one pass."""
        enc = self.encode(src, src_lengths)
        logits, _, _ = self.decode(tgt_in, self.init_state(enc), enc)
        return logits
