"""Transformer encoder-decoder (Vaswani et al., 2017), pre- or post-norm, with cached incremental decoding."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nmt.errors import UserError
from nmt.models.base import EncoderOut

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


@dataclass
class TransformerState:
    """Decoder self-attention cache: one entry per decoder layer, covering every target position decoded so far.

    keys, values: per layer (batch, heads, steps, d_head)
    steps:        target positions decoded so far, hence the position of the next token
    """

    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    steps: int

    def reorder(self, index: torch.Tensor) -> TransformerState:
        return TransformerState(
            tuple(k.index_select(0, index) for k in self.keys),
            tuple(v.index_select(0, index) for v in self.values),
            self.steps,
        )


class SinusoidalPositions(nn.Module):
    """Fixed position encodings: sin at even dimensions, cos at odd ones. positions: (len,) -> (len, dim)"""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, positions):
        # Computed on the fly in float32: no length limit, and half-precision angles would be far off.
        exponents = torch.arange(0, self.dim, 2, device=positions.device, dtype=torch.float32) / self.dim
        angles = positions.float().unsqueeze(1) * torch.pow(10000.0, -exponents)
        return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)[:, : self.dim]


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention: encoder self-, causal decoder self- and cross-attention.

    Keys and values are projected separately (keys_values) so that callers can cache them.
    x:            (batch, q_len, d_model) the queries' inputs
    keys, values: (batch, heads, kv_len, d_head)
    mask:         bool, broadcastable to (batch, heads, q_len, kv_len), True where a query may attend
    returns (batch, q_len, d_model) and, if need_weights, the weights averaged over heads (batch, q_len, kv_len)
    """

    def __init__(self, d_model: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def split_heads(self, x):
        """(batch, len, d_model) -> (batch, heads, len, d_head)"""
        batch, length, _ = x.shape
        return x.view(batch, length, self.heads, -1).transpose(1, 2)

    def keys_values(self, x):
        """x: (batch, len, d_model) -> keys, values (batch, heads, len, d_head)"""
        return self.split_heads(self.key(x)), self.split_heads(self.value(x))

    def forward(self, x, keys, values, mask, need_weights: bool = False):
        q = self.split_heads(self.query(x))
        weights = None
        # By hand when the weights are wanted (attention plots), and in half precision on CPU, where the fused
        # kernel's backward runs ~8x slower than these plain products on short sentences (fp32: 2x faster).
        if need_weights or (q.device.type == "cpu" and q.dtype != torch.float32):
            scores = q @ keys.transpose(-2, -1) / math.sqrt(q.size(-1))
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            # CPU autocast leaves softmax in bf16 (CUDA's runs it in fp32): 8 bits of mantissa for the weights.
            probs = scores.softmax(dim=-1, dtype=torch.float32)
            out = F.dropout(probs, self.dropout, self.training).to(values.dtype) @ values
            weights = probs.mean(dim=1) if need_weights else None
        else:
            p = self.dropout if self.training else 0.0
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, dropout_p=p)
        batch, _, length, _ = out.shape
        return self.out(out.transpose(1, 2).reshape(batch, length, -1)), weights


class Residual(nn.Module):
    """A residual connection with its LayerNorm: x + f(LN(x)) when pre-norm, LN(x + f(x)) when post-norm.

    A layer feeds input(x) to its sublayer f, then add(x, f's output).
    """

    def __init__(self, d_model: int, dropout: float, pre_norm: bool):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.pre_norm = pre_norm

    def input(self, x):
        return self.norm(x) if self.pre_norm else x

    def add(self, x, out):
        x = x + self.dropout(out)
        return x if self.pre_norm else self.norm(x)


def feed_forward(cfg) -> nn.Sequential:
    """Position-wise feed-forward block: (..., d_model) -> (..., d_model)"""
    return nn.Sequential(
        nn.Linear(cfg.d_model, cfg.ffn_dim),
        _ACTIVATIONS[cfg.activation](),
        nn.Dropout(cfg.dropout),
        nn.Linear(cfg.ffn_dim, cfg.d_model),
    )


class EncoderLayer(nn.Module):
    """Self-attention over the source, then feed-forward. x: (batch, src_len, d_model), mask: (batch, 1, 1, src_len)"""

    def __init__(self, cfg):
        super().__init__()
        pre_norm = cfg.norm == "pre"
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.heads, cfg.attention_dropout)
        self.self_res = Residual(cfg.d_model, cfg.dropout, pre_norm)
        self.ffn = feed_forward(cfg)
        self.ffn_res = Residual(cfg.d_model, cfg.dropout, pre_norm)

    def forward(self, x, mask):
        h = self.self_res.input(x)
        k, v = self.self_attn.keys_values(h)
        out, _ = self.self_attn(h, k, v, mask)
        x = self.self_res.add(x, out)
        return self.ffn_res.add(x, self.ffn(self.ffn_res.input(x)))


class DecoderLayer(nn.Module):
    """Causal self-attention over the target so far, cross-attention to the source, then feed-forward.

    x:                    (batch, new_len, d_model) the new target positions only
    past_k, past_v:       (batch, heads, past_len, d_head) cached self-attention keys and values
    causal:               (new_len, past_len + new_len) bool, or None when every position may attend to all
    memory_k, memory_v:   (batch, heads, src_len, d_head) the projected encoder memory
    memory_mask:          (batch, 1, 1, src_len) bool
    returns x, the self-attention keys and values of all past_len + new_len positions, cross-attention weights
    """

    def __init__(self, cfg):
        super().__init__()
        pre_norm = cfg.norm == "pre"
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.heads, cfg.attention_dropout)
        self.self_res = Residual(cfg.d_model, cfg.dropout, pre_norm)
        self.cross_attn = MultiHeadAttention(cfg.d_model, cfg.heads, cfg.attention_dropout)
        self.cross_res = Residual(cfg.d_model, cfg.dropout, pre_norm)
        self.ffn = feed_forward(cfg)
        self.ffn_res = Residual(cfg.d_model, cfg.dropout, pre_norm)

    def forward(self, x, past_k, past_v, causal, memory_k, memory_v, memory_mask, need_weights=False):
        h = self.self_res.input(x)
        k, v = self.self_attn.keys_values(h)
        k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
        out, _ = self.self_attn(h, k, v, causal)
        x = self.self_res.add(x, out)
        out, weights = self.cross_attn(self.cross_res.input(x), memory_k, memory_v, memory_mask, need_weights)
        x = self.cross_res.add(x, out)
        x = self.ffn_res.add(x, self.ffn(self.ffn_res.input(x)))
        return x, k, v, weights


class Transformer(nn.Module):
    """Embeddings plus positions, a stack of encoder layers, a stack of decoder layers, an output projection.

    The decoder keeps every layer's self-attention keys and values (TransformerState), so a decoding step runs
    only the new token through the layers; the cross-attention keys and values are projected once per sentence.
    """

    # Xavier init reads this; no Linear layer here feeds a tanh.
    tanh_layers = ()
    # Teacher forcing below 1 takes two parallel passes, not a step-by-step loop (training/teacher_forcing.py).
    recurrent = False

    def __init__(self, cfg, src_vocab_size: int, tgt_vocab_size: int, pad_id: int, joint_vocab: bool = False):
        super().__init__()
        if cfg.d_model % cfg.heads:
            raise ValueError(f"d_model {cfg.d_model} does not divide into {cfg.heads} heads")
        share_all = cfg.share_embeddings and joint_vocab
        if share_all and src_vocab_size != tgt_vocab_size:
            raise ValueError(f"a joint vocabulary needs equal sizes, got {src_vocab_size} and {tgt_vocab_size}")
        self.d_model = cfg.d_model
        self.heads = cfg.heads
        self.pad_id = pad_id

        self.tgt_embed = nn.Embedding(tgt_vocab_size, cfg.d_model, padding_idx=pad_id)
        self.src_embed = self.tgt_embed if share_all else nn.Embedding(src_vocab_size, cfg.d_model, padding_idx=pad_id)
        if cfg.positions == "learned":
            self.positions = nn.Embedding(cfg.max_positions, cfg.d_model)
        else:
            self.positions = SinusoidalPositions(cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.decoder_layers))
        # Pre-norm leaves each stack's output un-normalised (a sum of residuals): a final LayerNorm fixes that.
        pre_norm = cfg.norm == "pre"
        self.encoder_norm = nn.LayerNorm(cfg.d_model) if pre_norm else nn.Identity()
        self.decoder_norm = nn.LayerNorm(cfg.d_model) if pre_norm else nn.Identity()
        # No bias (as in Vaswani et al.): the output layer is a plain projection, the target embedding when tied.
        self.output = nn.Linear(cfg.d_model, tgt_vocab_size, bias=False)
        if cfg.share_embeddings:
            self.output.weight = self.tgt_embed.weight

    def reset_embeddings(self):
        """Embeddings ~ N(0, d_model ** -0.5), unit variance once scaled by sqrt(d_model); padding rows zero.

        xavier_init (nmt/models/init.py) calls this after initialising everything else."""
        for module in self.modules():
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=self.d_model**-0.5)
                if module.padding_idx is not None:
                    nn.init.zeros_(module.weight[module.padding_idx])

    def embed(self, tokens, table: nn.Embedding, start: int = 0):
        """tokens: (batch, len) -> (batch, len, d_model): scaled embeddings plus positions start, start + 1, ..."""
        end = start + tokens.size(1)
        if isinstance(self.positions, nn.Embedding) and end > self.positions.num_embeddings:
            raise UserError(
                f"a sequence of {end} tokens is longer than the {self.positions.num_embeddings} learned positions"
                " (model.max_positions) — shorten the input or lower max_len_a/max_len_b, or train with"
                " model.positions=sinusoidal or a larger model.max_positions"
            )
        positions = torch.arange(start, end, device=tokens.device)
        x = table(tokens) * math.sqrt(self.d_model)
        return self.dropout(x + self.positions(positions).to(x.dtype))

    def encode(self, src, src_lengths) -> EncoderOut:
        """src: (batch, src_len), src_lengths: (batch,)"""
        return self.with_cache(self.encode_source(src, src_lengths))

    def encode_source(self, src, src_lengths) -> EncoderOut:
        """The encoder stack's output memory (batch, src_len, d_model) and mask, without the decoder's cache."""
        mask = src != self.pad_id
        mask[:, 0] |= src_lengths == 0  # an empty source attends to its first (pad) position, not to nothing
        attend = mask[:, None, None, :]
        x = self.embed(src, self.src_embed)
        for layer in self.encoder:
            x = layer(x, attend)
        return EncoderOut(self.encoder_norm(x), mask)

    def with_cache(self, enc: EncoderOut) -> EncoderOut:
        """enc with every decoder layer's cross-attention keys and values, (k_0, v_0, k_1, v_1, ...), each
        (batch, heads, src_len, d_head): beam search reorders them once, not at every step."""
        cache = tuple(t for layer in self.decoder for t in layer.cross_attn.keys_values(enc.memory))
        return EncoderOut(enc.memory, enc.mask, cache)

    def init_state(self, enc: EncoderOut) -> TransformerState:
        """An empty self-attention cache: (batch, heads, 0, d_head) per layer."""
        empty = enc.memory.new_zeros(enc.memory.size(0), self.heads, 0, self.d_model // self.heads)
        layers = len(self.decoder)
        return TransformerState((empty,) * layers, (empty,) * layers, 0)

    def decode_hidden(self, tgt_in, state: TransformerState, enc: EncoderOut, need_weights: bool = False):
        """Run the decoder over new target tokens, after the state.steps tokens already in the cache, up to the
        features the output layer reads.

        tgt_in: (batch, new_len) -> features (batch, new_len, d_model), new state, and if need_weights the last
        layer's cross-attention weights averaged over heads (batch, new_len, src_len), else None
        """
        new_len, past = tgt_in.size(1), state.steps
        x = self.embed(tgt_in, self.tgt_embed, start=past)
        # New position i sees the whole cache and the new positions up to itself: one new token sees everything.
        causal = None
        if new_len > 1:
            causal = torch.ones(new_len, past + new_len, dtype=torch.bool, device=x.device).tril(diagonal=past)
        memory_mask = enc.mask[:, None, None, :]
        layers = zip(self.decoder, state.keys, state.values, enc.cache[0::2], enc.cache[1::2], strict=True)
        keys, values = [], []
        for layer, past_k, past_v, memory_k, memory_v in layers:
            last = layer is self.decoder[-1]
            x, k, v, weights = layer(x, past_k, past_v, causal, memory_k, memory_v, memory_mask, need_weights and last)
            keys.append(k)
            values.append(v)
        return self.decoder_norm(x), TransformerState(tuple(keys), tuple(values), past + new_len), weights

    def decode(self, tgt_in, state: TransformerState, enc: EncoderOut, need_weights: bool = False):
        """tgt_in: (batch, new_len) -> logits (batch, new_len, vocab), new state, attention (see decode_hidden)"""
        features, state, weights = self.decode_hidden(tgt_in, state, enc, need_weights)
        return self.output(features), state, weights

    def decode_step(self, prev_tokens, state: TransformerState, enc: EncoderOut, need_weights: bool = False):
        """prev_tokens: (batch,) -> log_probs (batch, vocab), new state, attention (batch, src_len) if need_weights
        (the last layer's, averaged over heads; computed by hand, so search goes without) else None"""
        logits, state, attn = self.decode(prev_tokens.unsqueeze(1), state, enc, need_weights)
        return torch.log_softmax(logits.squeeze(1).float(), dim=-1), state, attn.squeeze(1) if need_weights else None

    def forward(self, src, src_lengths, tgt_in):
        """Teacher-forced logits (batch, tgt_len, vocab) for the whole target in one pass, causally masked."""
        enc = self.encode(src, src_lengths)
        logits, _, _ = self.decode(tgt_in, self.init_state(enc), enc)
        return logits
