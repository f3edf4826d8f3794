"""Attention over the encoder memory: dot, general (Luong) and additive (Bahdanau) scores."""

from __future__ import annotations

import torch
from torch import nn


class Attention(nn.Module):
    """Scores every query against every memory position and returns the weighted context.

    query:  (batch, tgt_len, query_dim)
    memory: (batch, src_len, memory_dim)
    mask:   (batch, src_len) bool, True at real positions
    returns context (batch, tgt_len, memory_dim), weights (batch, tgt_len, src_len)
    """

    def __init__(self, kind: str, query_dim: int, memory_dim: int):
        super().__init__()
        self.kind = kind
        if kind == "dot":
            if query_dim != memory_dim:
                raise ValueError(f"dot attention needs equal sizes, got query {query_dim}, memory {memory_dim}")
        elif kind == "general":
            self.proj = nn.Linear(memory_dim, query_dim, bias=False)
        elif kind == "bahdanau":
            self.query_proj = nn.Linear(query_dim, query_dim, bias=False)
            self.memory_proj = nn.Linear(memory_dim, query_dim, bias=True)
            self.v = nn.Linear(query_dim, 1, bias=False)
        else:
            raise ValueError(f"unknown attention '{kind}': choose dot, general or bahdanau")

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        """Project the memory once per sentence; decoding steps reuse it."""
        if self.kind == "general":
            return self.proj(memory)
        if self.kind == "bahdanau":
            return self.memory_proj(memory)
        return memory

    def forward(self, query, memory, mask, keys=None):
        keys = self.keys(memory) if keys is None else keys
        if self.kind == "bahdanau":
            # (batch, tgt, 1, dim) + (batch, 1, src, dim): additive scores for every pair
            scores = self.v(torch.tanh(self.query_proj(query).unsqueeze(2) + keys.unsqueeze(1))).squeeze(-1)
        else:
            scores = torch.bmm(query, keys.transpose(1, 2))
        # A finite fill (not -inf) keeps a fully padded row at uniform weights instead of NaN.
        scores = scores.masked_fill(~mask.unsqueeze(1), torch.finfo(scores.dtype).min)
        # In fp32 under CPU autocast too, which would leave it in bf16 (CUDA's autocast runs softmax in fp32).
        weights = torch.softmax(scores, dim=-1, dtype=torch.float32)
        return torch.bmm(weights, memory), weights
