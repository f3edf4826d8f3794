"""Tests of binarized corpora: round trips, batches over memory maps, the cache, damage, workers, memory, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import nmt.data.corpus as corpus_module
from nmt.cli import compose_config, preprocess
from nmt.config import DataConfig, TokenizerConfig
from nmt.data import (
    TextPairs,
    TokenBatchSampler,
    TokenizedCorpus,
    Tokenizer,
    binarized_dir,
    build_tokenizer,
    collate,
    collate_sessions,
    encode_corpus,
    prepare_data,
    read_corpus,
    read_dialogues,
    session_sampler,
)
from nmt.data.dataset import dialogue_pairs
from nmt.data.preprocess import encode_chunks
from tests.conftest import write_dialogues

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / "data" / "toy"
ARRAYS = ("src", "src_offsets", "tgt", "tgt_offsets")


def quiet(_message: str) -> None:
    pass


def data_cfg(cache_dir: Path, **values):
    return OmegaConf.merge(OmegaConf.structured(DataConfig), {"name": "t", "cache_dir": str(cache_dir), **values})


def toy_cfg(cache_dir: Path, **values):
    files = {split: str(TOY / f"{split}.tsv") for split in ("train", "dev", "test")}
    tokenizer = {"vocab_size": 32, "byte_fallback": False}
    return data_cfg(cache_dir, **{**files, "max_len": 12, "tokenizer": tokenizer, **values})


def in_memory(corpus: TokenizedCorpus) -> TokenizedCorpus:
    return TokenizedCorpus(*(np.array(getattr(corpus, name)) for name in ARRAYS))


def assert_same_ids(a: TokenizedCorpus, b: TokenizedCorpus) -> None:
    for name in ARRAYS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


# --- round trips ---------------------------------------------------------------------------------------------------


def test_binarized_toy_corpus_round_trips_to_the_ids_of_its_texts(tmp_path):
    data = prepare_data(toy_cfg(tmp_path), log=quiet, workers=1)
    assert isinstance(data.splits["train"].src, np.memmap) and isinstance(data.texts["train"], TextPairs)
    assert data.splits["train"].src.dtype == np.int32 and data.splits["train"].src_offsets.dtype == np.int64
    for name, corpus in data.splits.items():
        texts = list(data.texts[name])
        assert_same_ids(corpus, encode_corpus(texts, data.tokenizer, tmp_path / "npz"))
    # The kept texts are the corpus's pairs of 1 to max_len tokens a side, in order.
    raw = read_corpus(TOY / "train.tsv")
    src = data.tokenizer.encode_src([e.src for e in raw])
    tgt = data.tokenizer.encode_tgt([e.tgt for e in raw])
    kept = [e for e, s, t in zip(raw, src, tgt, strict=True) if 0 < len(s) <= 12 and 0 < len(t) <= 12]
    assert list(data.texts["train"]) == kept and len(kept) < len(raw)
    texts = data.texts["train"]
    assert texts[-1] == list(texts)[-1] and texts[1:3] == [texts[1], texts[2]] and texts == list(texts)
    with pytest.raises(IndexError):
        texts[len(texts)]


def test_binarized_dialogue_round_trips_with_sessions_and_cut_turns(tmp_path):
    files = {split: str(tmp_path / f"{split}.txt") for split in ("train", "dev", "test")}
    for seed, (split, n) in enumerate([("train", 80), ("dev", 10), ("test", 10)]):
        write_dialogues(Path(files[split]), n, seed, max_words=8)
    tokenizer = {"type": "bpe", "vocab_size": 40, "byte_fallback": False}
    cfg = data_cfg(tmp_path / "cache", format="dialogue", max_len=5, tokenizer=tokenizer, **files)
    data = prepare_data(cfg, log=quiet, workers=1)
    for name, corpus in data.splits.items():
        examples, offsets = dialogue_pairs(read_dialogues(files[name])[0])
        assert list(data.texts[name]) == examples
        assert np.array_equal(data.sessions[name], offsets)
        encoded = encode_corpus(examples, data.tokenizer, tmp_path / "npz")
        cut = 5 if name == "train" else None
        for i in range(len(examples)):
            assert corpus.src_ids(i).tolist() == encoded.src_ids(i)[:cut].tolist()
            assert corpus.tgt_ids(i).tolist() == encoded.tgt_ids(i)[:cut].tolist()
    assert data.stats["train"]["truncated"] > 0 and data.splits["train"].src_lengths().max() == 5
    # Session batches over the memory maps equal those over in-memory copies.
    train, offsets = data.splits["train"], data.sessions["train"]
    copy = in_memory(train)
    for indices in session_sampler(train, offsets, max_tokens=200, seed=3).batches(0):
        mapped, loaded = (collate_sessions(c, offsets, indices, data.tokenizer.specials) for c in (train, copy))
        for a, b in zip(mapped.turns, loaded.turns, strict=True):
            assert torch.equal(a.src, b.src) and torch.equal(a.tgt_out, b.tgt_out)


# --- batches over memory maps --------------------------------------------------------------------------------------


def test_batches_and_tensors_over_memory_maps_equal_those_over_in_memory_arrays(tmp_path):
    data = prepare_data(toy_cfg(tmp_path), log=quiet, workers=1)
    mapped = data.splits["train"]
    loaded = in_memory(mapped)
    assert not isinstance(loaded.src, np.memmap)

    def sampler(corpus):
        return TokenBatchSampler.for_pairs(corpus.src_lengths(), corpus.tgt_lengths(), 300, max_sentences=40, seed=7)

    for epoch in (0, 1):
        batches = sampler(mapped).batches(epoch)
        assert [b.tolist() for b in batches] == [b.tolist() for b in sampler(loaded).batches(epoch)]
        for indices in batches:
            a, b = collate(mapped, indices, data.tokenizer.specials), collate(loaded, indices, data.tokenizer.specials)
            for field in ("src", "src_lengths", "tgt_in", "tgt_out"):
                assert torch.equal(getattr(a, field), getattr(b, field)), field
            assert a.n_tokens == b.n_tokens
    assert_same_ids(mapped.select([5, 0, 9]), loaded.select([5, 0, 9]))


# --- the cache -----------------------------------------------------------------------------------------------------


def test_a_second_prepare_data_reads_neither_corpus_nor_tokenizer(tmp_path, monkeypatch):
    first = prepare_data(toy_cfg(tmp_path), log=quiet, workers=1)
    first_ids = {name: in_memory(corpus) for name, corpus in first.splits.items()}
    monkeypatch.setattr(Tokenizer, "encode_src", lambda *a: pytest.fail("tokenized again"))
    monkeypatch.setattr(Tokenizer, "encode_tgt", lambda *a: pytest.fail("tokenized again"))
    monkeypatch.setattr(corpus_module, "read_lines", lambda *a: pytest.fail("read the corpus again"))
    logs: list[str] = []
    again = prepare_data(toy_cfg(tmp_path), log=logs.append)
    assert logs[0].startswith("binarized corpus: loaded cached") and logs[1:] == [
        line for line in logs[1:] if line.startswith("data ")
    ]
    for name, corpus in again.splits.items():
        assert_same_ids(corpus, first_ids[name])
    assert again.stats == first.stats and again.texts == first.texts
    assert again.tokenizer.fingerprint == first.tokenizer.fingerprint


def test_changed_corpus_files_and_settings_get_their_own_binarized_corpus(tmp_path):
    train = tmp_path / "train.tsv"
    train.write_bytes((TOY / "train.tsv").read_bytes())
    cfg = toy_cfg(tmp_path / "cache", train=str(train))
    path = binarized_dir(cfg)
    prepare_data(cfg, log=quiet, workers=1)
    assert binarized_dir(cfg) == path and (path / "manifest.json").is_file()
    assert binarized_dir(toy_cfg(tmp_path / "cache", train=str(train), max_len=10)) != path
    assert binarized_dir(toy_cfg(tmp_path / "cache", train=str(train), name="other")) == path  # names change no id
    train.write_bytes((TOY / "train.tsv").read_bytes()[:-200])
    assert binarized_dir(cfg) != path
    logs: list[str] = []
    data = prepare_data(cfg, log=logs.append, workers=1)
    assert any(line.startswith("binarized corpus: wrote") for line in logs)
    assert data.stats["train"]["read"] < 3000


def flip_byte(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


def edit_manifest(directory: Path) -> None:
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["splits"]["train"]["pairs"] -= 1
    (directory / "manifest.json").write_text(json.dumps(manifest))


DAMAGE = {
    "truncated-bin": lambda d: (d / "train.src.bin").write_bytes((d / "train.src.bin").read_bytes()[:-4]),
    "missing-idx": lambda d: (d / "dev.tgt.idx").unlink(),
    "no-manifest": lambda d: (d / "manifest.json").unlink(),
    "garbled-manifest": lambda d: (d / "manifest.json").write_text("{not json"),
    "edited-manifest": edit_manifest,
    "changed-tokenizer": lambda d: flip_byte(d / "tokenizer.model", 200),
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_damaged_binarized_corpus_is_rebuilt(damage, tmp_path):
    cfg = toy_cfg(tmp_path)
    first = prepare_data(cfg, log=quiet, workers=1)
    first_ids = {name: in_memory(corpus) for name, corpus in first.splits.items()}
    del first  # its memory maps would read the damaged files
    damage(binarized_dir(cfg))
    logs: list[str] = []
    again = prepare_data(cfg, log=logs.append, workers=1)
    assert any("— rebuilding it" in line for line in logs), logs
    for name, corpus in again.splits.items():
        assert_same_ids(corpus, first_ids[name])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary or stale directory left


def test_changed_bytes_of_the_same_size_need_verify(tmp_path):
    """Loading checks sizes and the manifest, not every byte (that would read the whole corpus at each start):
    verify=True (nmt-preprocess verify=true) hashes every file and rebuilds what differs."""
    cfg = toy_cfg(tmp_path)
    expected = in_memory(prepare_data(cfg, log=quiet, workers=1).splits["train"])
    flip_byte(binarized_dir(cfg) / "train.src.bin", 0)
    assert prepare_data(cfg, log=quiet).splits["train"].src[0] != expected.src[0]
    logs: list[str] = []
    assert_same_ids(prepare_data(cfg, log=logs.append, verify=True, workers=1).splits["train"], expected)
    assert any("train.src.bin: its sha256 differs" in line for line in logs), logs


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    with pytest.raises(corpus_module.CorpusError, match="no training pairs left after filtering"):
        prepare_data(toy_cfg(tmp_path, max_len=1), log=quiet, workers=1)
    assert not list(tmp_path.glob("*binarized-*"))


# --- workers -------------------------------------------------------------------------------------------------------


def test_several_workers_encode_exactly_as_one(tmp_path):
    examples = read_corpus(TOY / "train.tsv")
    tokenizer = build_tokenizer(toy_cfg(tmp_path).tokenizer, examples, tmp_path, log=quiet)
    one = list(encode_chunks(tokenizer, examples, workers=1, chunk_pairs=700))
    three = list(encode_chunks(tokenizer, examples, workers=3, chunk_pairs=700))
    assert [len(c) for c in three] == [700] * 4 + [200]
    for a, b in zip(one, three, strict=True):
        assert_same_ids(a, b)
    whole = encode_corpus(examples, tokenizer, tmp_path)
    assert np.array_equal(np.concatenate([c.src for c in three]), whole.src)
    assert np.array_equal(np.concatenate([c.tgt for c in three]), whole.tgt)


# --- memory --------------------------------------------------------------------------------------------------------

N_PAIRS = 8000  # the small corpus; the large one has 4x as many pairs
WORDS = ["".join(chr(97 + c) for c in np.random.default_rng(w).integers(0, 26, 3 + w % 5)) for w in range(400)]

# Runs in a fresh interpreter: the private (anonymous) memory it adds from before prepare_data to the peak over one
# epoch of batches. File pages of the memory maps are page cache, shared and reclaimable, so they do not count.
PROBE = r"""
import json, sys
import numpy as np
from omegaconf import OmegaConf
from nmt.config import DataConfig
from nmt.data import TokenBatchSampler, TokenizedCorpus, collate, prepare_data

def anon_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssAnon:"))

cfg = OmegaConf.merge(OmegaConf.structured(DataConfig), json.loads(sys.argv[1]))
before = anon_kb()
data = prepare_data(cfg, log=lambda _: None)
train = data.splits["train"]
if sys.argv[2] == "copy":  # the control: the same corpus as in-memory arrays
    train = TokenizedCorpus(*(np.array(a) for a in (train.src, train.src_offsets, train.tgt, train.tgt_offsets)))
sampler = TokenBatchSampler.for_pairs(train.src_lengths(), train.tgt_lengths(), 4096, seed=0)
peak = anon_kb()
for indices in sampler.batches(0):
    collate(train, indices, data.tokenizer.specials)
    peak = max(peak, anon_kb())
print(json.dumps({"growth_kb": peak - before}))
"""


def write_pairs(path: Path, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    words = np.array(WORDS)
    lines = [
        " ".join(words[rng.integers(0, len(words), rng.integers(20, 60))])
        + "\t"
        + " ".join(words[rng.integers(0, len(words), rng.integers(20, 60))])
        for _ in range(n)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Data configs of generated corpora of N_PAIRS and 4 * N_PAIRS pairs (the same dev and test files and a
    tokenizer model trained once), binarized."""
    tmp = tmp_path_factory.mktemp("generated")
    dev, test = write_pairs(tmp / "dev.tsv", 100, 1), write_pairs(tmp / "test.tsv", 100, 2)
    tokenizer_cfg = {"type": "unigram", "vocab_size": 500, "byte_fallback": False}
    schema = OmegaConf.structured(TokenizerConfig)
    build_tokenizer(OmegaConf.merge(schema, tokenizer_cfg), read_corpus(dev), tmp / "spm", log=quiet)
    model = str(next((tmp / "spm").glob("spm-*.model")))
    cfgs = {}
    for size in (N_PAIRS, 4 * N_PAIRS):
        train = write_pairs(tmp / f"train-{size}.tsv", size, size)
        tokenizer = {**tokenizer_cfg, "model": model}
        cfgs[size] = data_cfg(
            tmp / "cache", train=str(train), dev=str(dev), test=str(test), max_len=256, tokenizer=tokenizer
        )
        prepare_data(cfgs[size], log=quiet, workers=2)
    return cfgs


def test_workers_write_the_same_files_as_one_process(generated, tmp_path):
    """A corpus of several chunks, binarized by a pool of 2 workers (the fixture) and by one process."""
    pooled = generated[N_PAIRS]
    alone = OmegaConf.merge(pooled, {"cache_dir": str(tmp_path)})
    assert len(prepare_data(alone, log=quiet, workers=1).splits["train"]) == N_PAIRS
    assert binarized_dir(alone).name == binarized_dir(pooled).name  # the cache directory is not part of the key
    manifests = [json.loads((binarized_dir(c) / "manifest.json").read_text()) for c in (pooled, alone)]
    assert manifests[0]["files"] == manifests[1]["files"]


def probe(cfg, mode: str) -> int:
    settings = OmegaConf.to_container(cfg, resolve=True)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(settings), mode], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)["growth_kb"] * 1024


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads RssAnon from /proc (Linux)")
def test_iterating_a_binarized_corpus_takes_memory_independent_of_its_size(generated):
    ids_bytes = {}
    for size, cfg in generated.items():
        manifest = json.loads((binarized_dir(cfg) / "manifest.json").read_text())
        ids_bytes[size] = sum(manifest["files"][f"train.{side}.bin"]["bytes"] for side in ("src", "tgt"))
    small, large = N_PAIRS, 4 * N_PAIRS
    growth = {size: probe(cfg, "mapped") for size, cfg in generated.items()}
    copied = probe(generated[large], "copy")
    # The probe sees in-memory ids: copying them adds about their size.
    assert copied - growth[large] > 0.8 * ids_bytes[large], (copied, growth, ids_bytes)
    # Memory-mapped, 4x the corpus adds only the per-pair lengths the sampler sorts (tens of bytes a pair).
    assert growth[large] - growth[small] < 0.3 * (ids_bytes[large] - ids_bytes[small]), (growth, ids_bytes)


# --- nmt-preprocess ------------------------------------------------------------------------------------------------


def test_nmt_preprocess_builds_verifies_and_names_nmt_trains_corpus(tmp_path, capsys):
    overrides = ["data=toy", f"paths.cache_dir={tmp_path}"]
    preprocess.main([*overrides, "workers=2"])
    out, err = capsys.readouterr()
    path = Path(out.strip())
    assert path.parent == tmp_path and (path / "manifest.json").is_file()
    assert "nmt-preprocess: binarized corpus: wrote" in err
    assert path == binarized_dir(compose_config("train", overrides).data)
    preprocess.main([*overrides, "verify=true"])
    out, err = capsys.readouterr()
    assert Path(out.strip()) == path and "(sha256 of every file verified)" in err
    with pytest.raises(SystemExit) as info:
        preprocess.main([*overrides, "workers=0"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.strip().count("\n") == 0 and "workers=0: must be at least 1" in err
    # An experiment's data settings count: nmt-preprocess takes nmt-train's overrides.
    quick = ["experiment=quickstart", f"paths.cache_dir={tmp_path}"]
    assert binarized_dir(compose_config("preprocess", quick).data) == binarized_dir(compose_config("train", quick).data)
    assert binarized_dir(compose_config("preprocess", quick).data) != binarized_dir(
        compose_config("train", quick[1:]).data
    )
