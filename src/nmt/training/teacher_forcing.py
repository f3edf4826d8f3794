"""Teacher forcing: the schedule of the gold-token probability, and training with the model's own tokens fed back.

With probability eps (the schedule's ratio) the decoder reads the gold previous token, else its own prediction
(scheduled sampling, Bengio et al., 2015). At eps = 1 the whole target goes through the decoder in one call.
Below 1, recurrent models (`model.recurrent`) go step by step; the Transformer takes two passes
(Mihaylova & Martins, 2019): predictions from a teacher-forced pass without gradient, mixed with the gold tokens,
feed a second pass that carries the loss; both passes read one encoding of the source.
"""

from __future__ import annotations

import math

import torch


def tf_ratio(cfg, step: int, epoch: int) -> float:
    """eps_i for i = the optimizer step or the epoch (cfg.unit), clamped to [0, 1]. cfg: a TeacherForcingConfig."""
    i = step if cfg.unit == "step" else epoch
    if cfg.schedule == "constant":
        eps = cfg.ratio
    elif cfg.schedule == "linear":
        eps = max(cfg.min_ratio, cfg.k - cfg.c * i)
    elif cfg.schedule == "exponential":
        eps = cfg.k**i
    else:  # inverse_sigmoid
        eps = cfg.k / (cfg.k + math.exp(min(i / cfg.k, 700.0)))  # exp overflows past ~709
    return min(1.0, max(0.0, eps))


def _coins(cfg, ratio: float, shape, device) -> torch.Tensor:
    """(batch, steps) bool, True where the gold token is fed: one coin per token, or per step for the batch."""
    if cfg.coin == "token":
        return torch.rand(shape, device=device) < ratio
    return (torch.rand(shape[1], device=device) < ratio).expand(shape)  # step


@torch.no_grad()
def _choose(cfg, logits) -> torch.Tensor:
    """The model's own tokens from logits (..., vocab): argmax, or a sample from the softmax."""
    if cfg.feed == "argmax":
        return logits.argmax(dim=-1)
    flat = torch.softmax(logits.float().reshape(-1, logits.size(-1)), dim=-1)  # sample
    return torch.multinomial(flat, 1).view(logits.shape[:-1])


def _step_by_step(model, enc, tgt_in, gold, cfg) -> torch.Tensor:
    """Recurrent decoding that feeds back the model's own token where `gold` (batch, steps) is False.

    The decoder features go into one tensor allocated at the first step. Per step only a no-grad projection
    picks the token to feed back; the caller runs the output layer once over all steps.
    """
    state = model.init_state(enc)
    batch, steps = tgt_in.shape
    prev = tgt_in[:, :1]
    features = None
    for t in range(steps):
        out, state, _ = model.decode_hidden(prev, state, enc)
        if features is None:
            features = out.new_empty(batch, steps, out.size(-1))
        features[:, t] = out[:, 0]
        if t + 1 < steps:
            own = _choose(cfg, model.output(out[:, 0]))
            prev = torch.where(gold[:, t + 1], tgt_in[:, t + 1], own).unsqueeze(1)
    return features


def _teacher_forced(model, enc, tgt_in) -> torch.Tensor:
    return model.decode_hidden(tgt_in, model.init_state(enc), enc)[0]


def _two_pass(model, enc, tgt_in, gold, cfg) -> torch.Tensor:
    """Teacher-forced predictions (no gradient) mixed with the gold tokens feed the pass that carries the loss."""
    with torch.no_grad():
        own = _choose(cfg, model.output(_teacher_forced(model, enc, tgt_in)))  # own[:, t] predicts position t + 1
    mixed = tgt_in.clone()
    mixed[:, 1:] = torch.where(gold[:, 1:], tgt_in[:, 1:], own[:, :-1])
    return _teacher_forced(model, enc, mixed)


def forced_features(model, enc, tgt_in, cfg, ratio: float) -> torch.Tensor:
    """The decoder features (batch, tgt_len, dim) that model.output turns into training logits, with gold tokens
    fed with probability `ratio`.

    enc: model.encode(src, src_lengths), or a memory-LSTM turn's EncoderOut with `model` its backbone.
    """
    if ratio >= 1.0:
        return _teacher_forced(model, enc, tgt_in)
    gold = _coins(cfg, ratio, tgt_in.shape, tgt_in.device)
    run = _step_by_step if model.recurrent else _two_pass
    return run(model, enc, tgt_in, gold, cfg)


def forced_logits(model, enc, tgt_in, cfg, ratio: float) -> torch.Tensor:
    """Training logits (batch, tgt_len, vocab): forced_features through the output layer."""
    return model.output(forced_features(model, enc, tgt_in, cfg, ratio))
