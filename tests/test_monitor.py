"""Training health: non-finite steps are skipped, then stop training with the module named; TensorBoard extras."""

from __future__ import annotations

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from nmt.evaluation import corpus_scores
from nmt.training.checkpoint import load_checkpoint
from nmt.training.monitor import TrainingStopped
from nmt.training.trainer import Trainer

FAST = ["trainer.max_tokens=1024", "optim.warmup_steps=5", "trainer.dev_max_sentences=20", "trainer.log_every=5"]


def _poison_output(trainer, bad_calls):
    """Make the output layer return NaN on the training forward passes whose number is in bad_calls."""
    calls = {"n": 0}

    def hook(module, args, out):
        if module.training:
            calls["n"] += 1
            if bad_calls(calls["n"]):
                return out * float("nan")
        return None

    trainer.model.output.register_forward_hook(hook)


def test_a_non_finite_step_is_skipped_and_training_goes_on(toy_cfg, tmp_path):
    trainer = Trainer(toy_cfg(*FAST, "trainer.max_steps=10", "trainer.eval_every=5"), tmp_path / "run")
    _poison_output(trainer, lambda n: n == 3)
    results = trainer.fit()
    assert trainer.progress.skipped_steps == 1 and results["steps"] == 10
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert last["train_state"]["progress"]["skipped_steps"] == 1


def test_a_log_window_of_only_skipped_steps_is_not_a_crash(toy_cfg, tmp_path):
    trainer = Trainer(toy_cfg(*FAST, "trainer.max_steps=6", "trainer.eval_every=6", "trainer.log_every=1"), tmp_path)
    _poison_output(trainer, lambda n: n in (2, 3))
    assert trainer.fit()["steps"] == 6 and trainer.progress.skipped_steps == 2


def test_repeated_non_finite_steps_stop_training_naming_the_module(toy_cfg, tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(toy_cfg(*FAST, "trainer.max_steps=40", "trainer.eval_every=5"), run)
    snapshot = {}

    def bad_from_step_11(n):
        if n == 11:  # the last checkpoint as it stands when things go wrong
            snapshot["last"] = (run / "checkpoints" / "last.pt").read_bytes()
        return n >= 11

    _poison_output(trainer, bad_from_step_11)
    with pytest.raises(TrainingStopped, match=r"5 steps in a row .* module 'output'.*last good checkpoint"):
        trainer.fit()
    assert (run / "checkpoints" / "last.pt").read_bytes() == snapshot["last"], "the last good checkpoint is untouched"
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert last["train_state"]["progress"]["step"] == 10
    assert all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())


def _events(run):
    events = EventAccumulator(str(run / "tb"), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    return events


def test_attention_heatmaps_grad_norms_and_hparams_reach_tensorboard(toy_cfg, tmp_path):
    run = tmp_path / "run"
    Trainer(toy_cfg(*FAST, "trainer.max_steps=10", "trainer.eval_every=5"), run).fit()
    events = _events(run)
    images = events.Images("attention/0")
    assert [image.step for image in images][:2] == [5, 10]
    assert images[0].encoded_image_string.startswith(b"\x89PNG") and images[0].width > 100
    scalars = set(events.Tags()["scalars"])
    assert {"grad_norm/encoder", "grad_norm/decoder", "grad_norm/output", "dev/no_eos_rate"} <= scalars
    assert "grad/encoder" in events.Tags()["histograms"]
    hparams = list(run.joinpath("tb").rglob("events.out.tfevents.*"))
    assert any(b"hparam/test_bleu" in f.read_bytes() for f in hparams)


def test_models_without_attention_write_no_heatmap(toy_cfg, tmp_path):
    run = tmp_path / "run"
    Trainer(toy_cfg(*FAST, "trainer.max_steps=5", "trainer.eval_every=5", model="rnn"), run).fit()
    assert not [tag for tag in _events(run).Tags()["images"] if tag.startswith("attention/")]


def test_profiling_writes_a_trace(toy_cfg, tmp_path):
    run = tmp_path / "run"
    Trainer(toy_cfg(*FAST, "trainer.max_steps=6", "trainer.profile=true", "trainer.profile_steps=2"), run).fit()
    assert list((run / "tb" / "profile").glob("*.pt.trace.json"))


def test_loops_catch_a_repeated_token_or_phrase_and_nothing_else():
    from nmt.evaluation import loops

    assert loops([5, 7, 7, 7, 7, 9])
    assert loops([4, 8, 9, 8, 9, 8, 9, 3])  # "I'm afraid I'm afraid I'm afraid"
    assert loops([1, 2, 3, 1, 2, 3, 1, 2, 3])
    assert not loops([7, 7, 7, 5, 8, 9, 8, 9, 6])  # three of a token, two of a phrase
    assert not loops([4, 5, 6, 7, 4, 5, 6, 7])
    assert not loops([])


def test_bleu_on_chinese_targets_uses_sacrebleus_zh_tokenizer():
    hypotheses, references = ["我 喜欢 猫 。"], ["我喜欢猫。"]  # spaced output vs unsegmented reference
    assert corpus_scores(hypotheses, references, "zh")["bleu"] == pytest.approx(100.0)
    assert "tok:zh" in corpus_scores(hypotheses, references, "zh")["bleu_signature"]
    assert corpus_scores(hypotheses, references)["bleu"] < 10  # 13a sees one unmatched "word"


@pytest.mark.parametrize("each_epoch", [True, False])
def test_epoch_end_evaluations_follow_eval_each_epoch(toy_cfg, tmp_path, each_epoch):
    overrides = [*FAST, "trainer.max_tokens=4096", "trainer.eval_every=1000", f"trainer.eval_each_epoch={each_epoch}"]
    trainer = Trainer(toy_cfg(*overrides, "trainer.max_steps=15"), tmp_path / "run")
    epoch = len(trainer.sampler)
    steps = []
    evaluate = trainer._evaluate

    def recording():
        steps.append(trainer.progress.step)
        return evaluate()

    trainer._evaluate = recording
    trainer.fit()
    # Always after the last step; at each epoch's end only when asked.
    assert epoch < 15 and steps == ([*range(epoch, 15, epoch), 15] if each_epoch else [15])
