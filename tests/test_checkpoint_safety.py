"""Checkpoints from untrusted or damaged files: no code runs, every failure is one line naming the file; saving is
atomic even on a full disk; trainer.resume=auto finds the newest complete run of the same experiment."""

from __future__ import annotations

import errno
import os
import pathlib
import pickle
import random
import stat
import subprocess
import sys

import pytest
import torch

import nmt.atomic
from nmt.atomic import write_atomic
from nmt.training.checkpoint import (
    FORMAT,
    CheckpointError,
    copy_checkpoint,
    load_checkpoint,
    load_for_inference,
    newest_resumable,
    save_checkpoint,
)
from nmt.training.trainer import Trainer
from tests.conftest import compose_config, refused, tiny_model, tiny_settings

CPU = torch.device("cpu")
FAST = ("trainer.max_steps=4", "trainer.max_tokens=1024")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny lstm_attn run on the toy corpus: its checkpoints/last.pt and best.pt are the genuine article."""
    tmp = tmp_path_factory.mktemp("safety")
    overrides = ["data=toy", *tiny_model(), f"paths.log_dir={tmp}/outputs", "trainer.progress_bar=false", *FAST]
    run_dir = tmp / "outputs" / "run"
    Trainer(compose_config("train", overrides), run_dir).fit()
    return run_dir


@pytest.fixture
def last(run, tmp_path):
    """A private copy of the run's last.pt."""
    path = tmp_path / "last.pt"
    path.write_bytes((run / "checkpoints" / "last.pt").read_bytes())
    return path


# -- code in a pickle --------------------------------------------------------------------------------------------


class Exploit:
    """Unpickling this calls `function(*args)`: what a malicious checkpoint does."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def _exploits(marker: pathlib.Path) -> dict:
    return {"system": Exploit(os.system, f"touch '{marker}'"), "touch": Exploit(pathlib.Path.touch, marker)}


def _write_exploit(path, marker, how: str, via: str) -> None:
    """An otherwise valid-looking nmt checkpoint with the exploit inside, written without weights_only."""
    payload = {"format": FORMAT, "model": {}, "config": {"model": {"name": "lstm_attn"}, "data": {}}, "tokenizer": {}}
    payload["tokenizer"] = {"joint": True, "src_model": _exploits(marker)[via]}
    if how == "pickle":
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path, _use_new_zipfile_serialization=how == "zip")


@pytest.mark.parametrize("via", ["system", "touch"])
@pytest.mark.parametrize("how", ["zip", "legacy", "pickle"])
def test_a_checkpoint_that_runs_code_is_refused_and_nothing_runs(how, via, tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "evil.pt"
    _write_exploit(path, marker, how, via)

    refused(lambda: load_checkpoint(path), path)
    refused(lambda: load_for_inference(path, CPU), path)
    assert not marker.exists(), "unpickling ran the checkpoint's code"
    if how == "zip":
        assert "refused to load" in refused(lambda: load_checkpoint(path), path)
    # The file is a genuine exploit: loading it the unsafe way does run its code.
    if how != "pickle":
        torch.load(path, weights_only=False)
    else:
        pickle.loads(path.read_bytes())
    assert marker.exists()


@pytest.mark.parametrize("module", ["evaluate", "translate"])
def test_the_clis_refuse_a_checkpoint_that_runs_code(module, tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "evil.pt"
    _write_exploit(path, marker, "zip", "touch")
    result = subprocess.run(
        [sys.executable, "-m", f"nmt.cli.{module}", f"ckpt={path}", *(["hello"] if module == "translate" else [])],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "error:" in result.stderr and f"{path}: refused to load" in result.stderr
    assert not marker.exists()


# -- a stored config never instantiates anything ----------------------------------------------------------------


def _target(cfg):
    cfg["model"] = {**cfg["model"], "_target_": "os.system", "_args_": ["touch pwned"]}


def _nested_target(cfg):
    cfg["data"]["tokenizer"] = {**cfg["data"]["tokenizer"], "_target_": "os.system"}


def _listed_target(cfg):
    cfg["optim"]["param_groups"] = {"x": [{"_target_": "builtins.exec", "_args_": ["1"]}]}


def _foreign_name(cfg):
    cfg["model"] = {**cfg["model"], "name": "os.system"}


@pytest.mark.parametrize(
    ("tamper", "needle"),
    [
        (_target, "config.model._target_"),
        (_nested_target, "config.data.tokenizer._target_"),
        (_listed_target, "config.optim.param_groups.x.0._target_"),
        (_foreign_name, "unknown model 'os.system'"),
    ],
)
def test_a_stored_config_never_instantiates_anything(tamper, needle, last, tmp_path, monkeypatch):
    import hydra.utils

    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(("os.system", a)))
    monkeypatch.setattr(hydra.utils, "instantiate", lambda *a, **k: calls.append(("instantiate", a)))
    ckpt = load_checkpoint(last)
    tamper(ckpt["config"])
    save_checkpoint(last, {k: v for k, v in ckpt.items() if k != "format"})

    refused(lambda: load_for_inference(last, CPU), last, needle)
    assert calls == [] and not (tmp_path / "pwned").exists()


# -- damaged and foreign files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0, 2, 4, 30, 1000, 0.5, -22, -1], ids=str)
def test_a_truncated_checkpoint_is_one_line(keep, last):
    data = last.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep % len(data) if keep < 0 else keep
    last.write_bytes(data[:cut])  # 4: just the zip magic, 30: a local header
    refused(lambda: load_checkpoint(last), last, "truncated or corrupted")
    refused(lambda: load_for_inference(last, CPU), last, "truncated or corrupted")


@pytest.mark.parametrize("seed", range(6))
def test_flipped_bytes_are_caught_not_loaded_as_wrong_weights(seed, last):
    """torch.load verifies no checksum: without the archive check most of these would load."""
    data = bytearray(last.read_bytes())
    start = random.Random(seed).randrange(64, len(data) - 64)
    data[start : start + 8] = bytes(b ^ 0xFF for b in data[start : start + 8])
    last.write_bytes(bytes(data))
    refused(lambda: load_checkpoint(last), last, "corrupted")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ({"weights": torch.ones(3)}, "not an nmt checkpoint"),
        ([1, 2, 3], "not an nmt checkpoint"),
        ({"format": FORMAT, "config": {}}, "incomplete nmt checkpoint (model, tokenizer, config.model, config.data"),
        (b"model weights, honest\n", "not one nmt wrote"),
    ],
)
def test_a_foreign_file_is_one_line(content, needle, tmp_path):
    path = tmp_path / "other.pt"
    path.write_bytes(content) if isinstance(content, bytes) else torch.save(content, path)
    refused(lambda: load_checkpoint(path), path, needle)


def test_a_last_pt_with_a_broken_training_state_isrefused(last):
    ckpt = load_checkpoint(last)
    del ckpt["train_state"]["rng"]
    save_checkpoint(last, ckpt)
    refused(lambda: load_checkpoint(last), last, "incomplete nmt checkpoint (train_state")


def test_weights_of_another_model_type_are_one_line(last):
    ckpt = load_checkpoint(last)
    ckpt["config"]["model"] = {"name": "transformer", **tiny_settings("transformer")}
    save_checkpoint(last, ckpt)
    refused(lambda: load_for_inference(last, CPU), last, "do not fit the transformer model", "Missing key")


def test_weights_for_another_vocabulary_are_one_line(last):
    ckpt = load_checkpoint(last)
    ckpt["model"]["encoder.embed.weight"] = ckpt["model"]["encoder.embed.weight"][:-1]
    save_checkpoint(last, ckpt)
    refused(lambda: load_for_inference(last, CPU), last, "size mismatch for encoder.embed.weight")


def test_a_tokenizer_that_is_no_sentencepiece_model_is_one_line(last):
    ckpt = load_checkpoint(last)
    ckpt["tokenizer"]["src_model"] = b"\x00garbage"
    save_checkpoint(last, ckpt)
    refused(lambda: load_for_inference(last, CPU), last, "not a SentencePiece model")


def test_resuming_into_another_model_type_is_one_line(run, toy_cfg, tmp_path):
    path = run / "checkpoints" / "last.pt"
    cfg = toy_cfg(*FAST, f"trainer.resume={run}", model="transformer")
    refused(lambda: Trainer(cfg, tmp_path / "b"), path, "another model config")


def test_resuming_with_another_vocabulary_is_one_line(run, toy_cfg, tmp_path):
    path = run / "checkpoints" / "last.pt"
    cfg = toy_cfg(*FAST, "data.tokenizer.vocab_size=28", f"trainer.resume={run}")
    refused(lambda: Trainer(cfg, tmp_path / "b"), path, "vocabulary differs")


# -- a full disk ------------------------------------------------------------------------------------------------


class _FillsUp:
    """The file write_atomic writes to, on a disk that fills up after `room` bytes."""

    def __init__(self, file, room: int, code: int):
        self.file, self.room, self.code = file, room, code

    def write(self, data) -> int:
        if len(data) > self.room:
            self.file.write(bytes(data)[: self.room])
            raise OSError(self.code, os.strerror(self.code))
        self.room -= len(data)
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
@pytest.mark.parametrize("where", ["mid-write", "fsync"])
def test_a_full_disk_leaves_the_previous_checkpoint_intact(where, code, last, monkeypatch):
    before, listing = last.read_bytes(), sorted(os.listdir(last.parent))
    ckpt = load_checkpoint(last)
    if where == "mid-write":
        real_fdopen = os.fdopen
        monkeypatch.setattr(nmt.atomic.os, "fdopen", lambda *a: _FillsUp(real_fdopen(*a), len(before) // 2, code))
    else:

        def fsync(fd):
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(nmt.atomic.os, "fsync", fsync)
    ckpt["train_state"]["progress"]["step"] += 1

    refused(lambda: save_checkpoint(last, ckpt), last, "disk is full", "previous one is intact")
    refused(lambda: copy_checkpoint(last, last.parent / "best.pt"), last.parent / "best.pt", "disk is full")
    assert last.read_bytes() == before
    assert sorted(os.listdir(last.parent)) == listing, "a temporary file was left behind"


def test_other_write_errors_pass_through(tmp_path, monkeypatch):
    def fsync(fd):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(nmt.atomic.os, "fsync", fsync)
    with pytest.raises(OSError, match="I/O error"):
        write_atomic(tmp_path / "f", b"x")
    assert os.listdir(tmp_path) == []


def test_write_atomic_fsyncs_the_directory_after_the_rename(tmp_path, monkeypatch):
    synced, real_fsync = [], os.fsync

    def fsync(fd):
        synced.append((stat.S_ISDIR(os.fstat(fd).st_mode), (tmp_path / "f").exists()))
        real_fsync(fd)

    monkeypatch.setattr(nmt.atomic.os, "fsync", fsync)
    write_atomic(tmp_path / "f", b"new")
    assert synced == [(False, False), (True, True)]  # the file before the rename, then its directory after it


def test_write_atomic_works_where_a_directory_cannot_be_opened(tmp_path, monkeypatch):
    real_open = os.open

    def no_directories(path, flags, *args):
        if os.path.isdir(path):
            raise PermissionError(errno.EACCES, "a directory")  # what Windows says
        return real_open(path, flags, *args)

    monkeypatch.setattr(nmt.atomic.os, "open", no_directories)
    write_atomic(tmp_path / "f", b"new")
    assert (tmp_path / "f").read_bytes() == b"new"


# -- trainer.resume=auto ----------------------------------------------------------------------------------------

TRAIN_STATE = {"optimizer": {}, "scheduler": {}, "progress": {"step": 1}, "rng": {}}


def _fake_run(run_dir, model, data, mtime, yaml=True, train_state=True, name="last.pt", damaged=False):
    """A run directory whose checkpoints/<name> holds just the entries load_checkpoint checks."""
    config = {"model": {"name": model}, "data": {"name": data}}
    payload = {"model": {}, "config": config, "tokenizer": {}, **({"train_state": TRAIN_STATE} if train_state else {})}
    path = run_dir / "checkpoints" / name
    save_checkpoint(path, payload)
    if damaged:
        path.write_bytes(path.read_bytes()[:-100])
    if yaml:
        (run_dir / ".hydra").mkdir()
        (run_dir / ".hydra" / "config.yaml").write_text(
            f"model:\n  name: {model}\n  hidden_size: 8\ndata:\n  name: {data}\n  cache_dir: ${{paths.cache_dir}}\n"
        )
    os.utime(path, (mtime, mtime))
    return path


def test_resume_auto_picks_the_newest_complete_run_of_the_same_experiment(tmp_path, caplog):
    log = tmp_path / "outputs"
    _fake_run(log / "2024-01-01" / "10-00-00-lstm_attn-toy", "lstm_attn", "toy", 100)
    wanted = _fake_run(log / "multirun" / "2024-01-02" / "11-00-00" / "0-lstm_attn-toy", "lstm_attn", "toy", 200)
    damaged = _fake_run(log / "2024-01-03" / "12-00-00-lstm_attn-toy", "lstm_attn", "toy", 300, damaged=True)
    _fake_run(log / "2024-01-03" / "12-30-00-lstm_attn-toy", "lstm_attn", "toy", 350, train_state=False)
    _fake_run(log / "2024-01-03" / "13-00-00-transformer-toy", "transformer", "toy", 400)
    other = _fake_run(log / "2024-01-03" / "14-00-00-lstm_attn-other", "lstm_attn", "other", 500, damaged=True)
    copied = _fake_run(log / "2024-01-03" / "15-00-00-copied", "transformer", "toy", 600, yaml=False)
    _fake_run(log / "2024-01-03" / "16-00-00-lstm_attn-toy", "lstm_attn", "toy", 700, name="best.pt")

    assert newest_resumable(log, "lstm_attn", "toy") == wanted
    assert str(damaged) in caplog.text and "truncated or corrupted" in caplog.text
    assert str(other) not in caplog.text, "another experiment's checkpoint is told apart by its .hydra config alone"
    assert newest_resumable(log, "transformer", "toy") == copied

    # No .hydra/config.yaml: the checkpoint's own config tells the experiment.
    newer = _fake_run(log / "2024-01-04" / "09-00-00-copied", "lstm_attn", "toy", 800, yaml=False)
    assert newest_resumable(str(log), "lstm_attn", "toy") == newer


@pytest.mark.parametrize("where", ["empty", "missing"])
def test_resume_auto_without_a_resumable_run_is_one_line(where, tmp_path):
    log = tmp_path / "outputs"
    if where == "empty":
        _fake_run(log / "a", "lstm_attn", "toy", 100, damaged=True)
        _fake_run(log / "b", "lstm_attn", "other", 100)
    with pytest.raises(CheckpointError) as info:
        newest_resumable(log, "lstm_attn", "toy")
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert f"no resumable run of model=lstm_attn data=toy under {log}" in message
    assert "start without trainer.resume" in message


def test_the_trainer_resumes_auto_from_a_real_run(run, toy_cfg, tmp_path):
    trainer = Trainer(toy_cfg(*FAST, "trainer.resume=auto", f"paths.log_dir={run.parent}"), tmp_path / "b")
    assert trainer.progress.step == 4


def test_a_genuine_checkpoint_still_loads(run):
    model, tokenizer, cfg = load_for_inference(run / "checkpoints" / "best.pt", CPU)
    assert cfg["model"]["name"] == "lstm_attn" and not model.training and tokenizer.joint
