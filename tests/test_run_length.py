"""How long a run trains: max_steps over max_epochs, the time budget trainer.max_minutes, and the stated reason."""

from __future__ import annotations

import itertools

import pytest

from nmt.errors import UserError
from nmt.training.checkpoint import load_checkpoint
from nmt.training.trainer import Trainer

FAST = ["trainer.max_tokens=1024", "trainer.dev_max_sentences=20", "trainer.eval_every=null"]


def test_max_steps_wins_over_max_epochs(toy_cfg, tmp_path, caplog):
    trainer = Trainer(toy_cfg(*FAST, "trainer.max_epochs=1", "trainer.max_steps=40"), tmp_path / "run")
    per_epoch = len(trainer.sampler)
    assert per_epoch < 40, "the step count must outlast one epoch for this test to mean anything"
    with caplog.at_level("INFO", logger="nmt.train"):
        results = trainer.fit()
    assert results["steps"] == 40 and results["epochs"] == 1
    assert "training for 40 steps (trainer.max_steps)" in caplog.text
    assert "training stopped at step 40 (epoch 2): trainer.max_steps=40 reached" in caplog.text


def test_without_max_steps_a_run_trains_max_epochs(toy_cfg, tmp_path, caplog):
    trainer = Trainer(toy_cfg(*FAST, "trainer.max_epochs=2"), tmp_path / "run")
    with caplog.at_level("INFO", logger="nmt.train"):
        results = trainer.fit()
    assert results["steps"] == 2 * len(trainer.sampler) and results["epochs"] == 2
    assert "trainer.max_epochs=2 reached" in caplog.text


def _thirty_seconds_a_step(trainer: Trainer, start: float) -> None:
    """A clock that reads `start` seconds when training begins and 30 s more after each step."""
    ticks = itertools.count()
    trainer.clock = lambda: start + 30.0 * next(ticks)


def test_a_time_budget_stops_training_then_tests_and_a_resume_spends_the_rest(toy_cfg, tmp_path, caplog):
    run = tmp_path / "run"
    trainer = Trainer(toy_cfg(*FAST, "trainer.max_steps=1000", "trainer.max_minutes=2"), run)
    _thirty_seconds_a_step(trainer, 1000.0)
    with caplog.at_level("INFO", logger="nmt.train"):
        results = trainer.fit()
    assert results["steps"] == 4, "2 minutes at 30 s a step"
    assert "or 2 minutes (trainer.max_minutes), whichever ends first" in caplog.text
    assert "training stopped at step 4 (epoch 1): trainer.max_minutes=2 spent (2m00s of training)" in caplog.text
    assert results["test"]["bleu"] >= 0, "the run still ends with a test evaluation"
    assert load_checkpoint(run / "checkpoints" / "last.pt")["train_state"]["progress"]["train_seconds"] == 120

    # The resumed run's clock starts elsewhere; what counts is the training time last.pt recorded.
    resumed = Trainer(toy_cfg(*FAST, "trainer.max_steps=1000", "trainer.max_minutes=3", f"trainer.resume={run}"), run)
    _thirty_seconds_a_step(resumed, 5.0)
    assert resumed.fit()["steps"] == 6


def test_linear_decay_ends_with_the_time_budget_where_it_comes_before_max_steps(toy_cfg, tmp_path):
    schedule = ["optim.scheduler=linear", "optim.warmup_steps=0", "optim.lr=1e-3"]
    trainer = Trainer(toy_cfg(*FAST, *schedule, "trainer.max_steps=1000", "trainer.max_minutes=2"), tmp_path / "run")
    _thirty_seconds_a_step(trainer, 0.0)
    lrs = []
    step = trainer.train_step
    trainer.train_step = lambda *args: (lrs.append(trainer.scheduler.get_last_lr()[0]), step(*args))
    assert trainer.fit()["steps"] == 4
    # Over 1000 steps the lr would still be > 99% of its peak; a quarter of the budget a step brings it down.
    assert lrs == pytest.approx([1e-3, 1e-3, 0.75e-3, 0.5e-3], rel=0.01)


def test_too_few_batches_for_one_step_is_a_one_line_error(toy_cfg, tmp_path):
    with pytest.raises(UserError, match=r"fewer than one optimizer step takes .* lower trainer.max_tokens"):
        Trainer(toy_cfg(*FAST, "trainer.accumulate_grad_batches=100000"), tmp_path / "run")
