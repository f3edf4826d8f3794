"""nmt-doctor: each check tells a planted bug from a healthy model, and the CLI prints every check."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from nmt.cli import doctor
from nmt.config import MODEL_SCHEMAS, KernelsConfig
from nmt.cpu_kernels import use_cpu_kernels
from nmt.data import collate, prepare_data
from nmt.models.base import EncoderOut, LSTMState
from nmt.models.lstm_attn import LSTMAttention
from nmt.training import device as device_module
from nmt.training import diagnostics
from nmt.training.diagnostics import (
    Check,
    data_report,
    decoding_report,
    gradient_flow,
    initialisation,
    overfit_one_batch,
    precision_report,
)
from tests.conftest import TINY_SIZES, build_tiny, compose_config, tiny_model

NAMES = ("data", "gradient flow", "initialisation", "overfit one batch", "decoding", "precision")


class DetachedEncoder(LSTMAttention):
    """The planted bug: the decoder sees the encoder's outputs through .detach(), so the encoder never learns."""

    def encode(self, src, src_lengths) -> EncoderOut:
        enc = super().encode(src, src_lengths)
        return EncoderOut(
            enc.memory.detach(),
            enc.mask,
            tuple(t.detach() for t in enc.cache),
            LSTMState(enc.final.h.detach(), enc.final.c.detach()),
        )


@pytest.fixture(scope="module")
def toy():
    """The toy corpus prepared, and 8 of its training pairs as one batch."""
    data = prepare_data(compose_config("train", ["data=toy"]).data, log=lambda _: None)
    return data, collate(data.splits["train"], range(8), data.tokenizer.specials)


def _tiny(name, data):
    """Model `name` at its tiny size over the toy vocabulary (whose pad id is build_tiny's 0)."""
    tok = data.tokenizer
    return build_tiny(name, tok.src_vocab_size, tok.tgt_vocab_size, tok.joint)


def test_gradient_flow_names_a_detached_encoder(toy):
    data, batch = toy
    vocab, pad = data.tokenizer.tgt_vocab_size, data.tokenizer.specials.pad
    torch.manual_seed(0)
    cfg = OmegaConf.structured(MODEL_SCHEMAS["lstm_attn"](**TINY_SIZES["lstm_attn"], dropout=0.0))
    broken = gradient_flow(DetachedEncoder(cfg, vocab, vocab, pad), batch, pad)
    assert broken.status == "fail"
    # Every encoder parameter is named (the embedding and both directions of the LSTM), and the attention's key
    # projection, which encode() applies to the memory and whose keys the planted bug detaches too; nothing else.
    unreached = broken.detail.split(": ", 1)[1].split(" — ")[0].split(", ")
    weights = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    lstm = [f"encoder.rnn.{w}_l0{d}" for d in ("", "_reverse") for w in weights]
    assert sorted(unreached) == sorted(["encoder.embed.weight", *lstm, "attention.proj.weight"])
    assert "(all of encoder.embed, encoder.rnn.l0, attention.proj)" in broken.detail
    assert gradient_flow(_tiny("lstm_attn", data), batch, pad).status == "pass"


def test_gradient_flow_names_a_memory_lstm_encoder_layer_that_never_trains(toy):
    data, batch = toy
    model = _tiny("memory_lstm", data)
    layer = model.backbone.encoder[0]
    layer.register_forward_hook(lambda module, args, out: out.detach())  # its output reaches the loss as a constant
    check = gradient_flow(model, batch, data.tokenizer.specials.pad)
    assert check.status == "fail" and "backbone.encoder.0)" in check.detail
    assert "backbone.encoder.0.self_attn.query.weight" in check.detail
    assert "backbone.encoder.1" not in check.detail and "memory" not in check.detail


@pytest.mark.parametrize("name", ["rnn", "lstm_attn", "transformer"])
def test_a_healthy_model_overfits_one_batch(toy, name):
    data, batch = toy
    model = _tiny(name, data)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    check = overfit_one_batch(model, batch, data.tokenizer.specials.pad, lr=3e-3)
    assert check.status == "pass", check.detail
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # it trained a copy


@pytest.mark.parametrize("kernel", ["fast", "torch"])
@pytest.mark.parametrize("name", ["lstm_attn", "transformer"])
def test_overfit_one_batch_trains_without_dropout_whatever_the_kernels(toy, monkeypatch, name, kernel):
    data, batch = toy
    tok = data.tokenizer
    model = build_tiny(name, tok.src_vocab_size, tok.tgt_vocab_size, tok.joint, dropout=0.3)
    use_cpu_kernels(model, OmegaConf.structured(KernelsConfig(matmul="blas", dropout=kernel)), torch.device("cpu"))
    rates = []

    def loss_recording_dropout(trial, *args):
        rates.extend(m.p for m in trial.modules() if isinstance(m, nn.Dropout))
        outputs = [
            diagnostics.sequence_loss(trial(b.src, b.src_lengths, b.tgt_in), b.tgt_out, args[1]).loss
            for b in (args[0], args[0])
        ]
        assert torch.equal(*outputs), "two forward passes of the trial model differ: dropout is still on"
        return outputs[0]

    monkeypatch.setattr(diagnostics, "_loss", loss_recording_dropout)
    check = overfit_one_batch(model, batch, tok.specials.pad, lr=3e-3)
    assert rates and set(rates) == {0.0}
    assert {m.p for m in model.modules() if isinstance(m, nn.Dropout)} == {0.3}  # the model itself keeps its rate
    assert check.status == "pass", check.detail


def test_overfitting_fails_without_learning(toy):
    data, batch = toy
    check = overfit_one_batch(_tiny("lstm_attn", data), batch, data.tokenizer.specials.pad, lr=0.0, steps=5)
    assert check.status == "fail" and "broken, not under-trained" in check.detail


def test_initialisation_flags_exploding_activations(toy):
    data, batch = toy
    pad = data.tokenizer.specials.pad
    model = _tiny("lstm_attn", data)
    assert initialisation(model, batch, pad).status == "pass"
    with torch.no_grad():
        model.output.weight.mul_(1e5)
    check = initialisation(model, batch, pad)
    assert check.status == "warn" and "(output)" in check.detail


def test_initialisation_flags_saturated_recurrent_gates(toy):
    data, batch = toy
    pad = data.tokenizer.specials.pad
    model = _tiny("lstm_attn", data)
    assert initialisation(model, batch, pad).status == "pass"
    with torch.no_grad():
        model.encoder.rnn.weight_ih_l0.mul_(1e3)  # every gate pre-activation far from zero
    check = initialisation(model, batch, pad)
    assert check.status == "warn" and "encoder.rnn gates" in check.detail


def test_data_and_decoding_reports(toy_cfg):
    cfg = toy_cfg()
    data = prepare_data(cfg.data, log=lambda _: None)
    batch = collate(data.splits["train"], range(8), data.tokenizer.specials)
    report = data_report(data, [batch])
    assert isinstance(report, Check) and report.status == "pass" and "<unk> 0.00%" in report.detail
    decoded = decoding_report(_tiny("lstm_attn", data), data, cfg.trainer.search, torch.device("cpu"), n=10)
    assert isinstance(decoded, Check) and decoded.status in ("pass", "warn")
    assert decoded.detail.startswith("10 dev sentences")


def _doctor(argv: list[str]) -> int:
    """nmt-doctor's exit status."""
    try:
        doctor.main(argv)
    except SystemExit as e:
        return e.code
    return 0


def test_cli_prints_every_check(capsys):
    code = _doctor(["data=toy", *tiny_model("lstm_attn"), "trainer.device=cpu", "trainer.max_tokens=512"])
    table = capsys.readouterr().out.splitlines()
    rows = {name: line for line in table[1:] for name in NAMES if line.startswith(name + " ")}
    assert set(rows) == set(NAMES)
    assert max(map(len, table)) <= doctor.TABLE_WIDTH
    statuses = {name: row[len(name) :].split()[0] for name, row in rows.items()}
    assert set(statuses.values()) <= {"pass", "warn", "fail"}
    assert code == (1 if "fail" in statuses.values() else 0)


@pytest.mark.parametrize(
    ("precision", "emulated", "status"),
    [("bf16-mixed", True, "warn"), ("bf16-mixed", False, "pass"), ("32", True, "pass")],
)
def test_precision_warns_of_emulated_bf16(monkeypatch, precision, emulated, status):
    monkeypatch.setattr(device_module, "emulated_bf16", lambda device: emulated)
    check = precision_report(precision, torch.device("cpu"))
    assert check.status == status
    assert (check.knob == "trainer.precision=32") is (status == "warn")


def test_cli_checks_a_trained_checkpoint(toy_cfg, tmp_path, capsys):
    from nmt.training.trainer import Trainer

    run = tmp_path / "run"
    Trainer(toy_cfg("trainer.max_steps=30", "trainer.max_tokens=1024", "trainer.eval_every=30"), run).fit()
    capsys.readouterr()
    _doctor([f"ckpt={run}", "trainer.max_tokens=512"])
    table = capsys.readouterr().out.splitlines()
    names = [name for name in (*NAMES, "activations") if any(line.startswith(name + " ") for line in table)]
    assert names == ["data", "gradient flow", "overfit one batch", "decoding", "precision", "activations"]
    gradient = next(line for line in table if line.startswith("gradient flow "))
    assert gradient.split()[2] == "pass", gradient  # every layer of the trained model still gets a gradient


def test_cli_refuses_a_checkpoint_of_other_data(toy_cfg, tmp_path, capsys):
    from nmt.training.trainer import Trainer

    run = tmp_path / "run"
    Trainer(toy_cfg("trainer.max_steps=2", "trainer.max_tokens=1024", "trainer.eval_every=2"), run).fit()
    assert _doctor([f"ckpt={run}", "data.tokenizer.vocab_size=28"]) == 2
    assert "its vocabulary differs" in capsys.readouterr().err
