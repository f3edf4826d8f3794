"""Label-smoothed cross-entropy over target tokens, padding ignored, safe on all-padding batches."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LossOut:
    """loss: mean smoothed loss per real token (backward on this); the rest are sums, detached, for metrics."""

    loss: torch.Tensor
    nll_sum: torch.Tensor
    n_tokens: torch.Tensor
    n_correct: torch.Tensor


def sequence_loss(logits, target, pad_id: int, label_smoothing: float = 0.0) -> LossOut:
    """logits: (batch, tgt_len, vocab), target: (batch, tgt_len).

    The smoothed loss mixes the gold token's NLL with the mean NLL over the vocabulary; the sums are divided by
    the real-token count clamped to 1, so a batch of only padding gives 0, not 0/0.
    Metrics stay tensors: reading them every step would force a device sync.
    """
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    mask = target != pad_id
    nll = -log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    per_token = (1.0 - label_smoothing) * nll - label_smoothing * log_probs.mean(dim=-1)
    n_tokens = mask.sum()
    loss = per_token.masked_fill(~mask, 0.0).sum() / n_tokens.clamp(min=1)
    with torch.no_grad():
        nll_sum = nll.masked_fill(~mask, 0.0).sum()
        n_correct = ((log_probs.argmax(dim=-1) == target) & mask).sum()
    return LossOut(loss, nll_sum, n_tokens, n_correct)
