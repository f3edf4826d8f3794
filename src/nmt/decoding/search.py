"""Greedy and batched beam search over the model interface (encode / init_state / decode_step / reorder)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nmt.errors import UserError


@dataclass(frozen=True, order=True)
class Hypothesis:
    """score: log-probability of tokens + EOS, divided by the length penalty; tokens exclude EOS."""

    score: float
    tokens: list[int]


def output_limits(src_lengths: torch.Tensor, max_len_a: float, max_len_b: int) -> torch.Tensor:
    """Most output tokens (EOS excluded) allowed per sentence: a * source length + b. (batch,) long."""
    return (src_lengths.float() * max_len_a + max_len_b).long().clamp(min=1)


def length_penalty(length: int, alpha: float) -> float:
    """GNMT length normalisation ((5 + length) / 6) ** alpha (Wu et al., 2016); alpha 0 gives 1."""
    return ((5.0 + length) / 6.0) ** alpha


def _constrain(log_probs, step: int, tokens, limits, specials, cfg):
    """What may come next, for each row of `tokens` (rows, steps), of which `step` columns are filled.

    Never pad or bos; only EOS once a row reaches its length limit; tokens already emitted have their
    log-probability multiplied by cfg.repetition_penalty (> 1 discourages them, CTRL-style); a token that would
    repeat an n-gram of size cfg.no_repeat_ngram_size is blocked. Returns a new (rows, vocab) tensor.
    """
    log_probs = log_probs.clone()
    log_probs[:, [specials.pad, specials.bos]] = float("-inf")
    history = tokens[:, :step]
    if cfg.repetition_penalty != 1.0 and step > 0:
        seen = torch.zeros_like(log_probs, dtype=torch.bool).scatter_(1, history, True)
        log_probs = torch.where(seen, log_probs * cfg.repetition_penalty, log_probs)
    n = cfg.no_repeat_ngram_size
    if n > 0 and step >= n:
        ngrams = history.unfold(1, n, 1)  # (rows, step - n + 1, n)
        # An n-gram whose first n-1 tokens equal the last n-1 emitted ones: its last token must not follow.
        repeats = (ngrams[:, :, :-1] == history[:, step - n + 1 :].unsqueeze(1)).all(dim=-1)
        blocked = torch.where(repeats, ngrams[:, :, -1], specials.pad)
        log_probs.scatter_(1, blocked, float("-inf"))
    eos_only = torch.full_like(log_probs[0], float("-inf"))
    eos_only[specials.eos] = 0.0
    return torch.where((step >= limits).unsqueeze(1), eos_only, log_probs)


@torch.no_grad()
def greedy_search(model, src, src_lengths, specials, cfg, enc=None) -> list[list[Hypothesis]]:
    """Batched greedy decoding. src: (batch, src_len); cfg: a SearchConfig. One hypothesis per sentence.

    enc: the source's EncoderOut when the caller has it (a dialogue turn read through the memory), else encoded here.
    """
    batch, device = src.size(0), src.device
    enc = model.encode(src, src_lengths) if enc is None else enc
    state = model.init_state(enc)
    limits = output_limits(src_lengths, cfg.max_len_a, cfg.max_len_b)
    steps = int(limits.max()) + 1
    tokens = torch.full((batch, steps), specials.pad, dtype=torch.long, device=device)
    scores = torch.zeros(batch, device=device)
    prev = torch.full((batch,), specials.bos, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    for step in range(steps):
        log_probs, state, _ = model.decode_step(prev, state, enc)
        best, prev = _constrain(log_probs, step, tokens, limits, specials, cfg).max(dim=-1)
        scores += best.masked_fill(finished, 0.0)
        prev = prev.masked_fill(finished, specials.eos)
        tokens[:, step] = prev
        finished |= prev == specials.eos
        if finished.all():
            break
    hyps = []
    for row, score in zip(tokens.tolist(), scores.tolist(), strict=True):
        out = row[: row.index(specials.eos)]
        hyps.append([Hypothesis(score / length_penalty(len(out) + 1, cfg.length_penalty), out)])
    return hyps


@torch.no_grad()
def beam_search(model, src, src_lengths, specials, cfg, enc=None) -> list[list[Hypothesis]]:
    """Batched beam search over sentences x beams; the cfg.nbest best hypotheses per sentence, best first.

    enc: as for greedy_search.

    A hypothesis finishes when EOS is among the top `beam_size` candidates. A sentence is done once it has
    `beam_size` finished hypotheses and its best unfinished one, normalised at the earliest length it could finish
    with, scores below the worst of them: it cannot win any more (log-probabilities only fall as it grows).
    """
    batch, k, alpha = src.size(0), cfg.beam_size, cfg.length_penalty
    if not 1 <= cfg.nbest <= k:
        raise UserError(f"nbest={cfg.nbest}: must be between 1 and beam_size={k}")
    device = src.device
    enc = model.encode(src, src_lengths) if enc is None else enc
    state = model.init_state(enc)
    expand = torch.arange(batch, device=device).repeat_interleave(k)
    enc, state = enc.reorder(expand), state.reorder(expand)
    limits = output_limits(src_lengths, cfg.max_len_a, cfg.max_len_b).repeat_interleave(k)
    steps = int(limits.max()) + 1

    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: keep one alive so that the first step yields k distinct ones
    tokens = torch.full((batch * k, steps), specials.pad, dtype=torch.long, device=device)
    prev = torch.full((batch * k,), specials.bos, dtype=torch.long, device=device)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    done = [False] * batch
    rows = torch.arange(batch, device=device).unsqueeze(1) * k

    for step in range(steps):
        log_probs, state, _ = model.decode_step(prev, state, enc)
        log_probs = _constrain(log_probs, step, tokens, limits, specials, cfg)
        vocab = log_probs.size(-1)
        candidates = (scores.view(-1, 1) + log_probs).view(batch, k * vocab)
        top_scores, top_index = candidates.topk(min(2 * k, k * vocab), dim=1)
        beam_of, token = top_index // vocab, top_index % vocab
        is_eos = token == specials.eos

        ended = is_eos[:, :k] & torch.isfinite(top_scores[:, :k])
        for b, rank in ended.nonzero().tolist():
            if not done[b]:
                hyp = tokens[b * k + beam_of[b, rank], :step].tolist()
                finished[b].append(Hypothesis(top_scores[b, rank].item() / length_penalty(step + 1, alpha), hyp))

        # Follow the k best candidates that did not end: EOS candidates are pushed behind all others.
        order = torch.arange(top_scores.size(1), device=device).expand_as(top_scores) + is_eos * top_scores.size(1)
        keep = order.topk(k, dim=1, largest=False).indices
        scores = top_scores.gather(1, keep)
        source_rows = (rows + beam_of.gather(1, keep)).view(-1)
        tokens = tokens.index_select(0, source_rows)
        prev = token.gather(1, keep).view(-1)
        tokens[:, step] = prev
        state = state.reorder(source_rows)

        best_alive = (scores[:, 0] / length_penalty(step + 2, alpha)).tolist()
        for b in range(batch):
            if not done[b] and len(finished[b]) >= k:
                done[b] = best_alive[b] <= sorted(finished[b], reverse=True)[k - 1].score
        if all(done):
            break

    return [sorted(hyps, reverse=True)[: cfg.nbest] for hyps in finished]


def search(model, src, src_lengths, specials, cfg, enc=None) -> list[list[Hypothesis]]:
    """Decode a batch with the search that `cfg` (a SearchConfig) selects: greedy for beam_size 1."""
    if cfg.beam_size == 1:
        return greedy_search(model, src, src_lengths, specials, cfg, enc)
    return beam_search(model, src, src_lengths, specials, cfg, enc)
