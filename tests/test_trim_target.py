"""data.tokenizer.trim_target: a target vocabulary of only the pieces the training targets use."""

from __future__ import annotations

import random

import pytest
import torch

from nmt.data import Tokenizer, prepare_data
from nmt.data.corpus import CorpusError
from nmt.training.checkpoint import load_for_inference
from nmt.training.trainer import Trainer
from tests.conftest import compose_config, tiny_model


def write_corpus(path, pairs: int, seed: int) -> None:
    """Lowercase words -> the same words in capitals with a '!': the target side uses other pieces."""
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghij") for _ in range(rng.randint(2, 5))) for _ in range(30)]
    lines = []
    for _ in range(pairs):
        source = " ".join(rng.choice(words) for _ in range(rng.randint(2, 6)))
        lines.append(f"{source}\t{source.upper()} !\n")
    path.write_text("".join(lines), encoding="utf-8")


@pytest.fixture
def trimmed_cfg(tmp_path):
    for split, n, seed in (("train", 300, 0), ("dev", 20, 1), ("test", 20, 2)):
        write_corpus(tmp_path / f"{split}.tsv", n, seed)

    def make(*overrides: str):
        files = [f"data.{split}={tmp_path / split}.tsv" for split in ("train", "dev", "test")]
        base = ["data=files", *files, "data.tokenizer.type=bpe", "data.tokenizer.vocab_size=60"]
        base += ["data.tokenizer.byte_fallback=false", f"paths.cache_dir={tmp_path}/cache"]
        base += [f"paths.log_dir={tmp_path}/outputs", "trainer.progress_bar=false"]
        return compose_config("train", [*base, *overrides])

    return make


def test_the_target_vocabulary_keeps_the_specials_and_the_pieces_in_use(trimmed_cfg):
    full = prepare_data(trimmed_cfg().data, log=lambda _: None)
    data = prepare_data(trimmed_cfg("data.tokenizer.trim_target=true").data, log=lambda _: None)
    tokenizer = data.tokenizer
    assert tokenizer.src_vocab_size == full.tokenizer.src_vocab_size
    assert tokenizer.tgt_vocab_size < full.tokenizer.tgt_vocab_size  # no lowercase piece is a target piece
    assert tokenizer.specials == full.tokenizer.specials and not tokenizer.shared_vocab
    train = data.splits["train"]
    assert int(train.tgt.max()) < tokenizer.tgt_vocab_size
    for i in range(20):
        ids = train.tgt_ids(i)
        assert tokenizer.decode_tgt(ids) == data.texts["train"][i].tgt
        assert tokenizer.specials.unk not in ids
        assert "".join(tokenizer.tgt_pieces_of(ids)).replace("\u2581", " ").strip() == data.texts["train"][i].tgt
    # A piece no training target uses reads as unk; the source side is untouched.
    assert tokenizer.encode_tgt(["abc"])[0] == [tokenizer.specials.unk] * len(tokenizer.encode_tgt(["abc"])[0])
    assert tokenizer.encode_src(["abc"]) == full.tokenizer.encode_src(["abc"])
    again = Tokenizer.from_state(tokenizer.state())
    assert again.fingerprint == tokenizer.fingerprint != full.tokenizer.fingerprint
    # A second prepare_data reads the binarized corpus back with the same trimmed tokenizer.
    assert (
        prepare_data(trimmed_cfg("data.tokenizer.trim_target=true").data, log=lambda _: None).tokenizer.fingerprint
        == tokenizer.fingerprint
    )


def test_a_trimmed_model_trains_and_reloads_with_its_vocabulary(trimmed_cfg, tmp_path):
    cfg = trimmed_cfg(
        "data.tokenizer.trim_target=true",
        *tiny_model("transformer"),
        "model.share_embeddings=true",
        "trainer.max_steps=4",
        "trainer.eval_every=4",
    )
    trainer = Trainer(cfg, tmp_path / "run")
    assert trainer.model.output.out_features == trainer.tokenizer.tgt_vocab_size
    assert trainer.model.src_embed is not trainer.model.tgt_embed  # other ids on the two sides: nothing shared
    trainer.fit()
    model, tokenizer, _ = load_for_inference(tmp_path / "run" / "checkpoints" / "best.pt", torch.device("cpu"))
    assert tokenizer.fingerprint == trainer.tokenizer.fingerprint
    assert model.output.out_features == tokenizer.tgt_vocab_size


def test_specials_that_do_not_come_first_are_refused(trimmed_cfg):
    tokenizer = prepare_data(trimmed_cfg().data, log=lambda _: None).tokenizer
    state = tokenizer.state()
    with pytest.raises(CorpusError, match=r"special ids .* first ids — set data\.tokenizer\.trim_target=false"):
        Tokenizer(state["src_model"], target_ids=[10, 11, 12, 13, 14])
