"""Greedy and batched beam search over the model interface (encode / init_state / decode_step / reorder)."""

from __future__ import annotations

import torch


def output_limits(src_lengths: torch.Tensor, max_len_a: float, max_len_b: int) -> torch.Tensor:
    """Most output tokens (EOS excluded) allowed per sentence: a * source length + b. (batch,) long."""
    return (src_lengths.float() * max_len_a + max_len_b).long().clamp(min=1)


def _constrain(log_probs, step: int, limits, specials):
    """Never emit pad or bos; emit only EOS once a sentence has reached its length limit.

    log_probs: (rows, vocab); limits: (rows,). Returns a new tensor.
    """
    log_probs = log_probs.clone()
    log_probs[:, [specials.pad, specials.bos]] = float("-inf")
    at_limit = step >= limits
    eos_only = torch.full_like(log_probs[0], float("-inf"))
    eos_only[specials.eos] = 0.0
    return torch.where(at_limit.unsqueeze(1), eos_only, log_probs)


def _strip(tokens: torch.Tensor, eos: int) -> list[list[int]]:
    """(batch, steps) -> lists of ids cut before the first EOS."""
    out = []
    for row in tokens.tolist():
        out.append(row[: row.index(eos)] if eos in row else row)
    return out


@torch.no_grad()
def greedy_search(model, src, src_lengths, specials, max_len_a: float = 1.5, max_len_b: int = 10):
    """Batched greedy decoding. src: (batch, src_len) -> list of output id lists (no EOS)."""
    enc = model.encode(src, src_lengths)
    state = model.init_state(enc)
    limits = output_limits(src_lengths, max_len_a, max_len_b)
    steps = int(limits.max()) + 1
    tokens = torch.full((src.size(0), steps), specials.pad, dtype=torch.long, device=src.device)
    prev = torch.full((src.size(0),), specials.bos, dtype=torch.long, device=src.device)
    finished = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
    for step in range(steps):
        log_probs, state, _ = model.decode_step(prev, state, enc)
        prev = _constrain(log_probs, step, limits, specials).argmax(dim=-1).masked_fill(finished, specials.eos)
        tokens[:, step] = prev
        finished |= prev == specials.eos
        if finished.all():
            break
    return _strip(tokens, specials.eos)


def length_penalty(length: int, alpha: float) -> float:
    """GNMT length normalisation ((5 + length) / 6) ** alpha (Wu et al., 2016)."""
    return ((5.0 + length) / 6.0) ** alpha


@torch.no_grad()
def beam_search(
    model, src, src_lengths, specials, beam_size=5, alpha=1.0, max_len_a=1.5, max_len_b=10
):
    """Batched beam search over sentences x beams. src: (batch, src_len) -> list of best output id lists.

    A hypothesis is finished when it emits EOS among the top `beam_size` candidates; a sentence is done when it has
    `beam_size` finished hypotheses; the best by score / length_penalty wins.
    """
    batch, k = src.size(0), beam_size
    device = src.device
    enc = model.encode(src, src_lengths)
    state = model.init_state(enc)
    expand = torch.arange(batch, device=device).repeat_interleave(k)
    enc, state = enc.reorder(expand), state.reorder(expand)
    limits = output_limits(src_lengths, max_len_a, max_len_b).repeat_interleave(k)
    steps = int(limits.max()) + 1

    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: keep one alive so that the first step yields k distinct ones
    tokens = torch.full((batch * k, steps), specials.pad, dtype=torch.long, device=device)
    prev = torch.full((batch * k,), specials.bos, dtype=torch.long, device=device)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    rows = torch.arange(batch, device=device).unsqueeze(1) * k

    for step in range(steps):
        log_probs, state, _ = model.decode_step(prev, state, enc)
        log_probs = _constrain(log_probs, step, limits, specials)
        vocab = log_probs.size(-1)
        candidates = (scores.view(-1, 1) + log_probs).view(batch, k * vocab)
        top_scores, top_index = candidates.topk(min(2 * k, k * vocab), dim=1)
        beam_of, token = top_index // vocab, top_index % vocab
        is_eos = token == specials.eos

        ended = is_eos[:, :k] & ~done.unsqueeze(1) & torch.isfinite(top_scores[:, :k])
        if ended.any():
            for b, rank in ended.nonzero().tolist():
                hyp = tokens[b * k + beam_of[b, rank], :step].tolist()
                finished[b].append((top_scores[b, rank].item() / length_penalty(step + 1, alpha), hyp))
            done |= torch.tensor([len(f) >= k for f in finished], device=device)
            if done.all():
                break

        # Follow the k best candidates that did not end: EOS candidates are pushed behind all others.
        order = torch.arange(top_scores.size(1), device=device).expand_as(top_scores) + is_eos * top_scores.size(1)
        keep = order.topk(k, dim=1, largest=False).indices
        scores = top_scores.gather(1, keep)
        source_rows = (rows + beam_of.gather(1, keep)).view(-1)
        tokens = tokens.index_select(0, source_rows)
        prev = token.gather(1, keep).view(-1)
        tokens[:, step] = prev
        state = state.reorder(source_rows)

    return [max(hyps)[1] if hyps else [] for hyps in finished]


def search(model, src, src_lengths, specials, cfg):
    """Decode a batch with the search that `cfg` (a SearchConfig) selects: greedy for beam_size 1."""
    if cfg.beam_size == 1:
        return greedy_search(model, src, src_lengths, specials, cfg.max_len_a, cfg.max_len_b)
    return beam_search(
        model, src, src_lengths, specials, cfg.beam_size, cfg.length_penalty, cfg.max_len_a, cfg.max_len_b
    )
