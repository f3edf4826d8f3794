"""Corpus statistics before training: word frequencies, what length limits drop, a SentencePiece vocabulary sweep."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from omegaconf import OmegaConf

from nmt.data.corpus import CorpusError, Example, filter_pairs
from nmt.data.dataset import read_splits
from nmt.data.preprocess import _subsample
from nmt.data.tokenizer import Tokenizer, build_tokenizer
from nmt.errors import UserError


@dataclass(frozen=True)
class WordStats:
    """The whitespace words of one side: running tokens, types, types seen once (hapax), and per min_freq the types
    seen at least that often with the share of running tokens they make up."""

    side: str
    tokens: int
    types: int
    hapax: int  # types seen once; each is also one running token
    coverage: list[tuple[int, int, float]]  # (min_freq, types, share of tokens)

    @property
    def hapax_type_share(self) -> float:
        return self.hapax / self.types if self.types else 0.0

    @property
    def hapax_token_share(self) -> float:
        return self.hapax / self.tokens if self.tokens else 0.0


@dataclass(frozen=True)
class LengthLoss:
    """What max_len drops of the pairs with both sides non-empty: how many pairs, their share, and the share of the
    tokens (both sides together)."""

    max_len: int
    pairs: int
    pair_share: float
    token_share: float


@dataclass(frozen=True)
class VocabRow:
    """One vocabulary size of the sweep: the trained models' sizes (src, tgt), the mean pieces per dev sentence and
    the share of <unk> pieces per side; or, when no model could be trained, why (error)."""

    vocab_size: int
    sizes: tuple[int, int] | None = None
    pieces_per_sentence: tuple[float, float] | None = None
    unk_share: tuple[float, float] | None = None
    error: str | None = None


@dataclass(frozen=True)
class CorpusStats:
    """Everything nmt-data-stats reports about a data config's corpus."""

    name: str
    langs: tuple[str, str]
    pairs: dict[str, int]  # per split as read (train: after data.max_train_pairs)
    empty: int  # training pairs with an empty side, dropped whatever the length limit
    data_max_len: int
    tokenizer_sizes: tuple[int, int]  # the data config's own tokenizer (the one the length table counts pieces of)
    byte_fallback: bool  # the sweep's models spell unknown characters in byte pieces, not <unk>
    words: list[WordStats]
    word_losses: list[LengthLoss]
    piece_losses: list[LengthLoss]
    sweep: list[VocabRow]


def word_stats(side: str, sentences: Sequence[Sequence[str]], min_freqs: Sequence[int]) -> WordStats:
    """Frequencies of the words of `sentences` (each a list of words)."""
    counts = Counter(word for words in sentences for word in words)
    tokens = sum(counts.values())
    coverage = []
    for min_freq in min_freqs:
        frequent = [count for count in counts.values() if count >= min_freq]
        coverage.append((min_freq, len(frequent), sum(frequent) / tokens if tokens else 0.0))
    hapax = sum(count == 1 for count in counts.values())
    return WordStats(side, tokens, len(counts), hapax, coverage)


def length_losses(src: Sequence[Sequence], tgt: Sequence[Sequence], max_lens: Sequence[int]) -> list[LengthLoss]:
    """Per max_len, what filter_pairs (the trainer's rule: either side longer than max_len) drops of the non-empty
    pairs of token sequences src, tgt (words or piece ids)."""
    tokens = np.fromiter((len(s) + len(t) for s, t in zip(src, tgt, strict=True)), dtype=np.int64, count=len(src))
    non_empty, _ = filter_pairs(src, tgt, None)
    if not non_empty:
        raise CorpusError("data.train: no pair has both sides non-empty — check the corpus and its columns")
    total = tokens[non_empty].sum()
    losses = []
    for max_len in max_lens:
        kept, counts = filter_pairs(src, tgt, max_len)
        lost = counts["too_long"]
        losses.append(LengthLoss(max_len, lost, lost / len(non_empty), 1 - tokens[kept].sum() / total))
    return losses


def _unk_share(ids: list[list[int]], unk: int) -> float:
    flat = np.fromiter((i for sentence in ids for i in sentence), dtype=np.int64)
    return float((flat == unk).mean()) if flat.size else 0.0


def _measure(tokenizer: Tokenizer, vocab_size: int, examples: Sequence[Example]) -> VocabRow:
    """The sweep's row for `tokenizer` (trained for vocab_size pieces) on the pairs `examples`."""
    sides = (tokenizer.encode_src([e.src for e in examples]), tokenizer.encode_tgt([e.tgt for e in examples]))
    return VocabRow(
        vocab_size,
        sizes=(tokenizer.src_vocab_size, tokenizer.tgt_vocab_size),
        pieces_per_sentence=tuple(sum(map(len, ids)) / len(ids) for ids in sides),
        unk_share=tuple(_unk_share(ids, tokenizer.specials.unk) for ids in sides),
    )


def vocab_sweep(tokenizer_cfg, train: list[Example], dev: list[Example], vocab_sizes, cache_dir, log) -> list[VocabRow]:
    """Per vocabulary size, a SentencePiece model trained on `train` as tokenizer_cfg says (untrimmed, even where
    tokenizer_cfg names a model to load) and measured on `dev`. A size that SentencePiece refuses gives a row with
    the reason; one the corpus cannot fill gives a model with fewer pieces (training's limit is soft)."""
    rows = []
    for vocab_size in vocab_sizes:
        settings = OmegaConf.merge(tokenizer_cfg, {"vocab_size": vocab_size, "model": None, "trim_target": False})
        try:
            tokenizer = build_tokenizer(settings, train, cache_dir, log)
        except CorpusError as e:
            rows.append(VocabRow(vocab_size, error=str(e)))
            continue
        rows.append(_measure(tokenizer, vocab_size, dev))
    return rows


def corpus_stats(cfg, log=print) -> CorpusStats:
    """The statistics of cfg.data's corpus (a DataStatsConfig): the training split as nmt-train reads it (with
    data.max_train_pairs applied), the dev split for the sweep."""
    data = cfg.data
    if data.format != "pairs":
        raise UserError(f"data.format={data.format}: nmt-data-stats reads sentence pairs, not dialogue sessions")
    if min([*cfg.max_lens, *cfg.min_freqs], default=1) < 1:
        raise UserError(f"max_lens={list(cfg.max_lens)}, min_freqs={list(cfg.min_freqs)}: every value must be >= 1")
    splits = read_splits(data, log)
    train, dev = _subsample(splits["train"], data.max_train_pairs, data.split_seed), splits["dev"]
    if cfg.vocab_sizes and not dev:
        raise UserError("the vocabulary sweep measures on the dev split, which is empty — give data.dev or dev_size")
    src, tgt = [e.src for e in train], [e.tgt for e in train]
    src_words, tgt_words = [s.split() for s in src], [t.split() for t in tgt]
    langs = (data.src_lang, data.tgt_lang)
    tokenizer = build_tokenizer(data.tokenizer, train, data.cache_dir, log)
    max_lens = sorted({*cfg.max_lens, data.max_len})
    return CorpusStats(
        name=data.name,
        langs=langs,
        pairs={"train": len(train), "dev": len(dev), "test": len(splits["test"])},
        empty=filter_pairs(src_words, tgt_words, None)[1]["empty"],
        data_max_len=data.max_len,
        tokenizer_sizes=(tokenizer.src_vocab_size, tokenizer.tgt_vocab_size),
        byte_fallback=data.tokenizer.byte_fallback,
        words=[
            word_stats(lang, words, cfg.min_freqs) for lang, words in zip(langs, (src_words, tgt_words), strict=True)
        ],
        word_losses=length_losses(src_words, tgt_words, max_lens),
        piece_losses=length_losses(tokenizer.encode_src(src), tokenizer.encode_tgt(tgt), max_lens),
        sweep=vocab_sweep(data.tokenizer, train, dev, cfg.vocab_sizes, data.cache_dir, log),
    )
