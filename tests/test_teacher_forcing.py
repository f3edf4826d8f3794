"""Teacher forcing: schedules follow their formulas, ratio 1 is the fast path, ratio 0 feeds only predictions."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from nmt.config import TeacherForcingConfig
from nmt.training.loss import sequence_loss
from nmt.training.teacher_forcing import _coins, _step_by_step, _two_pass, forced_logits, tf_ratio
from nmt.training.trainer import Trainer
from tests.conftest import build_tiny, padded_batch


def _tf(**kwargs):
    return OmegaConf.structured(TeacherForcingConfig(**kwargs))


def test_each_schedule_follows_its_formula():
    linear = _tf(schedule="linear", k=1.0, c=0.001, min_ratio=0.3)
    assert [tf_ratio(linear, i, 0) for i in (0, 200, 700, 5000)] == pytest.approx([1.0, 0.8, 0.3, 0.3])
    exponential = _tf(schedule="exponential", k=0.99)
    assert [tf_ratio(exponential, i, 0) for i in (0, 10, 100)] == pytest.approx([1.0, 0.99**10, 0.99**100])
    sigmoid = _tf(schedule="inverse_sigmoid", k=100.0)
    for i in (0, 300, 460, 10**6):
        assert tf_ratio(sigmoid, i, 0) == pytest.approx(100 / (100 + math.exp(min(i / 100, 700))))
    assert tf_ratio(_tf(schedule="constant", ratio=0.8), 12345, 7) == 0.8
    by_epoch = _tf(schedule="linear", k=1.0, c=0.1, unit="epoch")
    assert tf_ratio(by_epoch, step=10**6, epoch=3) == pytest.approx(0.7)


def test_bad_schedule_settings_are_errors():
    with pytest.raises(ValueError, match=r"'cosine', expected one of \[constant, linear, exponential"):
        tf_ratio(_tf(schedule="cosine"), 0, 0)
    with pytest.raises(ValueError, match=r"'batch', expected one of \[step, epoch\]"):
        tf_ratio(_tf(unit="batch"), 0, 0)


@pytest.mark.parametrize("name", ["rnn", "lstm_attn", "transformer"])
def test_ratio_one_equals_the_whole_sequence_pass(name):
    model = build_tiny(name).eval()
    src, lengths, tgt = padded_batch()
    all_gold = torch.ones_like(tgt, dtype=torch.bool)
    run = _step_by_step if name != "transformer" else _two_pass
    slow = model.output(run(model, model.encode(src, lengths), tgt, all_gold, _tf()))
    fast = forced_logits(model, model.encode(src, lengths), tgt, _tf(), 1.0)
    torch.testing.assert_close(slow, fast, rtol=1e-5, atol=1e-5)
    loss = sequence_loss(slow, tgt, 0, 0.1).loss
    assert loss.item() == pytest.approx(sequence_loss(fast, tgt, 0, 0.1).loss.item(), abs=1e-6)


def _record_inputs(model):
    """Every call's input ids to the target embedding, in order."""
    calls = []
    model.tgt_embed.register_forward_hook(lambda module, args, out: calls.append(args[0].clone()))
    return calls


@pytest.mark.parametrize("name", ["rnn", "lstm_attn"])
def test_ratio_zero_feeds_back_exactly_the_models_argmax(name):
    model = build_tiny(name).eval()
    src, lengths, tgt = padded_batch()
    calls = _record_inputs(model)
    logits = forced_logits(model, model.encode(src, lengths), tgt, _tf(), 0.0)
    fed = torch.cat(calls, dim=1)  # one column per step
    assert torch.equal(fed[:, 0], tgt[:, 0]), "the first input is BOS"
    assert torch.equal(fed[:, 1:], logits[:, :-1].argmax(-1))
    assert not torch.equal(fed[:, 1:], tgt[:, 1:]), "an untrained model's predictions differ from the gold tokens"


def test_transformer_second_pass_reads_the_first_pass_predictions():
    model = build_tiny("transformer").eval()
    src, lengths, tgt = padded_batch()
    predictions = model(src, lengths, tgt).argmax(-1)
    calls = _record_inputs(model)
    forced_logits(model, model.encode(src, lengths), tgt, _tf(), 0.0)
    first, second = calls
    assert torch.equal(first, tgt)
    assert torch.equal(second[:, 0], tgt[:, 0]) and torch.equal(second[:, 1:], predictions[:, :-1])


def test_sampled_feedback_draws_from_the_distribution_and_carries_no_gradient():
    model = build_tiny("lstm_attn")
    src, lengths, tgt = padded_batch()
    calls = _record_inputs(model)
    logits = forced_logits(model, model.encode(src, lengths), tgt, _tf(feed="sample"), 0.0)
    assert logits.requires_grad and not any(c.requires_grad for c in calls)
    assert not torch.equal(torch.cat(calls, 1)[:, 1:], logits[:, :-1].argmax(-1)), "samples are not all argmax"


def test_a_coin_per_step_decides_for_the_whole_batch():
    torch.manual_seed(0)
    coins = _coins(_tf(coin="step"), 0.5, (6, 40), "cpu")
    assert (coins == coins[:1]).all() and coins[0].any() and not coins[0].all()
    per_token = _coins(_tf(coin="token"), 0.5, (6, 40), "cpu")
    assert not (per_token == per_token[:1]).all()


def test_the_transformer_two_pass_loss_differs_from_teacher_forcing_and_it_trains(toy_cfg, tmp_path):
    model = build_tiny("transformer")
    src, lengths, tgt = padded_batch()
    torch.manual_seed(0)
    model.eval()
    sampled = sequence_loss(forced_logits(model, model.encode(src, lengths), tgt, _tf(), 0.3), tgt, 0, 0.0).loss
    forced = sequence_loss(forced_logits(model, model.encode(src, lengths), tgt, _tf(), 1.0), tgt, 0, 0.0).loss
    assert abs(sampled.item() - forced.item()) > 1e-3

    cfg = toy_cfg(
        "teacher_forcing.ratio=0.5",
        "trainer.max_steps=150",
        "trainer.eval_every=150",
        "trainer.max_tokens=1024",
        "optim.lr=2e-3",
        "optim.warmup_steps=30",
        "trainer.log_every=10",
        model="transformer",
    )
    trainer = Trainer(cfg, tmp_path / "run")
    results = trainer.fit()
    untrained = math.log(trainer.tokenizer.tgt_vocab_size)  # the loss of a uniform prediction
    assert results["dev"]["loss"] < 0.5 * untrained, results["dev"]


def test_resume_continues_the_schedule_and_the_coins(toy_cfg, tmp_path):
    common = [
        "teacher_forcing=linear",
        "teacher_forcing.c=0.01",
        "trainer.max_tokens=1024",
        "trainer.eval_every=10",
        "trainer.deterministic=true",
    ]
    Trainer(toy_cfg(*common, "trainer.max_steps=30"), tmp_path / "straight").fit()
    Trainer(toy_cfg(*common, "trainer.max_steps=15"), tmp_path / "first").fit()
    resumed = Trainer(toy_cfg(*common, "trainer.max_steps=30", f"trainer.resume={tmp_path / 'first'}"), tmp_path / "b")
    assert resumed.current_tf_ratio() == pytest.approx(0.85)
    resumed.fit()
    from nmt.training.checkpoint import load_checkpoint

    straight = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")["model"]
    second = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["model"]
    for name, value in straight.items():
        torch.testing.assert_close(second[name], value, rtol=0, atol=1e-6, msg=name)
