"""Training health: non-finite steps are skipped, then stop training with the module named; TensorBoard extras."""

from __future__ import annotations

import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from nmt.evaluation import corpus_scores
from nmt.training import monitor
from nmt.training import trainer as trainer_module
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
    layers = {"encoder.embed", "encoder.rnn.l0", "decoder.l0", "attention.proj", "output"}
    assert {f"grad_norm/{layer}" for layer in layers} | {"dev/no_eos_rate"} <= scalars
    assert {f"grad/{layer}" for layer in layers} <= set(events.Tags()["histograms"])
    hparams = list(run.joinpath("tb").rglob("events.out.tfevents.*"))
    assert any(b"hparam/test_bleu" in f.read_bytes() for f in hparams)
    # The unsmoothed NLL beside the smoothed training loss, and p(token) = exp(-NLL), for train and dev alike.
    values = {tag: [e.value for e in events.Scalars(tag)] for tag in scalars}
    assert all(loss > nll for loss, nll in zip(values["train/loss"], values["train/nll"], strict=True))
    for split, nll in (("train", "train/nll"), ("dev", "dev/loss")):
        expected = [math.exp(-v) for v in values[nll]]
        assert values[f"{split}/p_token"] == pytest.approx(expected, rel=1e-5)


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


def test_outputs_ending_in_a_detached_period_raise_no_detokenize_warning(caplog):
    # Tatoeba's normalisation detaches punctuation in references and outputs alike: "go now ." is its real text.
    hypotheses, references = ["go now ."] * 120, ["va maintenant ."] * 120
    with caplog.at_level("WARNING"):
        scores = corpus_scores(hypotheses, references)
    assert "detokenize" not in caplog.text and scores["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")


@pytest.mark.parametrize("each_epoch", [True, False])
def test_epoch_end_evaluations_follow_eval_each_epoch(toy_cfg, tmp_path, each_epoch):
    overrides = [*FAST, "trainer.max_tokens=4096", "trainer.eval_every=1000", f"trainer.eval_each_epoch={each_epoch}"]
    trainer = Trainer(toy_cfg(*overrides, "trainer.max_steps=15"), tmp_path / "run")
    epoch = len(trainer.sampler)
    steps = []
    evaluate = trainer._evaluate

    def recording(*args):
        steps.append(trainer.progress.step)
        return evaluate(*args)

    trainer._evaluate = recording
    trainer.fit()
    # Always after the last step; at each epoch's end only when asked.
    assert epoch < 15 and steps == ([*range(epoch, 15, epoch), 15] if each_epoch else [15])


@pytest.mark.parametrize("model", ["transformer", "memory_lstm"])
def test_layer_gradient_norms_are_taken_before_clipping_over_the_window(model, toy_cfg, tmp_path, dialogue_data):
    """Clipped to 1e-3, each logged layer norm still makes up the unclipped total of its steps: sqrt(sum of
    squares) over the layers equals train/grad_norm when the window is one step."""
    run = tmp_path / "run"
    data = dialogue_data if model == "memory_lstm" else ["data=toy"]
    cfg = toy_cfg(
        *FAST, *data, "trainer.max_steps=3", "trainer.log_every=1", "trainer.clip_grad_norm=1e-3", model=model
    )
    Trainer(cfg, run).fit()
    events = _events(run)
    layers = [tag for tag in events.Tags()["scalars"] if tag.startswith("grad_norm/")]
    prefix = "grad_norm/backbone." if model == "memory_lstm" else "grad_norm/"
    assert {f"{prefix}encoder.0", f"{prefix}encoder.1", f"{prefix}decoder.0", f"{prefix}decoder.1"} <= set(layers)
    if model == "memory_lstm":
        assert {"grad_norm/memory.rnn.l0", "grad_norm/memory.gate"} <= set(layers)
    for step in (1, 2, 3):
        total = next(e.value for e in events.Scalars("train/grad_norm") if e.step == step)
        by_layer = [next(e.value for e in events.Scalars(tag) if e.step == step) for tag in layers]
        assert total > 1e-2
        assert sum(v * v for v in by_layer) ** 0.5 == pytest.approx(total, rel=1e-4)


def test_dev_evaluations_are_left_out_of_the_training_speed_and_epoch_times(toy_cfg, tmp_path, monkeypatch):
    """On a fake clock a step takes 1 s and a dev evaluation 100 s: every window's seconds per step is 1, and the
    first epoch (31 batches) took 31 s of training."""
    now = [0.0]
    monkeypatch.setattr(monitor, "clock", lambda: now[0])
    cfg = toy_cfg(*FAST, "trainer.max_steps=34", "trainer.log_every=2", "trainer.eval_every=2")
    trainer = Trainer(cfg, tmp_path)

    def advancing(method, seconds):
        def run(*args, **kwargs):
            now[0] += seconds
            return method(*args, **kwargs)

        return run

    trainer.train_step = advancing(trainer.train_step, 1.0)
    trainer._evaluate_split = advancing(trainer._evaluate_split, 100.0)
    windows = []
    monkeypatch.setattr(trainer_module, "report_train", lambda emit, writer, m, *args: windows.append(m))
    trainer.fit()
    assert [m["sec_per_step"] for m in windows] == [1.0] * 17
    assert [e.value for e in _events(tmp_path).Scalars("train/epoch_seconds")] == [31.0]
