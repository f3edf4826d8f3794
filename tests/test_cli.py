"""The three CLIs end to end on the toy corpus, as a user runs them (subprocesses, any working directory)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from nmt.cli import evaluate, translate
from nmt.models import MODELS
from nmt.training.trainer import Trainer
from tests.conftest import tiny_model


def _run(module: str, *args: str, cwd, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", f"nmt.cli.{module}", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A few training steps on the toy corpus, launched from an unrelated working directory."""
    tmp = tmp_path_factory.mktemp("cli")
    run_dir = tmp / "outputs" / "toy-run"
    result = _run(
        "train",
        "data=toy",
        *tiny_model(),
        "trainer.max_steps=30",
        "trainer.eval_every=15",
        "trainer.max_tokens=1024",
        f"paths.log_dir={tmp / 'outputs'}",
        f"hydra.run.dir={run_dir}",
        cwd=tmp,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_train_reports_and_writes_the_run_directory(trained_run):
    run_dir = trained_run
    log = (run_dir / "train.log").read_text()
    for needle in (
        "run directory:",
        "data train:",
        "vocabulary: source",
        "parameters:",
        "nmt-eval ckpt=",
        "test: BLEU|",
    ):
        assert needle in log, needle
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert json.loads((run_dir / "results.json").read_text())["steps"] == 30


def test_eval_prints_bleu_and_chrf_with_signatures_and_writes_outputs(trained_run, tmp_path):
    run_dir = trained_run
    result = _run("evaluate", f"ckpt={run_dir}", "beam_size=2", f"out={tmp_path}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("BLEU|nrefs:1|") and "version:" in lines[0]
    assert lines[1].startswith("chrF2|nrefs:1|")
    hyps = (tmp_path / "toy.test.beam2.hyp").read_text().splitlines()
    assert len(hyps) == 200
    scores = json.loads((tmp_path / "toy.test.beam2.json").read_text())
    assert scores["beam_size"] == 2 and 0 <= scores["bleu"] <= 100


def test_eval_on_explicit_files(trained_run, tmp_path):
    run_dir = trained_run
    (tmp_path / "src.txt").write_text("a b c\nd e f\n")
    (tmp_path / "ref.txt").write_text("c b a\nf e d\n")
    result = _run(
        "evaluate",
        f"ckpt={run_dir}/checkpoints/best.pt",
        f"src={tmp_path}/src.txt",
        f"ref={tmp_path}/ref.txt",
        f"out={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "src.txt.beam5.hyp").read_text().splitlines()) == 2


def test_translate_an_argument_with_the_newest_best_checkpoint(trained_run, tmp_path):
    run_dir = trained_run
    result = _run("translate", "a b c d", f"paths.log_dir={run_dir.parent}", "beam_size=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1 and result.stdout.strip()
    assert str(run_dir / "checkpoints" / "best.pt") in result.stderr


def test_translate_stdin_gives_one_line_per_line(trained_run, tmp_path):
    run_dir = trained_run
    text = "a b c\n\nd e f g h\nq r s\n"
    result = _run("translate", f"ckpt={run_dir}", "beam_size=3", "batch_size=2", stdin=text, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout.split("\n")
    assert len(out) == 5 and out[-1] == ""  # four lines, each ended by a newline
    assert out[1] == "" and all(out[i] for i in (0, 2, 3))


@pytest.mark.parametrize(
    ("module", "args", "needle"),
    [
        ("translate", ["ckpt=/nonexistent/run", "hello"], "/nonexistent/run: no checkpoint there"),
        ("evaluate", ["ckpt=/nonexistent/best.pt"], "/nonexistent/best.pt: no checkpoint there"),
        ("translate", ["paths.log_dir=/nonexistent", "hello"], "train a model first"),
    ],
)
def test_bad_input_is_one_line_without_traceback(module, args, needle, tmp_path):
    result = _run(module, *args, cwd=tmp_path)
    assert result.returncode == 2
    assert needle in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_train_names_every_setting_out_of_range_in_one_line(tmp_path):
    result = _run("train", "data=toy", "optim.lr=-1", "model.dropout=2", "trainer.log_every=0", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "nmt-train: error: optim.lr=-1.0: must be > 0; model.dropout=2.0: must be in [0, 1);"
        " trainer.log_every=0: must be >= 1"
    ]
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("train.log"))


def test_train_rejects_a_typo(tmp_path):
    result = _run("train", "data=toy", "trainer.max_step=5", cwd=tmp_path)
    assert result.returncode != 0
    assert "max_step" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("name", sorted(set(MODELS) - {"memory_lstm"}))  # dialogue: test_memory.py
def test_a_checkpoint_alone_serves_eval_and_translate(name, toy_cfg, tmp_path, capsys):
    """No run directory, no .hydra config: the checkpoint file carries everything both CLIs need."""
    Trainer(toy_cfg("trainer.max_steps=4", "trainer.max_tokens=1024", model=name), tmp_path / "run").fit()
    alone = tmp_path / "elsewhere" / "model.pt"
    alone.parent.mkdir()
    shutil.copy(tmp_path / "run" / "checkpoints" / "best.pt", alone)
    shutil.rmtree(tmp_path / "run")
    (tmp_path / "src.txt").write_text("a b c\nd e f g\n")
    (tmp_path / "ref.txt").write_text("c b a\ng f e d\n")
    capsys.readouterr()

    evaluate.main([f"ckpt={alone}", f"src={tmp_path}/src.txt", f"ref={tmp_path}/ref.txt", f"out={tmp_path}"])
    assert capsys.readouterr().out.startswith("BLEU|nrefs:1|")
    translate.main([f"ckpt={alone}", "beam_size=3", "nbest=2", "a b c"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(len(line.split("\t")) == 2 for line in lines)
    assert float(lines[0].split("\t")[0]) >= float(lines[1].split("\t")[0])


# Every command but nmt-train (Hydra's own flags; below) and nmt-study (argparse: test_study.py), with the name of
# a setting its --help lists and its --cfg prints.
COMMANDS = {
    "nmt-eval": ("evaluate", "beam_size: 5"),
    "nmt-translate": ("translate", "beam_size: 5"),
    "nmt-doctor": ("doctor", "max_epochs: 10"),
    "nmt-average": ("average", "pattern: step-*.pt"),
    "nmt-export": ("export", "max_shard_mb: 1000.0"),
    "nmt-preprocess": ("preprocess", "workers: null"),
    "nmt-data-stats": ("data_stats", "vocab_sizes:"),
}


def _exit(main, argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    return info.value.code, out, err


@pytest.mark.parametrize("program", sorted(COMMANDS))
def test_every_command_has_help_and_cfg_and_refuses_unknown_options_in_one_line(program, capsys):
    import importlib

    module, setting = COMMANDS[program]
    main = importlib.import_module(f"nmt.cli.{module}").main
    status, out, _ = _exit(main, ["--help"], capsys)
    assert status == 0 and out.startswith(f"usage: {program} [--help] [--cfg]") and setting in out
    status, out, _ = _exit(main, ["--cfg"], capsys)
    assert status == 0 and setting in out and "usage" not in out
    for flag in ("--beam", "-x"):  # nmt-translate took them for text to translate
        status, out, err = _exit(main, ["ckpt=/nowhere", flag, "5"], capsys)
        assert status == 2 and out == ""
        assert err == f"{program}: error: unknown option {flag}: settings are key=value words (see {program} --help)\n"


@pytest.mark.parametrize(
    ("args", "status", "expected"),
    [
        (["--help"], 0, "== Configuration groups =="),
        (["--cfg", "job", "data=toy"], 0, "name: toy"),
        (["--beam=5", "data=toy"], 2, "nmt-train: error: unknown option --beam: settings are key=value words"),
        (["-m", "--cfg", "job"], 2, "nmt-train: error: --cfg and -m do not go together: use one of them"),
    ],
)
def test_train_help_cfg_and_bad_options(args, status, expected, tmp_path):
    result = _run("train", *args, cwd=tmp_path)
    assert result.returncode == status and expected in result.stdout + result.stderr
    assert "Traceback" not in result.stderr and (status == 0 or len(result.stderr.splitlines()) == 1)
