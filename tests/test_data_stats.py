"""nmt-data-stats on small corpora written by the tests: hand-counted word and length numbers, the vocabulary sweep,
errors, and the command end to end."""

from __future__ import annotations

import random

import pytest

from nmt.cli import compose_config, data_stats
from nmt.data.stats import LengthLoss, corpus_stats
from tests.conftest import DIALOGUE_WORDS

# (source, target) words per pair; the fourth pair has an empty source, which every length limit drops anyway.
HAND_COUNTED = ["a a b\tx y", "a c\tx x x", "d a e f g h\tz", "\tz z"]
SMALL_TOKENIZER = ["data.tokenizer.vocab_size=40", "data.tokenizer.byte_fallback=false"]


def quiet(_message: str) -> None:
    pass


def corpus_overrides(tmp_path, train_lines: list[str]) -> list[str]:
    """data=files overrides reading train_lines as the training split, its first 20 lines as dev and test."""
    train, held_out = tmp_path / "train.tsv", tmp_path / "held_out.tsv"
    train.write_text("".join(line + "\n" for line in train_lines), encoding="utf-8")
    held_out.write_text("".join(line + "\n" for line in train_lines[:20]), encoding="utf-8")
    return ["data=files", f"data.train={train}", f"data.dev={held_out}", f"data.test={held_out}", *SMALL_TOKENIZER]


def random_corpus(n_pairs: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    sentences = [" ".join(rng.choices(DIALOGUE_WORDS, k=rng.randint(2, 6))) for _ in range(2 * n_pairs)]
    return [f"{src}\t{tgt}" for src, tgt in zip(sentences[::2], sentences[1::2], strict=True)]


def test_word_frequencies_and_length_losses_equal_hand_counts(tmp_path):
    overrides = [*corpus_overrides(tmp_path, HAND_COUNTED), "data.max_len=6", "max_lens=[2,3]", "vocab_sizes=[]"]
    stats = corpus_stats(compose_config("data_stats", overrides), log=quiet)

    src, tgt = stats.words
    # Source words: a 4 times, b c d e f g h once each; target: x 4 times, y once, z 3 times.
    assert (src.tokens, src.types, src.hapax) == (11, 8, 7)
    assert (src.hapax_type_share, src.hapax_token_share) == (7 / 8, 7 / 11)
    assert src.coverage == [(1, 8, 1.0), (2, 1, 4 / 11), (5, 0, 0.0)]
    assert (tgt.tokens, tgt.types, tgt.hapax) == (8, 3, 1)
    assert tgt.coverage == [(1, 3, 1.0), (2, 2, 7 / 8), (5, 0, 0.0)]

    # Non-empty pairs of 3+2, 2+3 and 6+1 words: 17 tokens; data.max_len=6 joins the limits asked for.
    assert stats.empty == 1
    assert stats.word_losses == [
        LengthLoss(2, 3, 1.0, 1.0),
        LengthLoss(3, 1, 1 / 3, pytest.approx(7 / 17)),
        LengthLoss(6, 0, 0.0, 0.0),
    ]
    # Every word is at least one piece: a limit drops at least as many pairs counted in pieces.
    assert all(p.pairs >= w.pairs for p, w in zip(stats.piece_losses, stats.word_losses, strict=True))


def test_vocabulary_sweep_rows_and_the_sizes_a_corpus_cannot_take(tmp_path):
    # 10 pieces cannot hold the corpus's characters (SentencePiece refuses); 5000 are more than it supports.
    overrides = [*corpus_overrides(tmp_path, random_corpus(300, seed=0)), "vocab_sizes=[10,30,40,5000]"]
    stats = corpus_stats(compose_config("data_stats", overrides), log=quiet)
    too_few, small, larger, too_many = stats.sweep

    assert too_few.sizes is None and "Vocabulary size is smaller than required_chars" in too_few.error
    assert all(a > b for a, b in zip(small.pieces_per_sentence, larger.pieces_per_sentence, strict=True))
    assert small.sizes == (30, 30) and small.unk_share == (0.0, 0.0)
    assert too_many.error is None and max(too_many.sizes) < 5000
    rows = data_stats.format_stats(stats).splitlines()
    assert any(row.startswith("| 10 | - |") and "required_chars" in row for row in rows)
    assert any(row.startswith("| 5,000 |") and "the training text supports no more" in row for row in rows)


def test_a_missing_corpus_file_is_one_line_and_exit_status_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        data_stats.main(["data=files", f"data.train={tmp_path / 'missing.tsv'}"])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err.count("\n") == 1 and err.startswith("nmt-data-stats: error: ") and "missing.tsv: file not found" in err


def test_nmt_data_stats_prints_and_writes_the_tables(tmp_path, capsys):
    out = tmp_path / "report" / "stats.md"
    data_stats.main([*corpus_overrides(tmp_path, random_corpus(100, seed=1)), "vocab_sizes=[40,80]", f"out={out}"])
    printed = capsys.readouterr().out
    assert printed == out.read_text(encoding="utf-8")
    for heading in ("## Words of the training split", "## What max_len drops", "## SentencePiece vocabulary sizes"):
        assert heading in printed
    assert "| 64 (data.max_len) |" in printed
