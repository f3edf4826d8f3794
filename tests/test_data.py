"""Tests of the data pipeline: readers, split, filters, tokenizer, id cache, batching, prepare_data."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
import torch
from omegaconf import OmegaConf

import nmt.data.tokenizer as tokenizer_module
from nmt.config import BatchOrder, DataConfig, TokenizerConfig
from nmt.data import (
    CorpusError,
    Example,
    SpecialIds,
    TokenBatchSampler,
    TokenizedCorpus,
    Tokenizer,
    build_tokenizer,
    collate,
    collate_sessions,
    encode_corpus,
    filter_pairs,
    normalize,
    padding_share,
    prepare_data,
    read_corpus,
    split_corpus,
)
from nmt.data.dataset import pack

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / "data" / "toy"
TATOEBA = ROOT / "data" / "tatoeba-fra-eng" / "fra.txt.gz"


def write(path: Path, data: str | bytes) -> Path:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if path.suffix == ".gz":
        raw = gzip.compress(raw)
    path.write_bytes(raw)
    return path


def toy_examples(split: str = "train") -> list[Example]:
    return read_corpus(TOY / f"{split}.tsv")


def toy_tokenizer_cfg(**overrides) -> TokenizerConfig:
    values = {"vocab_size": 32, "byte_fallback": False, **overrides}
    return OmegaConf.merge(OmegaConf.structured(TokenizerConfig), values)


@pytest.fixture(scope="module")
def toy_tokenizer(tmp_path_factory) -> Tokenizer:
    return build_tokenizer(toy_tokenizer_cfg(), toy_examples(), tmp_path_factory.mktemp("spm"), log=lambda _: None)


# --- reading and normalisation --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["c.tsv", "c.tsv.gz"])
def test_read_tsv_plain_and_gz_ignores_extra_columns(tmp_path, name):
    attribution = "CC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM) & #1158250 (Wittydev)"
    text = f"Go.\tVa !\t{attribution}\nHi.\tSalut.\t#1\n"
    examples = read_corpus(write(tmp_path / name, text))
    assert examples == [Example("Go.", "Va !"), Example("Hi.", "Salut.")]
    assert read_corpus(tmp_path / name, src_column=1, tgt_column=0)[0] == Example("Va !", "Go.")


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_parallel_files(tmp_path, suffix):
    src = write(tmp_path / f"a.en{suffix}", "Hello .\nThe  Cat\n")
    tgt = write(tmp_path / f"a.fr{suffix}", "Bonjour .\nLe chat")
    expected = [Example("Hello .", "Bonjour ."), Example("The Cat", "Le chat")]
    assert read_corpus([str(src), str(tgt)]) == expected
    assert read_corpus(OmegaConf.create([str(src), str(tgt)])) == expected
    assert read_corpus((src, tgt), norm=lambda t: normalize(t, lowercase=True))[1] == Example("the cat", "le chat")


def test_read_keeps_empty_sides_and_accepts_crlf(tmp_path):
    path = write(tmp_path / "c.tsv", "a b\t\r\n\tx\r\nc\td\r\n")
    assert read_corpus(path) == [Example("a b", ""), Example("", "x"), Example("c", "d")]


def test_normalize_odd_spaces_and_invisible_characters():
    assert normalize("Cours\u202f!") == "Cours !"
    assert normalize("Quoi\u00a0?  Non\u2009!") == "Quoi ? Non !"
    assert normalize("\ufeff\ta\u200bb\u200c\u200dc\x07 \u3000 D\n") == "abc D"
    assert normalize("  Été\u202fÀ ", lowercase=True) == "été à"
    assert normalize("Go now. Really?! 3.5, U.S.A. Wait...", space_punctuation=True) == (
        "Go now . Really ?! 3.5 , U.S.A . Wait ..."
    )
    assert normalize("") == ""


def test_read_normalizes_tatoeba_spaces(tmp_path):
    path = write(tmp_path / "c.tsv", "Run!\tCours\u202f!\nWho?\tQui\u00a0?\n")
    assert [e.tgt for e in read_corpus(path)] == ["Cours !", "Qui ?"]


def test_read_bundled_tatoeba():
    examples = read_corpus(TATOEBA)
    assert len(examples) == 167_130
    assert examples[:3] == [Example("Go.", "Va !"), Example("Hi.", "Salut !"), Example("Run!", "Cours !")]
    assert not any("\u202f" in e.tgt or "\u00a0" in e.tgt for e in examples[:5000])


def _error(spec, **kwargs) -> str:
    with pytest.raises(CorpusError) as info:
        read_corpus(spec, **kwargs)
    message = str(info.value)
    assert "\n" not in message and " — " in message
    return message


READ_ERRORS = {  # name: (file name, content or None for no file, read_corpus kwargs, message start)
    "missing": ("nope.tsv", None, {}, "{path}: file not found"),
    "empty": ("e.tsv", "", {}, "{path}: empty file"),
    "empty-gz": ("e.tsv.gz", "", {}, "{path}: empty file"),
    "utf8": ("u.tsv", b"a\tb\nc\td\xff\n", {}, "{path}:2: invalid UTF-8"),
    "utf8-gz": ("u.tsv.gz", b"a\tb\nc\td\xff\n", {}, "{path}:2: invalid UTF-8"),
    "no-tab": ("c.tsv", "a\tb\nc\td\nno tab\n", {}, "{path}:3: no tab between source and target — each line"),
    "columns": ("c.tsv", "a\tb\tc\nd\te\n", {"src_column": 2, "tgt_column": 0}, "{path}:2: 2 columns"),
    "blank-line": ("c.tsv", "a\tb\n\nc\td\n", {}, "{path}:2: blank line"),
}


@pytest.mark.parametrize("case", READ_ERRORS.values(), ids=READ_ERRORS.keys())
def test_read_errors_name_file_and_line(tmp_path, case):
    name, content, kwargs, start = case
    path = tmp_path / name if content is None else write(tmp_path / name, content)
    assert _error(path, **kwargs).startswith(start.format(path=path))


def test_error_not_gzip(tmp_path):
    path = tmp_path / "fake.tsv.gz"
    path.write_bytes(b"a\tb\n")
    assert _error(path).startswith(f"{path}: not a valid gzip file")


def test_error_parallel_line_counts(tmp_path):
    src = write(tmp_path / "x.en", "a\nb\nc\n")
    tgt = write(tmp_path / "x.fr.gz", "a\nb\n")
    message = _error([src, tgt])
    assert str(src) in message and str(tgt) in message and "3 lines" in message and "has 2" in message


def test_error_bad_spec():
    assert "not a corpus spec" in _error(["only-one.tsv"])


# --- split and filters ----------------------------------------------------------------------------


def test_split_is_seeded_disjoint_and_complete():
    examples = [Example(f"s{i}", f"t{i}") for i in range(100)]
    train, dev, test = split_corpus(examples, dev_size=10, test_size=15, seed=3)
    assert (len(train), len(dev), len(test)) == (75, 10, 15)
    assert sorted(train + dev + test, key=lambda e: int(e.src[1:])) == examples
    assert split_corpus(examples, 10, 15, seed=3) == (train, dev, test)
    assert split_corpus(examples, 10, 15, seed=4)[2] != test
    assert train == sorted(train, key=lambda e: int(e.src[1:]))


def test_split_ignores_hash_randomization():
    # corpus.py is loaded on its own: importing the nmt.data package would pull in torch and cost seconds.
    code = (
        "import importlib.util as u, sys;"
        f"spec = u.spec_from_file_location('corpus', {str(ROOT / 'src/nmt/data/corpus.py')!r});"
        "m = sys.modules['corpus'] = u.module_from_spec(spec); spec.loader.exec_module(m);"
        "ex = [m.Example(f's{i}', 't') for i in range(50)];"
        "print([e.src for e in m.split_corpus(ex, 5, 5, 7)[2]])"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for seed in ("1", "2")
    }
    in_process = [e.src for e in split_corpus([Example(f"s{i}", "t") for i in range(50)], 5, 5, 7)[2]]
    assert runs == {f"{in_process}\n"}


def test_split_too_small():
    with pytest.raises(CorpusError, match=r"^data/x.tsv: 10 pairs, too few"):
        split_corpus([Example("a", "b")] * 10, 5, 5, seed=1, name="data/x.tsv")


def test_filter_pairs_counts():
    src = [[1], [], [1, 2, 3], [1], [5, 6], [1] * 9]
    tgt = [[2], [2], [4], [], [7, 8, 9, 9], [1]]
    assert filter_pairs(src, tgt, max_len=3) == ([0, 2], {"empty": 2, "too_long": 2, "kept": 2})
    assert filter_pairs(src, tgt, max_len=None) == ([0, 2, 4, 5], {"empty": 2, "too_long": 0, "kept": 4})
    assert filter_pairs([], [], max_len=3) == ([], {"empty": 0, "too_long": 0, "kept": 0})


# --- tokenizer ------------------------------------------------------------------------------------


def test_tokenizer_trains_once_then_loads_cache(tmp_path, monkeypatch):
    logs: list[str] = []
    first = build_tokenizer(toy_tokenizer_cfg(), toy_examples(), tmp_path / "cache", log=logs.append)
    assert "trained" in logs[-1] and str(tmp_path / "cache") in logs[-1]
    assert len(list((tmp_path / "cache").glob("spm-*.model"))) == 1

    def no_training(*args, **kwargs):
        raise AssertionError("the cached model should have been used")

    monkeypatch.setattr(tokenizer_module, "_train_spm", no_training)
    second = build_tokenizer(toy_tokenizer_cfg(), toy_examples(), tmp_path / "cache", log=logs.append)
    assert "loaded cached" in logs[-1]
    assert second.fingerprint == first.fingerprint
    with pytest.raises(AssertionError):
        build_tokenizer(toy_tokenizer_cfg(type="bpe"), toy_examples(), tmp_path / "cache", log=logs.append)


def test_tokenizer_trains_on_a_seeded_sample_of_a_large_corpus(tmp_path, monkeypatch):
    seen: list[list[str]] = []
    train_spm = tokenizer_module._train_spm

    def recording(texts, settings, side):
        seen.append(texts)
        return train_spm(texts, settings, side)

    monkeypatch.setattr(tokenizer_module, "_train_spm", recording)
    examples, logs = toy_examples(), []
    joint = [e.src for e in examples] + [e.tgt for e in examples]
    cfg = toy_tokenizer_cfg(train_sentences=1000)
    first = build_tokenizer(cfg, examples, tmp_path / "a", log=logs.append)
    assert "on 1,000 of the 6,000 training sentences" in logs[-1]
    second = build_tokenizer(cfg, examples, tmp_path / "b", log=logs.append)
    assert second.fingerprint == first.fingerprint and seen[0] == seen[1], "the same sample every time"
    rest = iter(joint)
    assert len(seen[0]) == 1000 and all(text in rest for text in seen[0]), "a sample, in corpus order"
    sample = set(seen[0])
    assert sample & set(joint[:500]) and sample & set(joint[-500:]), "spread over the whole corpus"
    build_tokenizer(toy_tokenizer_cfg(train_sentences=None), examples, tmp_path / "c", log=logs.append)
    assert len(seen[-1]) == 6000 and "on 6,000 of the 6,000" in logs[-1]
    with pytest.raises(CorpusError, match="train_sentences=0: must be at least 1"):
        build_tokenizer(toy_tokenizer_cfg(train_sentences=0), examples, tmp_path / "d")


def test_tokenizer_specials_and_decode(toy_tokenizer):
    tok = toy_tokenizer
    assert tok.joint and tok.specials == SpecialIds(pad=0, unk=1, bos=2, eos=3)
    assert tok.src_vocab_size == tok.tgt_vocab_size <= 32
    ids = tok.encode_tgt(["a b c", "t s"])
    assert all(min(row) > 3 for row in ids)
    s = tok.specials
    assert tok.decode_tgt([s.bos, *ids[0], s.eos, *ids[1], s.pad]) == "a b c"
    assert tok.decode_tgt(torch.tensor([s.bos, *ids[1], s.pad, s.pad])) == "t s"
    assert "".join(tok.src_pieces("a b")).replace("\u2581", " ").strip() == "a b"
    assert tok.tgt_pieces_of(torch.tensor(ids[1])) == tok.src_pieces("t s")


def test_tokenizer_state_round_trip(toy_tokenizer):
    texts = [e.tgt for e in toy_examples("dev")]
    for rebuilt in (Tokenizer.from_state(toy_tokenizer.state()), pickle.loads(pickle.dumps(toy_tokenizer))):
        assert rebuilt.encode_src(texts) == toy_tokenizer.encode_src(texts)
        assert rebuilt.encode_tgt(texts) == toy_tokenizer.encode_tgt(texts)
        assert rebuilt.specials == toy_tokenizer.specials and rebuilt.fingerprint == toy_tokenizer.fingerprint
        assert [rebuilt.decode_tgt(ids) for ids in rebuilt.encode_tgt(texts)] == texts


def test_separate_tokenizers(tmp_path):
    train = [Example(e.src, e.tgt.upper()) for e in toy_examples()]
    tok = build_tokenizer(toy_tokenizer_cfg(joint=False), train, tmp_path, log=lambda _: None)
    assert not tok.joint and len(list(tmp_path.glob("spm-*.src.model"))) == 1
    assert tok.decode_tgt(tok.encode_tgt(["B A"])[0]) == "B A"
    assert Tokenizer.from_state(tok.state()).encode_tgt(["C D"]) == tok.encode_tgt(["C D"])


def _train_model(path: Path, **ids) -> Path:
    writer = io.BytesIO()
    with open(os.devnull, "w") as quiet:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter([e.src for e in toy_examples()]),
            model_writer=writer,
            vocab_size=30,
            hard_vocab_limit=False,
            logstream=quiet,
            **ids,
        )
    path.write_bytes(writer.getvalue())
    return path


def test_existing_model_without_pad_gets_appended_pad(tmp_path):
    path = _train_model(tmp_path / "m.model", pad_id=-1, unk_id=0, bos_id=1, eos_id=2)
    cfg = toy_tokenizer_cfg(model=str(path))
    tok = build_tokenizer(cfg, [], tmp_path / "cache", log=lambda _: None)
    pieces = spm.SentencePieceProcessor(model_file=str(path)).get_piece_size()
    assert tok.specials == SpecialIds(pad=pieces, unk=0, bos=1, eos=2)
    assert tok.src_vocab_size == pieces + 1
    ids = tok.encode_tgt(["a b"])[0]
    assert tok.decode_tgt([1, *ids, 2, pieces]) == "a b"
    assert tok.tgt_pieces_of([pieces])[0] == "<pad>"


def test_existing_model_errors(tmp_path):
    with pytest.raises(CorpusError, match=r"^.*missing\.model: SentencePiece model not found"):
        build_tokenizer(toy_tokenizer_cfg(model=str(tmp_path / "missing.model")), [], tmp_path)
    src = _train_model(tmp_path / "src.model", pad_id=0, unk_id=1, bos_id=2, eos_id=3)
    tgt = _train_model(tmp_path / "tgt.model", pad_id=3, unk_id=0, bos_id=1, eos_id=2)
    cfg = toy_tokenizer_cfg(model=[str(src), str(tgt)], joint=False)
    with pytest.raises(CorpusError, match=r"tgt\.model: special ids .* differ"):
        build_tokenizer(cfg, [], tmp_path)
    with pytest.raises(CorpusError, match="a joint tokenizer takes one model path"):
        build_tokenizer(toy_tokenizer_cfg(model=[str(src), str(tgt)]), [], tmp_path)
    bad = write(tmp_path / "bad.model", "not a model")
    with pytest.raises(CorpusError, match=r"bad\.model: not a SentencePiece model"):
        build_tokenizer(toy_tokenizer_cfg(model=str(bad)), [], tmp_path)


def test_tokenizer_training_error_is_one_line(tmp_path):
    with pytest.raises(CorpusError, match=r"^data\.tokenizer: training the joint SentencePiece model failed [^\n]*$"):
        build_tokenizer(toy_tokenizer_cfg(byte_fallback=True), toy_examples(), tmp_path, log=lambda _: None)


# --- token ids ------------------------------------------------------------------------------------


def test_encode_corpus_caches(tmp_path, toy_tokenizer, monkeypatch):
    examples = toy_examples("dev")
    first = encode_corpus(examples, toy_tokenizer, tmp_path)
    assert len(first) == 200 and first.src.dtype == np.int32 and first.src_offsets.dtype == np.int64
    assert first.src_ids(5).tolist() == toy_tokenizer.encode_src([examples[5].src])[0]
    assert first.tgt_ids(7).tolist() == toy_tokenizer.encode_tgt([examples[7].tgt])[0]
    assert list(first.src_lengths()[:3]) == [
        len(ids) for ids in toy_tokenizer.encode_src([e.src for e in examples[:3]])
    ]
    monkeypatch.setattr(Tokenizer, "encode_src", lambda *a: pytest.fail("should have loaded the cache"))
    second = encode_corpus(examples, toy_tokenizer, tmp_path)
    for name in ("src", "src_offsets", "tgt", "tgt_offsets"):
        assert np.array_equal(getattr(first, name), getattr(second, name))
    assert len(list(tmp_path.glob("ids-*.npz"))) == 1


def tiny_corpus() -> TokenizedCorpus:
    """Sources [5 6], [7], [8 9 10]; targets [11], [], [12 13]."""
    src, tgt = np.array([5, 6, 7, 8, 9, 10], np.int32), np.array([11, 12, 13], np.int32)
    return TokenizedCorpus(src, np.array([0, 2, 3, 6]), tgt, np.array([0, 1, 1, 3]))


def test_tokenized_corpus_select():
    corpus = tiny_corpus()
    picked = corpus.select([2, 0])
    assert [picked.src_ids(i).tolist() for i in range(2)] == [[8, 9, 10], [5, 6]]
    assert [picked.tgt_ids(i).tolist() for i in range(2)] == [[12, 13], [11]]
    assert picked.tgt_lengths().tolist() == [2, 1] and len(corpus.select([])) == 0


# --- batching -------------------------------------------------------------------------------------

ORDERS = list(BatchOrder.__members__)


@pytest.fixture(scope="module")
def lengths() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(1, 40, size=1000), rng.integers(1, 40, size=1000)


@pytest.mark.parametrize("order", ORDERS)
def test_sampler_covers_every_index_within_budget(lengths, order):
    src, tgt = lengths
    sampler = TokenBatchSampler.for_pairs(src, tgt, max_tokens=300, max_sentences=16, order=order, seed=5)
    assert len(sampler.batches(0)) == len(sampler)
    for epoch in (0, 1):
        batches = sampler.batches(epoch)
        assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(1000))
        for b in batches:
            assert len(b) <= 16
            assert len(b) * max(src[b].max(), tgt[b].max() + 1) <= 300 or len(b) == 1


@pytest.mark.parametrize("order", ORDERS)
def test_sampler_is_deterministic_per_epoch(lengths, order):
    """A fresh sampler gives an epoch's batches again (resuming relies on it); only sorted repeats epochs."""
    src, tgt = lengths
    make = lambda: TokenBatchSampler.for_pairs(src, tgt, max_tokens=400, order=order, seed=5)  # noqa: E731
    same = [np.array_equal(a, b) for a, b in zip(make().batches(3), make().batches(3), strict=True)]
    assert all(same)
    epoch_0, epoch_1 = make().batches(0), make().batches(1)
    repeated = len(epoch_0) == len(epoch_1) and all(map(np.array_equal, epoch_0, epoch_1))
    assert repeated == (order == "sorted")


def test_sorted_order_serves_batches_by_length_the_same_every_epoch(lengths):
    src, tgt = lengths
    sampler = TokenBatchSampler.for_pairs(src, tgt, max_tokens=400, order="sorted", seed=5)
    epoch_0 = sampler.batches(0)
    assert all(np.array_equal(a, b) for a, b in zip(epoch_0, sampler.batches(1), strict=True))
    served = np.concatenate(epoch_0)
    keys = list(zip(tgt[served].tolist(), src[served].tolist(), strict=True))
    assert keys == sorted(keys), "by target length, then source length"


def test_random_order_pads_more_than_bucketed():
    # Lengths of 1 to 39 tokens, a source within 2 of its target, as in translation.
    rng = np.random.default_rng(0)
    tgt = rng.integers(1, 40, size=1000)
    src = np.maximum(1, tgt + rng.integers(-2, 3, size=1000))
    corpus = TokenizedCorpus(*pack([[4] * n for n in src]), *pack([[4] * n for n in tgt]))
    share = {
        order: padding_share(corpus, TokenBatchSampler.for_pairs(src, tgt, max_tokens=400, order=order).batches(0))
        for order in ORDERS
    }
    assert share["sorted"] == share["bucketed"] < 0.1
    assert share["random"] > 0.3


def test_padding_share_counts_the_pad_positions_of_the_collated_batches():
    corpus, specials = tiny_corpus(), SpecialIds(pad=0, unk=1, bos=2, eos=3)

    def share_of(batches):
        tensors = [t for batch in batches for t in (batch.src, batch.tgt_out)]
        return sum(int((t == specials.pad).sum()) for t in tensors) / sum(t.numel() for t in tensors)

    pairs = [np.array([0, 1, 2]), np.array([1]), np.array([2, 0])]
    assert padding_share(corpus, pairs) == pytest.approx(share_of([collate(corpus, b, specials) for b in pairs]))
    offsets = np.array([0, 1, 3])  # session 0: pair 0; session 1: pairs 1 and 2
    turns = collate_sessions(corpus, offsets, [0, 1], specials).turns
    assert padding_share(corpus, [np.array([0, 1])], offsets) == pytest.approx(share_of(turns))


def test_sorted_order_is_unshuffled_and_oversized_pairs_stand_alone():
    src, tgt = np.array([3, 50, 2, 3, 1]), np.array([2, 1, 5, 2, 2])
    batches = TokenBatchSampler.for_pairs(src, tgt, max_tokens=10, order="sorted").batches(0)
    assert [b.tolist() for b in batches] == [[1], [4, 0, 3], [2]]
    assert TokenBatchSampler.for_pairs([], [], max_tokens=10).batches(0) == []
    with pytest.raises(CorpusError, match="max_tokens=0"):
        TokenBatchSampler.for_pairs(src, tgt, max_tokens=0)
    with pytest.raises(CorpusError, match=r"order 'shuffled', expected one of \[bucketed, sorted, random\]"):
        TokenBatchSampler.for_pairs(src, tgt, max_tokens=10, order="shuffled")


def test_collate_pads_and_adds_bos_eos():
    specials = SpecialIds(pad=0, unk=1, bos=2, eos=3)
    batch = collate(tiny_corpus(), np.array([2, 0, 1]), specials)
    assert batch.src.dtype == torch.long and batch.src.shape == (3, 3)
    assert batch.src.tolist() == [[8, 9, 10], [5, 6, 0], [7, 0, 0]]
    assert batch.src_lengths.tolist() == [3, 2, 1]
    assert batch.tgt_in.tolist() == [[2, 12, 13], [2, 11, 0], [2, 0, 0]]
    assert batch.tgt_out.tolist() == [[12, 13, 3], [11, 3, 0], [3, 0, 0]]
    assert batch.n_tokens == 6 == int((batch.tgt_out != specials.pad).sum())
    assert batch.indices.tolist() == [2, 0, 1]
    moved = batch.to("cpu")
    assert torch.equal(moved.tgt_out, batch.tgt_out) and moved.n_tokens == 6


# --- prepare_data ---------------------------------------------------------------------------------


def toy_data_cfg(cache_dir: Path, **overrides):
    values = {
        "name": "toy",
        "src_lang": "src",
        "tgt_lang": "rev",
        "train": str(TOY / "train.tsv"),
        "dev": str(TOY / "dev.tsv"),
        "test": str(TOY / "test.tsv"),
        "max_len": 12,
        "cache_dir": str(cache_dir),
        "tokenizer": {"vocab_size": 32, "byte_fallback": False},
        **overrides,
    }
    return OmegaConf.merge(OmegaConf.structured(DataConfig), values)


def test_prepare_data_on_toy_corpus(tmp_path):
    logs: list[str] = []
    data = prepare_data(toy_data_cfg(tmp_path / "new" / "cache"), log=logs.append)
    assert set(data.splits) == set(data.texts) == {"train", "dev", "test"}
    assert data.stats["dev"] == {"read": 200, "empty": 0, "too_long": 0, "kept": 200}
    train = data.stats["train"]
    assert train["read"] == 3000 and train["empty"] == 0 and train["kept"] + train["too_long"] == 3000
    assert train["too_long"] > 0 and data.splits["train"].src_lengths().max() <= 12
    for name, corpus in data.splits.items():
        assert len(corpus) == len(data.texts[name])
        assert data.tokenizer.decode_tgt(corpus.tgt_ids(0)) == data.texts[name][0].tgt
    assert sum(line.startswith("data ") for line in logs) == 3
    again: list[str] = []
    prepare_data(toy_data_cfg(tmp_path / "new" / "cache"), log=again.append)
    assert "loaded cached" in again[0]


def test_prepare_data_splits_and_subsamples(tmp_path):
    cfg = toy_data_cfg(tmp_path, dev=None, test=None, dev_size=100, test_size=50, max_train_pairs=500, max_len=64)
    data = prepare_data(cfg, log=lambda _: None)
    assert [data.stats[s]["read"] for s in ("train", "dev", "test")] == [500, 100, 50]
    assert data.stats["split_seed"] == 1 and data.stats["src_vocab_size"] == data.tokenizer.src_vocab_size
    again = prepare_data(cfg, log=lambda _: None)
    assert again.texts == data.texts
    full = read_corpus(TOY / "train.tsv")
    position = {e: i for i, e in enumerate(full)}
    assert [position[e] for e in data.texts["train"]] == sorted(position[e] for e in data.texts["train"])
    assert not set(data.texts["train"]) & set(data.texts["dev"] + data.texts["test"])


def test_prepare_data_with_only_a_test_file(tmp_path):
    data = prepare_data(toy_data_cfg(tmp_path, dev=None, dev_size=300), log=lambda _: None)
    assert data.stats["dev"]["read"] == 300 and data.stats["train"]["read"] == 2700
    assert data.stats["test"]["read"] == 200
