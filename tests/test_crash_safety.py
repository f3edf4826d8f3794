"""Crash safety: SIGKILL at any point leaves loadable checkpoints and a resume equal to an uninterrupted run;
Ctrl-C and SIGTERM save and say how to resume; a resumed run goes on in its own directory; out of memory names the
batch and the knob."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from nmt.cli.train import resume_in_place
from nmt.errors import UserError
from nmt.training.checkpoint import load_checkpoint
from nmt.training.monitor import TrainingStopped
from nmt.training.trainer import Trainer
from tests.conftest import tiny_model

ROOT = Path(__file__).resolve().parents[1]
STEPS = 60
RUN = [
    "data=toy",
    *tiny_model("lstm_attn"),
    "model.dropout=0.3",  # so that the RNG state must be restored too
    "trainer.max_tokens=1024",
    "trainer.deterministic=true",
    "trainer.log_every=1",
    "trainer.eval_every=10",
    f"trainer.max_steps={STEPS}",
    "trainer.max_epochs=1000",
    "trainer.dev_max_sentences=20",
    "trainer.progress_bar=false",
]


def _start(run_dir: Path, *overrides: str) -> subprocess.Popen:
    """nmt-train in a subprocess; Hydra writes train.log into run_dir, which the tests watch. A resume is the
    command a stopped run prints, `nmt-train trainer.resume=<run>`: the run's own settings are re-applied."""
    if any(o.startswith("trainer.resume=") for o in overrides):
        command = [sys.executable, "-m", "nmt.cli.train", *overrides]
    else:
        command = [sys.executable, "-m", "nmt.cli.train", *RUN, *overrides, f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen, log: Path, pattern: str, timeout: float = 120.0) -> None:
    """Until `pattern` appears in the log; fails if the run ends or the time runs out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.is_file() and re.search(pattern, log.read_text(encoding="utf-8")):
            return
        assert proc.poll() is None, f"the run ended before '{pattern}': {proc.stderr.read()}"
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"'{pattern}' did not appear in {log} within {timeout} s")


def _finish(proc: subprocess.Popen) -> str:
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    return stderr


def _weights(run_dir: Path) -> dict:
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]


def _assert_equal_weights(run_dir: Path, reference: dict) -> None:
    resumed = _weights(run_dir)
    for name, value in reference.items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=1e-6, msg=f"{name} differs after resume")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    _finish(_start(run_dir))
    return _weights(run_dir)


def _resume_and_check(run_dir: Path, reference: dict) -> None:
    """Resume in place; the run ends at STEPS with the uninterrupted weights, its log and TensorBoard history
    continued in the same directory with every step once."""
    stderr = _finish(_start(run_dir, f"trainer.resume={run_dir}"))
    assert "Traceback" not in stderr
    _assert_equal_weights(run_dir, reference)
    log = (run_dir / "train.log").read_text(encoding="utf-8")
    assert log.count("run directory:") == 2 and "resumed from" in log, "one log, appended"
    events = EventAccumulator(str(run_dir / "tb"))
    events.Reload()
    steps = [e.step for e in events.Scalars("train/loss")]
    assert steps == list(range(1, STEPS + 1)), "TensorBoard holds every step exactly once"
    assert (run_dir / ".hydra" / "config.yaml").is_file(), "the original run's config stays"


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill_after",
    [r"step 13/", r"step 20 dev", r"step 4[4-9]/"],
    ids=["between-checkpoints", "around-a-checkpoint-write", "late"],
)
def test_sigkill_then_resume_equals_an_uninterrupted_run(kill_after, uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    proc = _start(run_dir)
    _wait_for(proc, run_dir / "train.log", kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for name in ("last.pt", "best.pt"):
        load_checkpoint(run_dir / "checkpoints" / name)  # never truncated: raises if it were
    _resume_and_check(run_dir, uninterrupted)


@pytest.mark.slow
def test_sigterm_saves_last_pt_says_how_to_resume_and_the_resume_is_exact(uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    proc = _start(run_dir)
    _wait_for(proc, run_dir / "train.log", r"step 15/")
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    stopped_at = int(re.search(r"SIGTERM at step (\d+)", stderr).group(1))
    assert f"resume: nmt-train trainer.resume={run_dir}\n" in stderr and "Traceback" not in stderr
    assert 15 <= stopped_at < STEPS
    last = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert last["train_state"]["progress"]["step"] == stopped_at, "last.pt holds the step that finished"
    _resume_and_check(run_dir, uninterrupted)


@pytest.mark.slow
def test_ctrl_c_finishes_the_step_and_exits_130(tmp_path):
    run_dir = tmp_path / "run"
    proc = _start(run_dir)
    _wait_for(proc, run_dir / "train.log", r"step 5/")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "SIGINT at step" in stderr and "Traceback" not in stderr
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["train_state"]["progress"]["step"] >= 5


def test_resume_auto_continues_the_newest_run_of_the_same_experiment_in_place(toy_cfg, tmp_path):
    common = ["trainer.max_steps=3", "trainer.max_tokens=1024"]
    runs = tmp_path / "outputs"
    for name in ("older", "newer"):
        Trainer(toy_cfg(*common), runs / name).fit()
        time.sleep(0.05)  # distinct modification times
    Trainer(toy_cfg(*common, model="transformer"), runs / "other-model").fit()
    argv = ["data=toy", *tiny_model("lstm_attn"), f"paths.log_dir={runs}", "trainer.resume=auto"]
    resolved = resume_in_place(argv)
    assert f"hydra.run.dir={runs / 'newer'}" in resolved
    assert f"trainer.resume={runs / 'newer' / 'checkpoints' / 'last.pt'}" in resolved
    assert any(a.startswith("hydra.output_subdir=.hydra/resume-") for a in resolved)


def test_out_of_memory_names_the_batch_and_the_knob(toy_cfg, tmp_path, monkeypatch):
    trainer = Trainer(toy_cfg("trainer.max_steps=3", "trainer.max_tokens=1024"), tmp_path / "run")

    def out_of_memory(batch, ratio, loss_scale=1.0):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(trainer, "_forward_backward", out_of_memory)
    with pytest.raises(
        TrainingStopped,
        match=r"out of memory on a batch of \d+ pairs, \d+ target tokens.*"
        r"lower trainer.max_tokens \(now 1024\)",
    ):
        trainer.fit()


def test_a_new_run_never_overwrites_an_earlier_run(toy_cfg, tmp_path):
    Trainer(toy_cfg("trainer.max_steps=2", "trainer.max_tokens=1024"), tmp_path / "run").fit()
    before = (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes()
    with pytest.raises(UserError, match="already holds a run's checkpoints"):
        Trainer(toy_cfg("trainer.max_steps=2", "trainer.max_tokens=1024"), tmp_path / "run")
    assert (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes() == before
