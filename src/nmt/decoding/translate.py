"""Translate many sentences: batches of similar source length, search (several batches at once on a CPU),
original order restored."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

from nmt.data.batching import pad_sequences
from nmt.decoding.search import Hypothesis, search

MAX_AUTO_PARALLEL = 4  # more threads than this contend for Python's GIL between the small per-step operations


def parallel_batches(cfg, device, n_batches: int) -> int:
    """How many batches to decode at once: cfg.parallel_batches (0 = one per torch thread, at most
    MAX_AUTO_PARALLEL), never more than there are batches or torch threads; 1 off the CPU, where one batch keeps
    the accelerator busy."""
    if device.type != "cpu":
        return 1
    threads = torch.get_num_threads()
    wanted = cfg.parallel_batches or min(threads, MAX_AUTO_PARALLEL)
    return max(1, min(wanted, n_batches, threads))


@torch.no_grad()
def translate_ids(model, sources: Sequence[Sequence[int]], specials, cfg, device) -> list[list[Hypothesis]]:
    """sources: token-id sequences (no BOS/EOS) -> the n-best hypotheses of each, in the same order.

    cfg: a SearchConfig. On a CPU, cfg.parallel_batches batches are decoded at the same time by threads that each
    run torch on their share of its threads: a step of one batch is a few small matrix products that two cores
    run barely faster than one (torch releases the GIL inside its operators, so the threads overlap). Each
    batch's outputs are the same as when it is decoded alone on that many threads.
    """
    model.eval()
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    chunks = [order[start : start + cfg.batch_size] for start in range(0, len(order), cfg.batch_size)]

    def decode(chunk: list[int]) -> list[list[Hypothesis]]:
        src, lengths = pad_sequences([sources[i] for i in chunk], specials.pad)
        return search(model, src.to(device), lengths.to(device), specials, cfg)

    workers = parallel_batches(cfg, device, len(chunks))
    if workers == 1:
        results = [decode(chunk) for chunk in chunks]
    else:
        threads = torch.get_num_threads()
        # New threads take torch's thread count when they first run an operator: set it for them, then restore.
        torch.set_num_threads(max(1, threads // workers))
        try:
            with ThreadPoolExecutor(workers, thread_name_prefix="nmt-decode") as pool:
                # Longest sources first, so that no long batch starts last while the other threads sit idle.
                results = list(pool.map(decode, chunks[::-1]))[::-1]
        finally:
            torch.set_num_threads(threads)
    outputs: list[list[Hypothesis]] = [[] for _ in sources]
    for chunk, hyps in zip(chunks, results, strict=True):
        for i, hyp in zip(chunk, hyps, strict=True):
            outputs[i] = hyp
    return outputs


def translate_texts(model, tokenizer, texts: Sequence[str], cfg, device) -> list[list[tuple[str, float]]]:
    """Normalised sentences -> their n-best (detokenized translation, score) pairs, best first."""
    outputs = translate_ids(model, tokenizer.encode_src(list(texts)), tokenizer.specials, cfg, device)
    return [[(tokenizer.decode_tgt(h.tokens), h.score) for h in hyps] for hyps in outputs]
