"""Memory-LSTM: an encoder-decoder for dialogue whose memory, an LSTM state, is carried from one turn to the next.

Per turn t of a session, the backbone encodes turn t into x (batch, src_len, dim); the memory reads x starting
from the state it carried out of turn t - 1, and the decoder produces turn t + 1 from what the memory makes of x.

- mode=sequence: the memory LSTM runs over x and gives m (batch, src_len, hidden); the decoder attends over
  y1 * (y2 + x) + x with y1 = sigmoid(W1 m) and y2 = W2 m, a gated residual: with the gate shut (y1 = 0) the
  model is exactly the backbone.
- mode=utterance (HRED, Serban et al., 2016): one memory step per turn over the masked mean of x; its gated output
  y1 * y2 (batch, dim) is added to the encoder's final state, which the LSTM decoder starts from (backbone
  lstm_attn), or to every memory position, the Transformer decoder's only view of the source.

The trainer (training/session.py), evaluation and nmt-translate carry the state and reset it per session;
encode() alone starts from an empty memory, which makes the model a plain single-turn encoder-decoder.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt.models.base import EncoderOut, LSTMState, run_lstm
from nmt.models.lstm_attn import LSTMAttention
from nmt.models.transformer import Transformer

BACKBONES = {"lstm_attn": LSTMAttention, "transformer": Transformer}


class TurnMemory(nn.Module):
    """The LSTM whose state (h, c), each (1, batch, hidden), persists across turns, and the gate W1 and value W2.

    x: (batch, src_len, dim), mask: (batch, src_len) bool, src_lengths: (batch,)
    returns y1 = sigmoid(W1 m) and y2 = W2 m, both (batch, src_len, dim) in sequence mode and (batch, 1, dim) in
    utterance mode, and the new state
    """

    def __init__(self, dim: int, hidden_size: int, mode: str):
        super().__init__()
        self.mode = mode
        self.hidden_size = hidden_size
        self.rnn = nn.LSTM(dim, hidden_size, batch_first=True)
        self.gate = nn.Linear(hidden_size, dim)  # W1
        self.value = nn.Linear(hidden_size, dim)  # W2

    def initial_state(self, batch: int, device) -> LSTMState:
        """The empty memory a session starts from: zeros (1, batch, hidden)."""
        zeros = torch.zeros(1, batch, self.hidden_size, device=device)
        return LSTMState(zeros, zeros)

    def forward(self, x, mask, src_lengths, state: LSTMState):
        if self.mode == "sequence":
            # Packed, so that the state carried to the next turn is the one after the last real token.
            lengths = src_lengths.clamp(min=1).cpu()
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, state = run_lstm(self.rnn, packed, state)
            m, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        else:
            weights = mask.unsqueeze(-1).to(x.dtype)
            pooled = (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
            m, state = run_lstm(self.rnn, pooled.unsqueeze(1), state)
        return torch.sigmoid(self.gate(m)), self.value(m), state


class MemoryLSTM(nn.Module):
    """A backbone encoder-decoder (cfg.backbone: transformer or lstm_attn) with a TurnMemory between its halves.

    Decoding is the backbone's: search and teacher forcing run on `model.backbone` with the EncoderOut that
    read_turn() returns.
    """

    def __init__(self, cfg, src_vocab_size: int, tgt_vocab_size: int, pad_id: int, joint_vocab: bool = False):
        super().__init__()
        backbone_cfg = cfg[cfg.backbone]
        self.backbone = BACKBONES[cfg.backbone](backbone_cfg, src_vocab_size, tgt_vocab_size, pad_id, joint_vocab)
        self.enabled = cfg.memory.enabled
        dim = backbone_cfg.d_model if cfg.backbone == "transformer" else backbone_cfg.hidden_size
        self.memory = TurnMemory(dim, cfg.memory.hidden_size, cfg.memory.mode)

    def initial_memory(self, batch: int, device) -> LSTMState:
        return self.memory.initial_state(batch, device)

    def read_turn(self, src, src_lengths, memory: LSTMState) -> tuple[EncoderOut, LSTMState]:
        """Encode one turn through the memory. src: (batch, src_len), memory: (1, batch, hidden) each.

        Returns what the decoder attends to, and the memory to carry to the next turn.
        """
        enc = self.backbone.encode_source(src, src_lengths)
        if not self.enabled:
            return self.backbone.with_cache(enc), memory
        gate, value, memory = self.memory(enc.memory, enc.mask, src_lengths, memory)
        if self.memory.mode == "sequence":
            enc = EncoderOut(gate * (value + enc.memory) + enc.memory, enc.mask, final=enc.final)
        elif enc.final is not None:
            context = (gate * value).transpose(0, 1)  # (1, batch, dim): added to every layer's final h
            enc = EncoderOut(enc.memory, enc.mask, final=LSTMState(enc.final.h + context, enc.final.c))
        else:
            enc = EncoderOut(enc.memory + gate * value, enc.mask)
        return self.backbone.with_cache(enc), memory

    # The single-turn interface (an empty memory every time): search, nmt-doctor and pair evaluation use it.

    def encode(self, src, src_lengths) -> EncoderOut:
        enc, _ = self.read_turn(src, src_lengths, self.initial_memory(src.size(0), src.device))
        return enc

    def init_state(self, enc: EncoderOut):
        return self.backbone.init_state(enc)

    def decode(self, tgt_in, state, enc: EncoderOut):
        return self.backbone.decode(tgt_in, state, enc)

    def decode_step(self, prev_tokens, state, enc: EncoderOut, need_weights: bool = False):
        return self.backbone.decode_step(prev_tokens, state, enc, need_weights)

    def forward(self, src, src_lengths, tgt_in):
        """Teacher-forced logits (batch, tgt_len, vocab) of one turn from an empty memory."""
        enc = self.encode(src, src_lengths)
        return self.backbone.decode(tgt_in, self.backbone.init_state(enc), enc)[0]
