"""Property-based tests (hypothesis): the readers, the tokenizer round trip, the token-budget batch samplers."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from nmt.config import BatchOrder, TokenizerConfig
from nmt.data import Example, TokenBatchSampler, build_tokenizer, normalize, read_corpus, read_dialogues
from nmt.data.batching import session_sampler
from nmt.data.dataset import TokenizedCorpus, pack

# tmp_path is shared by the examples of one test: each example overwrites its own files.
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Any assigned character but surrogates (not encodable in UTF-8); unassigned code points are left out because
# SentencePiece's NFKC table may know characters newer than Python's unicodedata.
CHARS = st.characters(exclude_categories=("Cs", "Cn"))


def texts(exclude: str = "") -> st.SearchStrategy[str]:
    """Short texts of any characters but `exclude` and newline."""
    return st.text(st.characters(exclude_categories=("Cs", "Cn"), exclude_characters="\n" + exclude), max_size=30)


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_bytes("".join(line + "\n" for line in lines).encode("utf-8"))
    return path


# --- readers --------------------------------------------------------------------------------------


@SETTINGS
@given(st.lists(st.tuples(texts("\t"), texts("\t")), min_size=1, max_size=20))
def test_tsv_reads_back_the_normalised_texts_in_order(tmp_path, pairs):
    path = write_lines(tmp_path / "c.tsv", [f"{src}\t{tgt}" for src, tgt in pairs])
    assert read_corpus(path) == [Example(normalize(src), normalize(tgt)) for src, tgt in pairs]


@SETTINGS
@given(st.lists(st.tuples(texts(), texts()), min_size=1, max_size=20))
def test_parallel_files_read_back_the_normalised_texts_in_order(tmp_path, pairs):
    src = write_lines(tmp_path / "c.src", [src for src, _ in pairs])
    tgt = write_lines(tmp_path / "c.tgt", [tgt for _, tgt in pairs])
    assert read_corpus([src, tgt]) == [Example(normalize(s), normalize(t)) for s, t in pairs]


@SETTINGS
@given(st.lists(st.lists(texts("_"), min_size=1, max_size=6), min_size=1, max_size=10))
def test_dialogues_read_back_the_normalised_non_empty_turns(tmp_path, sessions):
    path = write_lines(tmp_path / "d.txt", ["".join(f"{turn} __eou__ " for turn in turns) for turns in sessions])
    kept = [[normalize(turn) for turn in turns if normalize(turn)] for turns in sessions]
    read, counts = read_dialogues(path)
    assert read == [turns for turns in kept if len(turns) >= 2]
    assert counts == {
        "blank_lines": 0,
        "empty_turns": sum(len(turns) for turns in sessions) - sum(map(len, kept)),
        "short_sessions": sum(len(turns) < 2 for turns in kept),
    }


# --- tokenizer ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """A joint unigram model with byte fallback, trained on a few hundred seeded random sentences."""
    rng = random.Random(0)
    alphabet = "abcdefghijklmnopqrstuvwxyzéèàçüößÆ.,?!'-0123456789"
    words = ["".join(rng.choices(alphabet, k=rng.randint(1, 8))) for _ in range(500)]
    sentences = [" ".join(rng.choices(words, k=rng.randint(3, 12))) for _ in range(600)]
    train = [Example(a, b) for a, b in zip(sentences[::2], sentences[1::2], strict=True)]
    cfg = OmegaConf.merge(OmegaConf.structured(TokenizerConfig), {"vocab_size": 400, "byte_fallback": True})
    return build_tokenizer(cfg, train, tmp_path_factory.mktemp("spm"), log=lambda _: None)


@settings(max_examples=300, deadline=None)
@given(st.text(CHARS, max_size=40))
def test_tokenizer_round_trip_is_exact_after_normalize(tokenizer, text):
    """SentencePiece NFKC-normalises what it encodes and reads '▁' and U+FFFD as spaces; normalize does the same
    first, so with byte fallback every normalised text decodes back exactly, without <unk>."""
    normalised = normalize(text)
    ids = tokenizer.encode_tgt([normalised])[0]
    assert tokenizer.specials.unk not in ids
    assert tokenizer.decode_tgt(ids) == normalised


# --- batch samplers -------------------------------------------------------------------------------


def assert_epoch(sampler: TokenBatchSampler, n: int, epoch: int) -> None:
    """Every item exactly once; every batch of two or more items within max_tokens and max_sentences."""
    batches = sampler.batches(epoch)
    if sampler.order != "random":  # whose batch count varies with the permutation
        assert len(batches) == len(sampler)
    flat = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
    assert sorted(flat.tolist()) == list(range(n))
    for batch in batches:
        assert len(batch) >= 1
        if len(batch) > 1:
            assert len(batch) * sampler.widths[batch].max() <= sampler.max_tokens
        if sampler.max_sentences is not None:
            assert len(batch) <= sampler.max_sentences
    # The batches of an epoch depend only on (seed, epoch).
    assert all(np.array_equal(a, b) for a, b in zip(batches, sampler.batches(epoch), strict=True))


LENGTHS = st.lists(st.tuples(st.integers(0, 80), st.integers(0, 80)), max_size=200)
BUDGET = st.integers(1, 400)
MAX_SENTENCES = st.none() | st.integers(1, 20)


@settings(max_examples=100, deadline=None)
@given(LENGTHS, BUDGET, MAX_SENTENCES, st.integers(0, 2**32 - 1), st.integers(0, 5), st.sampled_from(BatchOrder))
def test_pair_sampler_covers_every_pair_once_within_budget(lengths, max_tokens, max_sentences, seed, epoch, order):
    src, tgt = [s for s, _ in lengths], [t for _, t in lengths]
    sampler = TokenBatchSampler.for_pairs(src, tgt, max_tokens, max_sentences=max_sentences, order=order, seed=seed)
    assert_epoch(sampler, len(lengths), epoch)


@settings(max_examples=100, deadline=None)
@given(st.lists(LENGTHS.filter(bool), max_size=30), BUDGET, MAX_SENTENCES, st.integers(0, 2**32 - 1), st.integers(0, 5))
def test_session_sampler_covers_every_session_once_within_budget(sessions, max_tokens, max_sentences, seed, epoch):
    pairs = [pair for session in sessions for pair in session]
    src = pack([[4] * s for s, _ in pairs])
    tgt = pack([[4] * t for _, t in pairs])
    offsets = np.cumsum([0, *map(len, sessions)])
    sampler = session_sampler(TokenizedCorpus(*src, *tgt), offsets, max_tokens, max_sentences=max_sentences, seed=seed)
    assert_epoch(sampler, len(sessions), epoch)
    # A session's width is its widest pair, so every turn of a batch fits the budget too.
    for session, width in zip(sessions, sampler.widths, strict=True):
        assert width == max(max(s, t + 1) for s, t in session)
