"""Shared fixtures: configs composed with hydra.compose on the toy corpus, and a tiny model."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from nmt.config import MODEL_SCHEMAS, register_configs
from nmt.models import build_model

ROOT = Path(__file__).resolve().parents[1]

# Per architecture, sizes small enough for tests to run (and train) in seconds on a CPU.
TINY_SIZES = {
    "rnn": {"embed_dim": 32, "hidden_size": 64, "encoder_layers": 1, "decoder_layers": 1},
    "lstm_attn": {"embed_dim": 32, "hidden_size": 64, "encoder_layers": 1, "decoder_layers": 1},
    "transformer": {"d_model": 32, "ffn_dim": 64, "heads": 2, "encoder_layers": 2, "decoder_layers": 2},
}


def tiny_settings(name, **overrides) -> dict:
    """Model `name` at its tiny size without dropout (unless overridden). A memory-LSTM takes `backbone` and
    `memory` options; its other overrides go to the backbone."""
    if name != "memory_lstm":
        return {**TINY_SIZES[name], "dropout": 0.0, **overrides}
    backbone = overrides.pop("backbone", "transformer")
    memory = {"hidden_size": 16, **overrides.pop("memory", {})}
    return {"backbone": backbone, "memory": memory, backbone: tiny_settings(backbone, **overrides)}


def build_tiny(name, src_vocab_size=30, tgt_vocab_size=40, joint_vocab=False, seed=0, **overrides):
    """Model `name` at its tiny size (tiny_settings), pad id 0, seeded."""
    cfg = OmegaConf.merge(OmegaConf.structured(MODEL_SCHEMAS[name]), tiny_settings(name, **overrides))
    torch.manual_seed(seed)
    return build_model(cfg, src_vocab_size, tgt_vocab_size, 0, joint_vocab)


DIALOGUE_WORDS = "hi hello how are you fine thanks good see bye yes no sure what where home now".split()


def write_dialogues(path, n_sessions: int, seed: int, max_words: int = 4) -> list[list[str]]:
    """Write n_sessions random dialogues of 2-5 turns (1 to max_words words each) in DailyDialog's format; return
    them."""
    rng = random.Random(seed)
    sessions = [
        [" ".join(rng.choices(DIALOGUE_WORDS, k=rng.randint(1, max_words))) for _ in range(rng.randint(2, 5))]
        for _ in range(n_sessions)
    ]
    path.write_text("".join(" __eou__ ".join(turns) + " __eou__\n" for turns in sessions), encoding="utf-8")
    return sessions


@pytest.fixture(scope="session")
def dialogue_data(tmp_path_factory) -> list[str]:
    """The overrides of a tiny random dialogue corpus (train 40 sessions, dev and test 4) for the memory-LSTM."""
    tmp = tmp_path_factory.mktemp("dialogues")
    for split, n, seed in [("train", 40, 1), ("dev", 4, 2), ("test", 4, 3)]:
        write_dialogues(tmp / f"{split}.txt", n, seed=seed)
    return [
        "data=dailydialog",
        *(f"data.{split}={tmp / f'{split}.txt'}" for split in ("train", "dev", "test")),
        "data.tokenizer.type=bpe",
        "data.tokenizer.vocab_size=40",
        "data.tokenizer.byte_fallback=false",
    ]


def padded_batch():
    """src (4, 9) with padded rows 1 and 2, their lengths, tgt (4, 7) with a padded row 3; ids 4..29 / 4..39."""
    torch.manual_seed(1)
    src = torch.randint(4, 30, (4, 9))
    src[1, 6:] = 0
    src[2, 3:] = 0
    tgt = torch.randint(4, 40, (4, 7))
    tgt[3, 4:] = 0
    return src, (src != 0).sum(1), tgt


def tiny_model(name: str = "lstm_attn", **options) -> list[str]:
    """Hydra overrides selecting model `name` at its tiny size (tiny_settings), without dropout."""

    def flat(prefix, settings):
        for key, value in settings.items():
            yield from flat(f"{prefix}.{key}", value) if isinstance(value, dict) else [f"{prefix}.{key}={value}"]

    return [f"model={name}", *flat("model", tiny_settings(name, **options))]


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Tokenizer and id caches of the test session live in a temporary directory, not the repository."""
    os.environ["NMT_CACHE_DIR"] = str(tmp_path_factory.mktemp("nmt-cache"))
    register_configs()


def refused(call, path, *needles: str) -> str:
    """The CheckpointError `call` raises: one line, starting with the file's name `path`, holding each needle."""
    from nmt.training.checkpoint import CheckpointError

    with pytest.raises(CheckpointError) as info:
        call()
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    assert message.startswith(str(path)), message
    for needle in needles:
        assert needle in message, message
    return message


def compose_config(name: str, overrides: list[str]):
    with initialize_config_module("nmt.configs", version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


@pytest.fixture
def toy_cfg(tmp_path):
    """A train config on the toy corpus with the tiny model; call it with extra overrides."""

    def make(*overrides: str, model: str = "lstm_attn"):
        base = ["data=toy", *tiny_model(model), f"paths.log_dir={tmp_path}/outputs", "trainer.progress_bar=false"]
        return compose_config("train", [*base, *overrides])

    return make
