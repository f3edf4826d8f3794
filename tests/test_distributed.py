"""Data-parallel training: two Gloo processes on CPU equal one process accumulating the same global batch; rank
shards are disjoint and cover the data; a 2-rank run resumes in one process."""

from __future__ import annotations

import itertools
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from nmt.data import TokenBatchSampler
from nmt.errors import UserError
from nmt.training.checkpoint import load_checkpoint
from nmt.training.distributed import Ranks, shard
from nmt.training.trainer import Trainer
from tests.conftest import compose_config, tiny_model, write_dialogues

TRAINING = [
    "trainer.max_tokens=600",
    "trainer.deterministic=true",
    "trainer.eval_every=1000",
    "trainer.max_epochs=1000",
    "trainer.dev_max_sentences=10",
    "trainer.progress_bar=false",
]
RUN = ["data=toy", *tiny_model("lstm_attn"), *TRAINING]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_recording(overrides: list[str], run_dir, clock=None) -> list[torch.Tensor]:
    """Train (reading `clock` for the time budget, if given); return all parameters, flattened, after every step."""
    trainer = Trainer(compose_config("train", [*RUN, *overrides]), run_dir)
    trainer.clock = clock or trainer.clock
    after_steps, step = [], trainer.train_step

    def recording(group, meter):
        step(group, meter)
        after_steps.append(torch.cat([p.detach().flatten().clone() for p in trainer.model.parameters()]))

    trainer.train_step = recording
    trainer.fit()
    return after_steps


def _as_rank(rank: int, world: int, port: int, job, *args) -> None:
    """One rank of a Gloo run (spawned): the environment torchrun would give it, then job(rank, *args)."""
    from nmt.config import register_configs

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    register_configs()
    job(rank, *args)
    torch.distributed.destroy_process_group()


def _spawn_two(job, *args) -> None:
    mp.spawn(_as_rank, args=(2, _free_port(), job, *args), nprocs=2, join=True)


def _record_steps(rank: int, overrides: list[str], out_dir: str) -> None:
    torch.save(torch.stack(_train_recording(overrides, f"{out_dir}/run")), f"{out_dir}/rank{rank}.pt")


def _record_steps_on_skewed_clocks(rank: int, overrides: list[str], out_dir: str) -> None:
    """As _record_steps, on a clock that reads 10 s a step on rank 0 and 15 s on rank 1."""
    ticks = itertools.count()
    clock = lambda: (10.0 + 5.0 * rank) * next(ticks)  # noqa: E731
    torch.save(torch.stack(_train_recording(overrides, f"{out_dir}/run", clock)), f"{out_dir}/rank{rank}.pt")


def _two_ranks(overrides: list[str], tmp_path) -> list[torch.Tensor]:
    _spawn_two(_record_steps, overrides, str(tmp_path))
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]


def test_rank_shards_are_disjoint_and_cover_every_batch():
    lengths = np.random.default_rng(0).integers(1, 30, 500)
    batches = TokenBatchSampler.for_pairs(lengths, lengths, max_tokens=200, seed=3).batches(0)
    world, accumulate = 2, 3
    per_step = world * accumulate
    usable = len(batches) // per_step * per_step
    seen = []
    for start in range(0, usable, per_step):
        group = batches[start : start + per_step]
        shards = [shard(group, Ranks(rank, world)) for rank in range(world)]
        assert all(len(s) == accumulate for s in shards), "every rank takes as many batches"
        seen += [b.tolist() for s in shards for b in s]
    assert sorted(seen) == sorted(b.tolist() for b in batches[:usable])
    assert len(batches) - usable < per_step, "at most the last incomplete step is left out"


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process_accumulating_the_same_global_batch(tmp_path):
    rank0, rank1 = _two_ranks(["trainer.max_steps=4"], tmp_path / "ddp")
    assert len(rank0) == 4
    for step, (a, b) in enumerate(zip(rank0, rank1, strict=True), start=1):
        assert torch.equal(a, b), f"the ranks' parameters differ after step {step}"
    single = _train_recording(["trainer.max_steps=4", "trainer.accumulate_grad_batches=2"], tmp_path / "single")
    for step, (a, b) in enumerate(zip(rank0, single, strict=True), start=1):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=f"step {step}: 2 ranks != 1 process accumulating 2")
    assert not (tmp_path / "ddp" / "run" / "tb").exists() or (tmp_path / "ddp" / "run" / "checkpoints").is_dir()


@pytest.mark.slow
def test_a_time_budget_sets_the_same_lr_on_every_rank(tmp_path):
    # The linear decay follows the spent share of trainer.max_minutes, read from each rank's own clock: without
    # one agreed reading the ranks' learning rates, and then their weights, would drift apart.
    budget = ["trainer.max_steps=100", "trainer.max_minutes=1", "optim.scheduler=linear", "optim.warmup_steps=0"]
    _spawn_two(_record_steps_on_skewed_clocks, budget, str(tmp_path))
    rank0, rank1 = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert len(rank0) == len(rank1) == 4, "the slower clock (rank 1's: 15 s a step) ends the minute for both"
    for step, (a, b) in enumerate(zip(rank0, rank1, strict=True), start=1):
        assert torch.equal(a, b), f"the ranks' parameters differ after step {step}"


@pytest.mark.slow
def test_a_two_rank_run_resumes_in_one_process(tmp_path):
    _two_ranks(["trainer.max_steps=4", "trainer.eval_every=2"], tmp_path / "ddp")
    assert load_checkpoint(tmp_path / "ddp" / "run" / "checkpoints" / "last.pt")["train_state"]["progress"]["step"] == 4
    common = ["trainer.max_steps=7", "trainer.accumulate_grad_batches=2"]
    resumed = _train_recording([*common, f"trainer.resume={tmp_path / 'ddp' / 'run'}"], tmp_path / "resumed")
    straight = _train_recording(common, tmp_path / "straight")
    torch.testing.assert_close(resumed[-1], straight[-1], rtol=0, atol=1e-6)


def test_fp16_on_cpu_is_refused_in_one_line(tmp_path):
    with pytest.raises(UserError, match="16-mixed needs a CUDA device"):
        Trainer(compose_config("train", [*RUN, "trainer.precision=16-mixed", "trainer.device=cpu"]), tmp_path / "run")


@pytest.mark.parametrize("model", ["lstm_attn", "transformer"])
@pytest.mark.parametrize("precision", ["bf16-mixed"])
def test_mixed_precision_runs_the_step_in_half_precision_and_learns(precision, model, tmp_path):
    run = [o for o in RUN if not o.startswith("model")]
    overrides = [*run, *tiny_model(model), "trainer.max_steps=30", f"trainer.precision={precision}"]
    trainer = Trainer(compose_config("train", [*overrides, "trainer.log_every=10"]), tmp_path / "run")
    dtypes = set()
    trainer.model.output.register_forward_hook(lambda module, args, out: dtypes.add(out.dtype))
    losses = []
    step = trainer.train_step

    def recording(group, meter):
        step(group, meter)
        losses.append(meter.loss.item() / max(meter.steps, 1))

    trainer.train_step = recording
    trainer.fit()
    assert (torch.bfloat16 if precision == "bf16-mixed" else torch.float16) in dtypes
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


# Sharded evaluation: what a dev/test evaluation reports, texts included.
EVALUATED = ("loss", "acc", "bleu", "chrf", "no_eos_rate", "repeat_rate", "hypotheses", "references", "per_turn")


def _evaluate_dev(rank: int, overrides: list[str], out_dir: str) -> None:
    """Train a few steps, then evaluate dev; write the metrics to <out_dir>/rank<rank>.json."""
    trainer = Trainer(compose_config("train", overrides), f"{out_dir}/run")
    trainer.fit()
    m = trainer._evaluate_split("dev")
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps({k: m[k] for k in EVALUATED if k in m}))


def _dialogue_run(tmp_path) -> list[str]:
    for seed, (split, n) in enumerate([("train", 40), ("dev", 7), ("test", 3)]):
        write_dialogues(tmp_path / f"{split}.txt", n, seed)
    files = [f"data.{split}={tmp_path / f'{split}.txt'}" for split in ("train", "dev", "test")]
    tokenizer = ["data.tokenizer.type=bpe", "data.tokenizer.vocab_size=40", "data.tokenizer.byte_fallback=false"]
    return ["data=dailydialog", *files, *tokenizer, *tiny_model("memory_lstm")]


@pytest.mark.slow
@pytest.mark.parametrize("corpus", ["pairs", "dialogue"])
def test_two_ranks_each_evaluating_a_share_report_what_one_process_does(corpus, tmp_path):
    model = RUN if corpus == "pairs" else [*_dialogue_run(tmp_path), *TRAINING]
    overrides = [*model, "trainer.max_steps=6", "trainer.dev_max_sentences=41", "trainer.max_tokens=300"]
    _spawn_two(_evaluate_dev, overrides, str(tmp_path / "ddp"))
    ranks = [json.loads((tmp_path / "ddp" / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0] == ranks[1], "every rank gets the whole evaluation"
    # One process with the same global batch (2 batches accumulated) ends with the same weights.
    _evaluate_dev(0, [*overrides, "trainer.accumulate_grad_batches=2"], str(tmp_path / "single"))
    single = json.loads((tmp_path / "single" / "rank0.json").read_text())
    assert len(single["hypotheses"]) > 15 and len(set(single["hypotheses"])) > 1
    assert ranks[0]["hypotheses"] == single["hypotheses"] and ranks[0]["references"] == single["references"]
    for key in ("loss", "acc", "bleu", "chrf", "no_eos_rate", "repeat_rate"):
        assert ranks[0][key] == pytest.approx(single[key], rel=1e-5), key
