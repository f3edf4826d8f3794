"""Metrics: sacreBLEU and chrF with their signatures, teacher-forced loss, perplexity and token accuracy."""

from __future__ import annotations

import math

import numpy as np
import torch
from sacrebleu.metrics import BLEU, CHRF

from nmt.data.batching import TokenBatchSampler, collate
from nmt.decoding import translate_ids
from nmt.decoding.search import output_limits
from nmt.training.loss import sequence_loss


def corpus_scores(hypotheses: list[str], references: list[str]) -> dict:
    """Detokenized hypotheses vs one reference each -> BLEU and chrF with sacreBLEU signatures."""
    bleu, chrf = BLEU(), CHRF()
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


def free_running_failures(hypotheses, source_lengths, search_cfg) -> dict:
    """Shares of outputs that hit the length limit without emitting EOS, and that repeat a token 4+ times in a row.

    hypotheses: token lists (EOS excluded); source_lengths: their sources' lengths. These are the symptoms of
    exposure bias that teacher-forced accuracy does not show.
    """
    limits = output_limits(torch.as_tensor(source_lengths), search_cfg.max_len_a, search_cfg.max_len_b).tolist()
    no_eos = sum(len(tokens) >= limit for tokens, limit in zip(hypotheses, limits, strict=True))
    repeats = sum(any(len(set(t[i : i + 4])) == 1 for i in range(len(t) - 3)) for t in hypotheses)
    n = max(len(hypotheses), 1)
    return {"no_eos_rate": no_eos / n, "repeat_rate": repeats / n}


def perplexity(nll_per_token: float) -> float:
    return math.exp(min(nll_per_token, 100.0))  # capped: an untrained model's exp would overflow


@torch.no_grad()
def teacher_forced_metrics(model, corpus, specials, max_tokens: int, device) -> dict:
    """Loss (NLL per token, no smoothing), perplexity and token accuracy with gold previous tokens."""
    model.eval()
    sampler = TokenBatchSampler(corpus.src_lengths(), corpus.tgt_lengths(), max_tokens, shuffle=False)
    nll = torch.zeros((), device=device)
    tokens = torch.zeros((), device=device, dtype=torch.long)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for indices in sampler.batches(0):
        batch = collate(corpus, indices, specials).to(device)
        out = sequence_loss(model(batch.src, batch.src_lengths, batch.tgt_in), batch.tgt_out, specials.pad)
        nll += out.nll_sum
        tokens += out.n_tokens
        correct += out.n_correct
    n = max(int(tokens), 1)
    loss = float(nll) / n
    return {"loss": loss, "ppl": perplexity(loss), "acc": float(correct) / n, "tokens": int(tokens)}


def evaluate_split(model, data, split: str, search_cfg, max_tokens: int, device, max_sentences=None) -> dict:
    """Teacher-forced metrics and decoded BLEU/chrF on a prepared split (or `max_sentences` spread over it).

    Returns the metrics plus "sources", "hypotheses" and "references" (detokenized text).
    """
    corpus, examples = data.splits[split], data.texts[split]
    if max_sentences is not None and max_sentences < len(corpus):
        # Evenly spaced, not the first n: corpora such as Tatoeba are sorted by length.
        keep = np.linspace(0, len(corpus) - 1, max_sentences).round().astype(np.int64)
        corpus, examples = corpus.select(keep), [examples[i] for i in keep]
    specials = data.tokenizer.specials
    metrics = teacher_forced_metrics(model, corpus, specials, max_tokens, device)
    sources = [corpus.src_ids(i) for i in range(len(corpus))]
    best = [hyps[0].tokens for hyps in translate_ids(model, sources, specials, search_cfg, device)]
    metrics.update(free_running_failures(best, [len(s) for s in sources], search_cfg))
    hypotheses = [data.tokenizer.decode_tgt(tokens) for tokens in best]
    references = [ex.tgt for ex in examples]
    metrics.update(corpus_scores(hypotheses, references))
    metrics.update(sources=[ex.src for ex in examples], hypotheses=hypotheses, references=references)
    metrics.update(source_ids=sources, hypothesis_ids=best)
    return metrics
