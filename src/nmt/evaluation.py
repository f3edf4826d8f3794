"""Metrics: sacreBLEU and chrF with their signatures, teacher-forced loss, perplexity and token accuracy; for
dialogue, the same over whole sessions with the memory carried (or reset), per turn position."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from sacrebleu.metrics import BLEU, CHRF

from nmt.data.batching import TokenBatchSampler, collate, collate_sessions, session_sampler
from nmt.decoding import translate_ids
from nmt.decoding.search import output_limits, search
from nmt.errors import UserError
from nmt.training.distributed import ONE_PROCESS, Ranks, gather_dealt, sum_over_ranks
from nmt.training.loss import sequence_loss
from nmt.training.session import read_session


def bleu_metric(tokenize: str = "13a") -> BLEU:
    """sacreBLEU's BLEU with the named tokenizer (data.bleu_tokenize). force=True: the "forgot to detokenize"
    warning that sacreBLEU gives for 100 outputs ending in " ." is wrong here (SentencePiece detokenizes the
    outputs; a data config such as Tatoeba's detaches punctuation in the references alike), and it filled the
    logs at every evaluation; the score and the signature are the same."""
    try:
        return BLEU(tokenize=tokenize, force=True)
    except Exception:  # sacreBLEU raises a bare Exception for an unknown name
        raise UserError(
            f"data.bleu_tokenize={tokenize}: not a sacreBLEU tokenizer — use 13a, zh, intl, char or none"
        ) from None


def corpus_scores(hypotheses: list[str], references: list[str], tokenize: str = "13a") -> dict:
    """Detokenized hypotheses vs one reference each -> BLEU (sacreBLEU tokenizer `tokenize`) and chrF with
    sacreBLEU signatures."""
    bleu, chrf = bleu_metric(tokenize), CHRF()
    bleu_score = bleu.corpus_score(hypotheses, [references])
    chrf_score = chrf.corpus_score(hypotheses, [references])
    bleu_signature, chrf_signature = str(bleu.get_signature()), str(chrf.get_signature())
    return {
        "bleu": bleu_score.score,
        "chrf": chrf_score.score,
        "bleu_signature": bleu_signature,
        "chrf_signature": chrf_signature,
        # sacreBLEU's own report lines, e.g. "BLEU|nrefs:1|...|version:2.6.0 = 35.2 66.1/41.0/27.3/18.6 (BP = ...)"
        "bleu_line": bleu_score.format(signature=bleu_signature),
        "chrf_line": chrf_score.format(signature=chrf_signature),
    }


def loops(tokens: list[int]) -> bool:
    """Whether the output is stuck in a loop: one token 4+ times in a row, or a phrase of 2 to 4 tokens 3+ times in
    a row ("I'm afraid I'm afraid I'm afraid")."""
    for n, times in ((1, 4), (2, 3), (3, 3), (4, 3)):
        span = n * times
        for i in range(len(tokens) - span + 1):
            if tokens[i : i + span] == tokens[i : i + n] * times:
                return True
    return False


def free_running_failures(hypotheses, source_lengths, search_cfg) -> dict:
    """Shares of outputs that hit the length limit without emitting EOS, and that loop (see loops()).

    hypotheses: token lists (EOS excluded); source_lengths: their sources' lengths. These are the symptoms of
    exposure bias that teacher-forced accuracy does not show.
    """
    limits = output_limits(torch.as_tensor(source_lengths), search_cfg.max_len_a, search_cfg.max_len_b).tolist()
    no_eos = sum(len(tokens) >= limit for tokens, limit in zip(hypotheses, limits, strict=True))
    n = max(len(hypotheses), 1)
    return {"no_eos_rate": no_eos / n, "repeat_rate": sum(map(loops, hypotheses)) / n}


def is_degenerate(text: str) -> bool:
    """An output with no letter or digit (nothing, or only punctuation), or one word over and over."""
    words = text.split()
    return not any(ch.isalnum() for ch in text) or (len(words) >= 2 and len(set(words)) == 1)


def perplexity(nll_per_token: float) -> float:
    return math.exp(min(nll_per_token, 100.0))  # capped: an untrained model's exp would overflow


@torch.no_grad()
def teacher_forced_metrics(
    model, corpus, specials, max_tokens: int, device, ranks: Ranks = ONE_PROCESS, batch_sentences: int | None = None
) -> dict:
    """Loss (NLL per token, no smoothing), perplexity and token accuracy with gold previous tokens; under torchrun,
    of all the ranks' corpora together. Batches hold at most max_tokens padded positions and batch_sentences pairs."""
    model.eval()
    sampler = TokenBatchSampler.for_pairs(
        corpus.src_lengths(), corpus.tgt_lengths(), max_tokens, max_sentences=batch_sentences, order="sorted"
    )
    sums = torch.zeros(3, device=device, dtype=torch.float64)  # nll, tokens, correct
    for indices in sampler.batches(0):
        batch = collate(corpus, indices, specials).to(device)
        out = sequence_loss(model(batch.src, batch.src_lengths, batch.tgt_in), batch.tgt_out, specials.pad)
        sums += torch.stack([out.nll_sum.double(), out.n_tokens.double(), out.n_correct.double()])
    nll, tokens, correct = sum_over_ranks(sums, ranks).tolist()
    n = max(tokens, 1)
    return {"loss": nll / n, "ppl": perplexity(nll / n), "acc": correct / n, "tokens": int(tokens)}


def _spread(n: int, count: int | None) -> np.ndarray:
    """`count` evenly spaced positions out of n (all of them for None): corpora are often sorted by length."""
    if count is None or count >= n:
        return np.arange(n)
    return np.linspace(0, n - 1, max(count, 1)).round().astype(np.int64)


def evaluate_split(
    model,
    data,
    split: str,
    search_cfg,
    max_tokens: int,
    device,
    max_sentences=None,
    bleu_tokenize="13a",
    ranks: Ranks = ONE_PROCESS,
    batch_sentences=None,
) -> dict:
    """Teacher-forced metrics and decoded BLEU/chrF on a prepared split (or `max_sentences` spread over it); under
    torchrun each rank takes every world-th sentence and all ranks get the same metrics.

    Teacher-forced batches hold at most max_tokens padded positions and batch_sentences pairs: the trainer passes
    its training batch's limits, so that evaluation's logits are never larger than a training step's.

    Returns the metrics plus "sources", "hypotheses" and "references" (detokenized text).
    """
    corpus, examples = data.splits[split], data.texts[split]
    if max_sentences is not None and max_sentences < len(corpus):
        keep = _spread(len(corpus), max_sentences)
        corpus, examples = corpus.select(keep), [examples[i] for i in keep]
    mine = corpus.select(np.arange(ranks.rank, len(corpus), ranks.world)) if ranks.world > 1 else corpus
    specials = data.tokenizer.specials
    metrics = teacher_forced_metrics(model, mine, specials, max_tokens, device, ranks, batch_sentences)
    sources = [corpus.src_ids(i) for i in range(len(corpus))]
    my_nbest = translate_ids(model, sources[ranks.rank :: ranks.world], specials, search_cfg, device)
    best = gather_dealt([hyps[0].tokens for hyps in my_nbest], len(sources), ranks)
    metrics.update(free_running_failures(best, [len(s) for s in sources], search_cfg))
    hypotheses = [data.tokenizer.decode_tgt(tokens) for tokens in best]
    references = [ex.tgt for ex in examples]
    metrics["degenerate_rate"] = sum(map(is_degenerate, hypotheses)) / max(len(hypotheses), 1)
    metrics.update(corpus_scores(hypotheses, references, bleu_tokenize))
    metrics.update(sources=[ex.src for ex in examples], hypotheses=hypotheses, references=references)
    metrics.update(source_ids=sources, hypothesis_ids=best)
    return metrics


@torch.no_grad()
def evaluate_dialogue(
    model,
    data,
    split: str,
    search_cfg,
    max_tokens: int,
    device,
    max_sentences=None,
    bleu_tokenize="13a",
    reset_memory=False,
    positions=8,
    ranks: Ranks = ONE_PROCESS,
    batch_sentences=None,
) -> dict:
    """A memory-LSTM on whole sessions of a prepared dialogue split: teacher-forced loss/ppl/accuracy and decoded
    BLEU/chrF of every reply, the memory carried from turn to turn, or emptied before every turn (reset_memory).

    max_sentences: decode about that many replies, from sessions spread over the split; batch_sentences: at most
    that many sessions per batch. Besides evaluate_split's keys, "degenerate_rate" and "per_turn": one entry per
    turn position (1: the reply to a session's first turn; the last position pools all later ones) with its pairs,
    ppl and BLEU. Under torchrun each rank reads every world-th session and all ranks get the same metrics.
    """
    model.eval()
    offsets, corpus, examples = data.sessions[split], data.splits[split], data.texts[split]
    n_sessions = len(offsets) - 1
    # As many sessions as hold about max_sentences pairs on average.
    chosen = _spread(n_sessions, None if max_sentences is None else round(max_sentences * n_sessions / len(corpus)))
    pairs, chosen_offsets = _session_pairs(offsets, chosen)
    examples = [examples[i] for i in pairs]
    specials = data.tokenizer.specials
    turn_of = np.concatenate([np.arange(n) for n in np.diff(chosen_offsets)]).clip(max=positions - 1)  # (pairs,)
    my_pairs, my_offsets = _session_pairs(offsets, chosen[ranks.rank :: ranks.world])
    mine = corpus.select(my_pairs)
    sums = torch.zeros(3, positions, device=device, dtype=torch.float64)  # nll, tokens, correct per turn position
    my_best: list[list[int]] = [[] for _ in my_pairs]
    sampler = session_sampler(mine, my_offsets, max_tokens, max_sentences=batch_sentences, order="sorted")
    for sessions in sampler.batches(0):
        batch = collate_sessions(mine, my_offsets, sessions, specials).to(device)
        for t, turn, enc in read_session(model, batch, reset_memory=reset_memory):
            position = min(t, positions - 1)
            logits = model.backbone.decode(turn.tgt_in, model.backbone.init_state(enc), enc)[0]
            out = sequence_loss(logits, turn.tgt_out, specials.pad)
            sums[:, position] += torch.stack([out.nll_sum, out.n_tokens, out.n_correct]).double()
            hyps = search(model.backbone, turn.src, turn.src_lengths, specials, search_cfg, enc)
            for pair, nbest in zip(turn.indices.tolist(), hyps, strict=True):
                my_best[pair] = nbest[0].tokens
    nll, tokens, correct = sum_over_ranks(sums, ranks).cpu().numpy()
    by_session = gather_dealt([my_best[a:b] for a, b in itertools.pairwise(my_offsets)], len(chosen), ranks)
    best = [hyp for session in by_session for hyp in session]
    loss = float(nll.sum() / max(tokens.sum(), 1))  # plain floats: checkpoints store these scores
    hypotheses = [data.tokenizer.decode_tgt(t) for t in best]
    references = [ex.tgt for ex in examples]
    metrics = {"loss": loss, "ppl": perplexity(loss), "acc": float(correct.sum() / max(tokens.sum(), 1))}
    source_ids = [corpus.src_ids(i) for i in pairs]
    metrics.update(free_running_failures(best, list(map(len, source_ids)), search_cfg))
    metrics["degenerate_rate"] = sum(map(is_degenerate, hypotheses)) / max(len(hypotheses), 1)
    metrics.update(corpus_scores(hypotheses, references, bleu_tokenize))
    metrics["per_turn"] = []
    for p in range(positions):
        at = np.flatnonzero(turn_of == p)
        if len(at):
            chosen = [hypotheses[i] for i in at], [[references[i] for i in at]]
            bleu = bleu_metric(bleu_tokenize).corpus_score(*chosen).score
            ppl = perplexity(float(nll[p] / max(tokens[p], 1)))
            turn = f"{p + 1}+" if p == positions - 1 else str(p + 1)
            metrics["per_turn"].append({"turn": turn, "pairs": len(at), "ppl": ppl, "bleu": float(bleu)})
    metrics.update(sources=[ex.src for ex in examples], hypotheses=hypotheses, references=references)
    metrics.update(source_ids=source_ids, hypothesis_ids=best)
    return metrics


def _session_pairs(offsets: np.ndarray, sessions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pair indices of `sessions` (positions in a split whose session s holds pairs offsets[s]:offsets[s + 1]),
    in order, and the offsets of those sessions among them."""
    lengths = np.diff(offsets)[sessions]
    pairs = np.concatenate([np.arange(offsets[s], offsets[s + 1]) for s in sessions] or [np.zeros(0, np.int64)])
    return pairs, np.concatenate([[0], np.cumsum(lengths)])


def memory_value_lines(carried: dict, reset: dict) -> list[str]:
    """A table of evaluate_dialogue's results with the memory carried vs reset at every turn, overall and per turn
    position: the difference is what the memory is worth."""
    lines = [
        "memory carried vs reset at every turn (the difference is the memory's value):",
        f"  all turns ({sum(t['pairs'] for t in carried['per_turn'])} replies):"
        f" ppl {carried['ppl']:.2f} vs {reset['ppl']:.2f} | BLEU {carried['bleu']:.2f} vs {reset['bleu']:.2f}"
        f" | degenerate {100 * carried['degenerate_rate']:.1f}% vs {100 * reset['degenerate_rate']:.1f}%",
    ]
    for with_memory, without in zip(carried["per_turn"], reset["per_turn"], strict=True):
        lines.append(
            f"  turn {with_memory['turn']} ({with_memory['pairs']} replies): ppl {with_memory['ppl']:.2f} vs"
            f" {without['ppl']:.2f} | BLEU {with_memory['bleu']:.2f} vs {without['bleu']:.2f}"
        )
    return lines


def json_scores(m: dict) -> dict:
    """The JSON-able metrics of an evaluation (no texts)."""
    keys = (
        "loss",
        "ppl",
        "acc",
        "bleu",
        "chrf",
        "no_eos_rate",
        "repeat_rate",
        "degenerate_rate",
        "per_turn",
        "memory_reset",
        "bleu_signature",
        "chrf_signature",
    )
    return {k: m[k] for k in keys if k in m}
