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


STOP_RULES = ("bound", "full_beam", "top_eos")


def check_search(cfg) -> None:
    """UserError unless cfg (a SearchConfig) names a stopping rule, an nbest that beam search can follow and a
    number of parallel batches."""
    if cfg.stop not in STOP_RULES:
        raise UserError(f"search.stop={cfg.stop}: not a stopping rule — use one of {', '.join(STOP_RULES)}")
    if not 1 <= cfg.nbest <= cfg.beam_size:
        raise UserError(f"nbest={cfg.nbest}: must be between 1 and beam_size={cfg.beam_size}")
    if cfg.parallel_batches < 0:
        raise UserError(
            f"parallel_batches={cfg.parallel_batches}: give the batches to decode at once (1 = one at a time) "
            "or 0 for one per CPU thread"
        )


def length_penalty(length: int, alpha: float) -> float:
    """GNMT length normalisation ((5 + length) / 6) ** alpha (Wu et al., 2016); alpha 0 gives 1."""
    return ((5.0 + length) / 6.0) ** alpha


def _constrain(log_probs, step: int, tokens, limits, specials, cfg):
    """What may come next, for each row of `tokens` (rows, steps), of which `step` columns are filled.

    Never pad or bos; only EOS once a row reaches its length limit; tokens already emitted have their
    log-probability multiplied by cfg.repetition_penalty (> 1 discourages them, CTRL-style); a token that would
    repeat an n-gram of size cfg.no_repeat_ngram_size is blocked. Changes and returns log_probs (rows, vocab), which
    decode_step made fresh for this step.
    """
    log_probs[:, specials.pad] = float("-inf")
    log_probs[:, specials.bos] = float("-inf")
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
    at_limit = (step >= limits).nonzero().squeeze(1)
    if at_limit.numel():
        log_probs[at_limit] = float("-inf")
        log_probs[at_limit, specials.eos] = 0.0
    return log_probs


def _finish(scores, tokens, step: int, alpha: float) -> list[Hypothesis]:
    """Hypotheses of rows whose EOS came at `step`: tokens (rows, steps) up to it, scores (rows,) normalised."""
    penalty = length_penalty(step + 1, alpha)
    return [Hypothesis(s / penalty, t) for s, t in zip(scores.tolist(), tokens[:, :step].tolist(), strict=True)]


@torch.no_grad()
def greedy_search(model, src, src_lengths, specials, cfg, enc=None) -> list[list[Hypothesis]]:
    """Batched greedy decoding. src: (batch, src_len); cfg: a SearchConfig. One hypothesis per sentence.

    enc: the source's EncoderOut when the caller has it (a dialogue turn read through the memory), else encoded here.
    A sentence leaves the batch at its EOS, so the last steps run only the longest outputs.
    """
    batch, device = src.size(0), src.device
    enc = model.encode(src, src_lengths) if enc is None else enc
    state = model.init_state(enc)
    limits = output_limits(src_lengths, cfg.max_len_a, cfg.max_len_b)
    steps = int(limits.max()) + 1
    tokens = torch.full((batch, steps), specials.pad, dtype=torch.long, device=device)
    scores = torch.zeros(batch, device=device)
    prev = torch.full((batch,), specials.bos, dtype=torch.long, device=device)
    alive = torch.arange(batch, device=device)  # the sentence of each row still decoding
    hyps: list[list[Hypothesis]] = [[] for _ in range(batch)]
    for step in range(steps):
        log_probs, state, _ = model.decode_step(prev, state, enc)
        best, prev = _constrain(log_probs, step, tokens, limits, specials, cfg).max(dim=-1)
        scores += best
        tokens[:, step] = prev
        ended = prev == specials.eos
        if ended.any():  # the length limits make every row end by the last step
            done = ended.nonzero().squeeze(1)
            ends = _finish(scores[done], tokens[done], step, cfg.length_penalty)
            for sentence, hyp in zip(alive[done].tolist(), ends, strict=True):
                hyps[sentence] = [hyp]
            going = (~ended).nonzero().squeeze(1)
            if not going.numel():
                break
            alive, prev, tokens, scores, limits = alive[going], prev[going], tokens[going], scores[going], limits[going]
            state, enc = state.reorder(going), enc.reorder(going)
    return hyps


@torch.no_grad()
def beam_search(model, src, src_lengths, specials, cfg, enc=None) -> list[list[Hypothesis]]:
    """Batched beam search over sentences x beams; the cfg.nbest best hypotheses per sentence, best first.

    enc: as for greedy_search.

    A hypothesis finishes when EOS is among the top `beam_size` candidates. When a sentence is done is cfg.stop:
    - "bound": once it has `beam_size` finished hypotheses and its best unfinished one, normalised at the earliest
      length it could finish with, scores below the worst of them. With length_penalty 0 that is exact
      (log-probabilities only fall as a hypothesis grows); with alpha > 0 a longer finish divides by a larger
      penalty and could still win, so it is a heuristic.
    - "full_beam": once it has `beam_size` finished hypotheses (fairseq's rule).
    - "top_eos": once the best candidate of a step is EOS and nbest hypotheses have finished (OpenNMT-py's rule);
      exact too for length_penalty 0 and nbest 1, and the fewest steps.
    Done sentences leave the batch.
    """
    check_search(cfg)
    batch, k, alpha = src.size(0), cfg.beam_size, cfg.length_penalty
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
    alive = torch.arange(batch, device=device)  # the sentence of each row of `scores`
    # The k-th best finished score of each alive sentence: -inf until it has k finished hypotheses.
    kth_best = torch.full((batch,), float("-inf"), device=device)
    n_finished = torch.zeros(batch, dtype=torch.long, device=device)
    beams = torch.arange(k, device=device)

    for step in range(steps):
        log_probs, state, _ = model.decode_step(prev, state, enc)
        log_probs = _constrain(log_probs, step, tokens, limits, specials, cfg)
        # The sentence's 2k best continuations are among each beam's own 2k best: rank those, not beams x vocab.
        width = min(2 * k, log_probs.size(-1))
        beam_top, beam_token = log_probs.topk(width, dim=1)
        candidates = (scores.view(-1, 1) + beam_top).view(-1, k * width)
        top_scores, top_index = candidates.topk(min(2 * k, k * width), dim=1)
        rows = torch.arange(top_scores.size(0), device=device).unsqueeze(1) * k
        beam_of, token = top_index // width, beam_token.view(-1, k * width).gather(1, top_index)
        is_eos = token == specials.eos

        ended = is_eos[:, :k] & torch.isfinite(top_scores[:, :k])
        if ended.any():
            b, rank = ended.nonzero().unbind(1)
            hyps = _finish(top_scores[b, rank], tokens[(rows + beam_of)[b, rank]], step, alpha)
            n_finished.index_add_(0, b, torch.ones_like(b))
            for row, hyp in zip(b.tolist(), hyps, strict=True):
                sentence = finished[alive[row]]
                sentence.append(hyp)
                if len(sentence) >= k:
                    kth_best[row] = sorted(sentence, reverse=True)[k - 1].score

        # Follow the k best candidates that did not end: EOS candidates are pushed behind all others.
        order = torch.arange(top_scores.size(1), device=device).expand_as(top_scores) + is_eos * top_scores.size(1)
        keep = order.topk(k, dim=1, largest=False).indices
        scores = top_scores.gather(1, keep)
        source_rows = rows + beam_of.gather(1, keep)
        prev = token.gather(1, keep).view(-1)

        if cfg.stop == "top_eos":
            done = ended[:, 0] & (n_finished >= cfg.nbest)
        elif cfg.stop == "full_beam":
            done = torch.isfinite(kth_best)
        else:
            done = torch.isfinite(kth_best) & (scores[:, 0] / length_penalty(step + 2, alpha) <= kth_best)
        if done.any():
            going = (~done).nonzero().squeeze(1)
            if not going.numel():
                break
            alive, scores, source_rows = alive[going], scores[going], source_rows[going]
            kth_best, n_finished = kth_best[going], n_finished[going]
            prev, limits = prev.view(-1, k)[going].view(-1), limits.view(-1, k)[going].view(-1)
            enc = enc.reorder((going.unsqueeze(1) * k + beams).view(-1))
        source_rows = source_rows.view(-1)
        tokens = tokens.index_select(0, source_rows)
        tokens[:, step] = prev
        state = state.reorder(source_rows)

    return [sorted(hyps, reverse=True)[: cfg.nbest] for hyps in finished]


def search(model, src, src_lengths, specials, cfg, enc=None) -> list[list[Hypothesis]]:
    """Decode a batch with the search that `cfg` (a SearchConfig) selects: greedy for beam_size 1."""
    if cfg.beam_size == 1:
        return greedy_search(model, src, src_lengths, specials, cfg, enc)
    return beam_search(model, src, src_lengths, specials, cfg, enc)
