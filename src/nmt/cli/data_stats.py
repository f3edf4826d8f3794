"""nmt-data-stats: Markdown tables of what a data config's corpus looks like before training: word frequencies, what
length limits drop, and a SentencePiece vocabulary-size sweep."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from nmt.cli import command_line, compose_config, reports_errors
from nmt.data.stats import CorpusStats, VocabRow, corpus_stats


def _log(message: str) -> None:
    print(f"nmt-data-stats: {message}", file=sys.stderr)


def _table(header: list[str], rows: list[list[str]], text_columns: tuple[int, ...] = (0,)) -> str:
    """A Markdown table; the columns not in text_columns hold numbers and are right-aligned."""
    rule = ["---" if i in text_columns else "---:" for i in range(len(header))]
    lines = [header, rule, *([cell.replace("|", "\\|") for cell in row] for row in rows)]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def _percent(share: float) -> str:
    return f"{100 * share:.2f}%"


def _sizes(sizes: tuple[int, int]) -> str:
    """One number for a joint vocabulary, src / tgt for separate ones."""
    src, tgt = sizes
    return f"{src:,}" if src == tgt else f"{src:,} / {tgt:,}"


def _sweep_cells(row: VocabRow) -> list[str]:
    if row.error:
        return [f"{row.vocab_size:,}", *["-"] * 5, row.error]
    short = min(row.sizes) < row.vocab_size
    note = f"only {min(row.sizes):,} pieces: the training text supports no more" if short else ""
    per_sentence = [f"{n:.2f}" for n in row.pieces_per_sentence]
    return [f"{row.vocab_size:,}", _sizes(row.sizes), *per_sentence, *map(_percent, row.unk_share), note]


def _word_tables(stats: CorpusStats) -> list[str]:
    header = ["side", "tokens", "types", "types seen once", "share of types", "share of tokens"]
    counts = [
        [w.side, *(f"{n:,}" for n in (w.tokens, w.types, w.hapax))]
        + [_percent(share) for share in (w.hapax_type_share, w.hapax_token_share)]
        for w in stats.words
    ]
    coverage = [[w.side, str(k), f"{types:,}", _percent(share)] for w in stats.words for k, types, share in w.coverage]
    return [_table(header, counts), _table(["side", "min_freq", "types", "token coverage"], coverage)]


def _length_table(stats: CorpusStats) -> str:
    header = ["max_len", "pairs lost (words)", "tokens lost (words)", "pairs lost (pieces)", "tokens lost (pieces)"]
    rows = []
    for by_words, by_pieces in zip(stats.word_losses, stats.piece_losses, strict=True):
        mark = " (data.max_len)" if by_words.max_len == stats.data_max_len else ""
        cells = [f"{_percent(loss.pair_share)} ({loss.pairs:,})" for loss in (by_words, by_pieces)]
        tokens = [_percent(loss.token_share) for loss in (by_words, by_pieces)]
        rows.append([f"{by_words.max_len}{mark}", cells[0], tokens[0], cells[1], tokens[1]])
    return _table(header, rows)


def _sweep_table(stats: CorpusStats) -> str:
    per_side = [f"{lang} pieces/sentence" for lang in stats.langs] + [f"{lang} `<unk>`" for lang in stats.langs]
    rows = [_sweep_cells(row) for row in stats.sweep]
    return _table(["vocab_size", "pieces", *per_side, "note"], rows, text_columns=(0, 6))


def format_stats(stats: CorpusStats) -> str:
    """The Markdown report: a title line and three sections."""
    src_lang, tgt_lang = stats.langs
    split_sizes = ", ".join(f"{split} {n:,}" for split, n in stats.pairs.items())
    non_empty = stats.pairs["train"] - stats.empty
    return "\n\n".join(
        [
            f"# {stats.name} ({src_lang} → {tgt_lang}): {split_sizes} pairs",
            "## Words of the training split (whitespace tokens)",
            *_word_tables(stats),
            "## What max_len drops from the training split (a pair goes when either side is longer)",
            f"Shares of the {non_empty:,} pairs with both sides non-empty ({stats.empty:,} with an empty side go"
            f" whatever max_len). Pieces: the data config's SentencePiece model ({_sizes(stats.tokenizer_sizes)}"
            " pieces), which data.max_len counts.",
            _length_table(stats),
            f"## SentencePiece vocabulary sizes, measured on the dev split ({stats.pairs['dev']:,} pairs)",
            f"Models trained with data.tokenizer's settings, byte_fallback={str(stats.byte_fallback).lower()} (with"
            " true, a character outside the vocabulary becomes byte pieces, not `<unk>`).",
            _sweep_table(stats),
        ]
    )


@reports_errors("nmt-data-stats")
def main(argv: list[str] | None = None) -> None:
    started = time.perf_counter()
    cfg = compose_config(
        "data_stats", command_line("nmt-data-stats", __doc__, sys.argv[1:] if argv is None else argv, "data_stats")
    )
    report = format_stats(corpus_stats(cfg, log=_log)) + "\n"
    print(report, end="")
    if cfg.out:
        Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.out).write_text(report, encoding="utf-8")
        _log(f"wrote {cfg.out}")
    _log(f"done in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
