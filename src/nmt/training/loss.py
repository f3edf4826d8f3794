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


class _SmoothedCrossEntropy(torch.autograd.Function):
    """Per-row loss (1 - eps) * NLL + eps * mean NLL over the vocabulary, with a hand-written gradient.

    The gradient of that loss w.r.t. the logits is softmax - (1 - eps) * onehot - eps / V, so the backward pass
    is two in-place updates over (rows, vocab) of the softmax's numerator exp(logits - max) that the forward pass
    saved, instead of the half-dozen full passes that autograd through log_softmax, gather and mean makes: the
    loss was ~40% of an LSTM step on CPU with an 8k vocabulary. The caller's logits are only read: the numerator
    is a buffer of the loss's own (for bf16 logits, their fp32 copy), so any producer of the logits may have kept
    them for its own backward.
    """

    @staticmethod
    def forward(ctx, logits, target, weight, eps: float):
        """logits: (rows, vocab) float, target: (rows,), weight: (rows,) float (0 at padding)."""
        copied = logits.dtype != torch.float32  # .float() below makes a copy that this loss may overwrite
        logits = logits.float()
        max_logit, argmax = logits.max(dim=-1)
        target_logit = logits.gather(1, target.unsqueeze(1)).squeeze(1)
        mean_logit = logits.mean(dim=-1)
        shifted = logits.sub_(max_logit.unsqueeze(1)) if copied else logits - max_logit.unsqueeze(1)
        numerator = shifted.exp_()
        sum_exp = numerator.sum(dim=-1)
        log_z = sum_exp.log() + max_logit
        nll = log_z - target_logit
        ctx.save_for_backward(numerator, sum_exp, target, weight)
        ctx.eps = eps
        ctx.mark_non_differentiable(nll, argmax)
        return ((1.0 - eps) * nll + eps * (log_z - mean_logit)) * weight, nll, argmax

    @staticmethod
    def backward(ctx, grad_loss, _grad_nll, _grad_argmax):
        numerator, sum_exp, target, weight = ctx.saved_tensors
        scale = (grad_loss * weight).unsqueeze(1)  # (rows, 1)
        grad = numerator.mul_(scale / sum_exp.unsqueeze(1)).sub_(scale * (ctx.eps / numerator.size(1)))
        grad.scatter_add_(1, target.unsqueeze(1), -(1.0 - ctx.eps) * scale)
        return grad, None, None, None


def sequence_loss(logits, target, pad_id: int, label_smoothing: float = 0.0) -> LossOut:
    """logits: (batch, tgt_len, vocab), target: (batch, tgt_len).

    The sum over real tokens is divided by their count clamped to 1, so a batch of only padding gives 0, not 0/0.
    Metrics stay tensors: reading them every step would force a device sync.
    """
    vocab = logits.size(-1)
    target = target.reshape(-1)
    mask = target != pad_id
    per_token, nll, argmax = _SmoothedCrossEntropy.apply(
        logits.reshape(-1, vocab), target, mask.float(), label_smoothing
    )
    n_tokens = mask.sum()
    loss = per_token.sum() / n_tokens.clamp(min=1)
    with torch.no_grad():
        nll_sum = nll.masked_fill(~mask, 0.0).sum()
        n_correct = ((argmax == target) & mask).sum()
    return LossOut(loss, nll_sum, n_tokens, n_correct)
