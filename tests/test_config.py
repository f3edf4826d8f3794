"""Every config group composes with hydra.compose; typos and wrong types are rejected."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from tests.conftest import ROOT, compose_config

CONFIGS = Path(ROOT, "src/nmt/configs")


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


@pytest.mark.parametrize("group", ["model", "data", "trainer", "optim", "experiment"])
def test_every_option_of_every_group_composes(group):
    assert _options(group), f"no configs in {group}/"
    for option in _options(group):
        # data=files (and the peer protocol, which uses it) names its files on the command line
        overrides = [f"{group}={option}"] + (["data.train=x.tsv"] if option in ("files", "peer_protocol") else [])
        cfg = compose_config("train", overrides)
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def test_default_is_lstm_attention_on_bundled_tatoeba():
    cfg = compose_config("train", [])
    assert cfg.model.name == "lstm_attn"
    assert cfg.data.name == "tatoeba_fra_eng"
    assert Path(cfg.data.train).is_file(), "the default corpus must be bundled"


@pytest.mark.parametrize(
    "override",
    ["trainer.max_step=5", "model.hiden_size=3", "data.tokenizer.vocab=10", "optim.learning_rate=1", "typo=1"],
)
def test_typo_in_an_override_is_rejected(override):
    with pytest.raises(ConfigCompositionException):
        compose_config("train", [override])


@pytest.mark.parametrize("override", ["trainer.max_steps=many", "model.embed_dim=big", "model.bidirectional=maybe"])
def test_wrong_type_is_rejected(override):
    with pytest.raises((ConfigCompositionException, ValidationError)):
        compose_config("train", [override])


def test_multi30k_en_de_swaps_the_languages():
    cfg = compose_config("train", ["data=multi30k_en_de"])
    assert cfg.data.train[0].endswith("train.en.gz") and cfg.data.train[1].endswith("train.de.gz")


def test_eval_and_translate_configs_compose():
    assert compose_config("eval", ["ckpt=x.pt", "beam_size=3"]).beam_size == 3
    assert compose_config("translate", []).ckpt is None
    with pytest.raises(ConfigCompositionException):
        compose_config("translate", ["beam=3"])
