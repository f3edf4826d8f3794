"""Every config group composes with hydra.compose; typos and wrong types are rejected."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from nmt import cli
from nmt.cli import config_error_message
from nmt.config import MODEL_SCHEMAS, DataConfig, OptimConfig, TeacherForcingConfig, TrainerConfig
from nmt.errors import UserError
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


@pytest.mark.parametrize(
    ("overrides", "valid"),
    [
        (["model.attention=dotty"], "dot, general, bahdanau"),
        (["teacher_forcing.feed=smaple"], "argmax, sample"),
        (["trainer.precision=bf16"], "32, bf16-mixed, 16-mixed"),
        (["optim.scheduler=cosin"], "constant, inverse_sqrt, linear, cosine, noam"),
        (["model=transformer", "model.norm=prenorm"], "pre, post"),
        (["trainer.search.stop=early"], "bound, full_beam, top_eos"),
        (["trainer.device=gpu"], "auto, cpu, cuda"),
        (["kernels.matmul=mkl"], "auto, onednn, blas"),
        (["model=rnn", "model.cell=lstm2"], "rnn, gru, lstm"),
        (["teacher_forcing.coin=coin"], "token, step"),
        (["data.batch_order=shuffled"], "bucketed, sorted, random"),
    ],
)
def test_a_misspelt_choice_fails_at_composition_naming_the_valid_values(overrides, valid):
    with pytest.raises(ConfigCompositionException) as info:
        compose_config("train", overrides)
    message = config_error_message(info.value)
    assert len(message.splitlines()) == 1 and f"expected one of [{valid}]" in message, message


@pytest.mark.parametrize("config", ["eval", "translate"])
def test_inference_choices_are_checked_too(config):
    with pytest.raises(ConfigCompositionException, match="stop"):
        compose_config(config, ["ckpt=x.pt", "stop=sometimes"])


def test_precision_32_reads_as_the_string_it_is_written_as():
    assert compose_config("train", ["trainer.precision=32"]).trainer.precision == "32"
    assert f"{compose_config('train', []).trainer.precision}" == "32"


def _leaves(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


SCHEMA_GROUPS = ("model", "data", "trainer", "optim", "teacher_forcing")


@pytest.mark.parametrize(
    "path",
    # Options built on another option (multi30k_en_de on multi30k_de_en) override that one's values on purpose.
    sorted(
        p
        for group in SCHEMA_GROUPS
        for p in (CONFIGS / group).glob("*.yaml")
        if OmegaConf.load(p).defaults[0].endswith("_schema")
    ),
    ids=lambda p: f"{p.parent.name}/{p.stem}",
)
def test_a_group_option_sets_only_what_differs_from_its_schema(path):
    """One source of defaults: the dataclasses of nmt/config.py. A group option file repeating one of them could
    later disagree with it, as trainer/default.yaml's log_every once did."""
    raw = OmegaConf.to_container(OmegaConf.load(path))
    schema = dict(_schemas())[raw.pop("defaults")[0]]
    defaults = dict(_leaves(OmegaConf.to_container(OmegaConf.structured(schema), enum_to_str=True)))
    repeated = [key for key, value in _leaves(raw) if key in defaults and defaults[key] == value]
    assert not repeated, f"{path.name} repeats its schema's defaults: {', '.join(repeated)}"


def _schemas():
    """(name in a defaults list, dataclass) of every group's schema."""
    yield from [("trainer_schema", TrainerConfig), ("optim_schema", OptimConfig), ("data_schema", DataConfig)]
    yield ("teacher_forcing_schema", TeacherForcingConfig)
    yield from ((f"{name}_schema", schema) for name, schema in MODEL_SCHEMAS.items())


@pytest.mark.parametrize(
    ("name", "override", "message"),
    [
        ("train", "optim.lr=-1", "optim.lr=-1.0: must be > 0"),
        ("train", "model.dropout=2", "model.dropout=2.0: must be in [0, 1)"),
        ("train", "trainer.log_every=0", "trainer.log_every=0: must be >= 1"),
        ("train", "model=memory_lstm", None),
        ("train", "model.transformer.dropout=1", "model.transformer.dropout=1.0: must be in [0, 1)"),
        ("translate", "batch_size=0", "batch_size=0: must be >= 1"),
        ("eval", "beam_size=-5", "beam_size=-5: must be >= 1"),
    ],
)
def test_a_setting_out_of_its_range_is_an_error_naming_it(name, override, message):
    overrides = ["model=memory_lstm", override] if override.startswith("model.transformer") else [override]
    if message is None:
        cli.compose_config(name, overrides)  # the memory-LSTM's nested dropouts pass at their defaults
        return
    with pytest.raises(UserError, match=f"^{re.escape(message)}$"):
        cli.compose_config(name, overrides)
