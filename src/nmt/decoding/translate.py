"""Translate many sentences: batches of similar source length, search, original order restored."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nmt.data.batching import pad_sequences
from nmt.decoding.search import Hypothesis, search


@torch.no_grad()
def translate_ids(model, sources: Sequence[Sequence[int]], specials, cfg, device) -> list[list[Hypothesis]]:
    """sources: token-id sequences (no BOS/EOS) -> the n-best hypotheses of each, in the same order.

    cfg: a SearchConfig."""
    model.eval()
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    outputs: list[list[Hypothesis]] = [[] for _ in sources]
    for start in range(0, len(order), cfg.batch_size):
        chunk = order[start : start + cfg.batch_size]
        src, lengths = pad_sequences([sources[i] for i in chunk], specials.pad)
        hyps = search(model, src.to(device), lengths.to(device), specials, cfg)
        for i, hyp in zip(chunk, hyps, strict=True):
            outputs[i] = hyp
    return outputs


def translate_texts(model, tokenizer, texts: Sequence[str], cfg, device) -> list[list[tuple[str, float]]]:
    """Normalised sentences -> their n-best (detokenized translation, score) pairs, best first."""
    outputs = translate_ids(model, tokenizer.encode_src(list(texts)), tokenizer.specials, cfg, device)
    return [[(tokenizer.decode_tgt(h.tokens), h.score) for h in hyps] for hyps in outputs]
