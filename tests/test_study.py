"""nmt-study: runs found at any depth, the settings that differ, scores from results.json and TensorBoard, plots,
incomplete runs marked, bad input in one line; and a study of two real tiny trainings."""

from __future__ import annotations

import csv
import json
import time

import pytest
import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from nmt.cli import study as study_cli
from nmt.study import PLOTS, collect, find_runs, legend_labels, read_curves
from nmt.training.trainer import Trainer
from tests.test_bad_input import run_cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# step -> dev BLEU: the best (9.0 at step 20) is not the last.
DEV_BLEU = {10: 5.0, 20: 9.0, 30: 8.0}


def fake_run(run, cfg, *, results: bool = True, events: bool = True, train_seconds: float | None = 42.0):
    """A run directory as nmt-train leaves it: .hydra/config.yaml, results.json and scalars for steps 5..30."""
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    if results:
        scores = {
            "steps": 30,
            "parameters": 1234,
            "best_step": 20,
            "dev": {"bleu": 9.0, "chrf": 30.0},
            "test": {"bleu": 7.5, "chrf": 28.0},
        }
        if train_seconds is not None:
            scores["train_seconds"] = train_seconds
        (run / "results.json").write_text(json.dumps(scores))
    if events:
        writer = SummaryWriter(str(run / "tb"))
        start = time.time()  # about the wall time of the writer's first event, which the time axis counts from
        for step in range(5, 31, 5):
            writer.add_scalar("train/loss", 4.0 - step / 10, step, walltime=start + step)
            writer.add_scalar("train/tokens_per_sec", 100.0 * step, step, walltime=start + step)
            writer.add_scalar("train/padding_share", step / 50, step, walltime=start + step)
        for step, bleu in DEV_BLEU.items():
            writer.add_scalar("dev/bleu", bleu, step, walltime=start + step)
            writer.add_scalar("dev/chrf", 3 * bleu, step, walltime=start + step)
            writer.add_scalar("dev/loss", 3.0 - step / 20, step, walltime=start + step)
            writer.add_scalar("dev/no_eos_rate", 0.5 - step / 100, step, walltime=start + step)
        writer.close()
    return run


def study(args, capsys) -> tuple[str, str]:
    study_cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_a_sweep_shows_the_setting_that_differs_and_each_runs_scores(toy_cfg, tmp_path, capsys):
    sweep = tmp_path / "multirun" / "2026-12-05" / "10-00-00"
    for job, lr in enumerate([1e-3, 5e-4]):
        fake_run(sweep / str(job), toy_cfg(f"optim.lr={lr}", f"paths.log_dir={tmp_path}/job{job}"))
    out, err = study([sweep, "--out", tmp_path / "study", "--name", "learning rates"], capsys)

    assert err == "" and "wrote table.md, table.csv, dev_bleu_vs_step.png" in out and str(tmp_path / "study") in out
    with (tmp_path / "study" / "table.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [row["run"] for row in rows] == ["0", "1"]
    assert [row["optim.lr"] for row in rows] == ["0.001", "0.0005"]
    assert "optim.name" not in rows[0] and not any(key.startswith("paths.") for key in rows[0]), "only what differs"
    assert rows[0]["data"] == "toy" and rows[0]["status"] == "ok"
    expected = {"dev_bleu": "8.0", "best_dev_bleu": "9.0", "best_step": "20", "test_bleu": "7.5", "steps": "30"}
    assert {key: rows[0][key] for key in expected} == expected
    assert rows[0]["train_seconds"] == "42.0" and rows[0]["train_tok_per_s"] == "1750.0", "median of 500..3000"
    table = (tmp_path / "study" / "table.md").read_text()
    assert table.startswith("# learning rates\n") and table in out
    assert "| 0 | ok | toy | 0.001 | 8.00 | 24.00 | 9.00 | 20 | 7.50 | 28.00 | 30 | 42 | 1750 | 1,234 |" in table
    for name in PLOTS:
        png = (tmp_path / "study" / name).read_bytes()
        assert png.startswith(PNG_SIGNATURE) and 5_000 < len(png) < 200_000, name


def test_asked_for_scalars_get_a_column_and_a_plot_each(toy_cfg, tmp_path, capsys):
    fake_run(tmp_path / "runs" / "a", toy_cfg())
    tags = ["dev/no_eos_rate", "train/padding_share", "dev/typo"]
    out, err = study([tmp_path / "runs", *(arg for tag in tags for arg in ("--tag", tag))], capsys)
    with (tmp_path / "runs" / "study" / "table.csv").open() as f:
        (row,) = csv.DictReader(f)
    # dev: the last evaluation's value; train: the median of the logging windows (0.1, 0.2, ... 0.6).
    assert (row["dev/no_eos_rate"], row["train/padding_share"], row["dev/typo"]) == ("0.2", "0.35", "")
    assert err == "nmt-study: warning: no run has the scalar dev/typo\n"
    assert "| 1,234 | 0.2 | 0.35 | - |" in out
    for name in ("dev_no_eos_rate_vs_step.png", "train_padding_share_vs_step.png"):
        assert (tmp_path / "runs" / "study" / name).read_bytes().startswith(PNG_SIGNATURE)


def test_runs_of_different_models_show_the_settings_that_differ_where_they_exist(toy_cfg, tmp_path):
    fake_run(tmp_path / "runs" / "gru", toy_cfg("model.cell=gru", model="rnn"))
    fake_run(tmp_path / "runs" / "lstm", toy_cfg("model.cell=lstm", model="rnn"))
    fake_run(tmp_path / "runs" / "transformer", toy_cfg(model="transformer"))
    study = collect([tmp_path / "runs"])
    # Not model.d_model (the Transformer's alone) nor model.embed_dim (the same in both rnn runs).
    assert study.setting_keys[:2] == ["model.name", "model.cell"]
    assert "model.d_model" not in study.setting_keys and "model.embed_dim" not in study.setting_keys
    assert [row["model.cell"] for row in study.rows] == ["gru", "lstm", None]
    labels = legend_labels(study)
    assert labels[0].startswith("name=rnn, cell=gru, ") and labels[1].startswith("name=rnn, cell=lstm, ")


def test_incomplete_runs_are_marked_with_what_they_have(toy_cfg, tmp_path, capsys):
    fake_run(tmp_path / "runs" / "finished", toy_cfg())
    fake_run(tmp_path / "runs" / "killed", toy_cfg(), results=False)
    fake_run(tmp_path / "runs" / "no_events", toy_cfg(), events=False)
    rows = {row["run"]: row for row in collect([tmp_path / "runs"]).rows}
    assert rows["finished"]["status"] == "ok"
    assert rows["killed"]["status"] == "incomplete: no results.json"
    assert rows["killed"]["best_dev_bleu"] == 9.0 and rows["killed"]["test_bleu"] is None
    assert rows["killed"]["train_seconds"] == 25.0, "without results.json: the span of the train/loss events"
    assert rows["no_events"]["status"] == "incomplete: no TensorBoard scalars"
    assert rows["no_events"]["best_dev_bleu"] == 9.0 and rows["no_events"]["dev_bleu"] is None, "from results.json"
    out, _ = study([tmp_path / "runs"], capsys)
    assert "| killed | incomplete: no results.json |" in out
    assert (tmp_path / "runs" / "study" / "loss_vs_time.png").is_file(), "one input: <input>/study"


def test_older_results_without_train_seconds_take_the_span_of_the_training_events(toy_cfg, tmp_path):
    fake_run(tmp_path / "run", toy_cfg(), train_seconds=None)
    assert collect([tmp_path / "run"]).rows[0]["train_seconds"] == 25.0, "steps 5..30, a second a step"


def test_runs_on_different_data_are_warned_of_and_labelled(toy_cfg, tmp_path, capsys):
    fake_run(tmp_path / "runs" / "a", toy_cfg())
    fake_run(tmp_path / "runs" / "b", toy_cfg("data.name=other"))
    out, err = study([tmp_path / "runs" / "a", tmp_path / "runs" / "b"], capsys)
    assert err.startswith("nmt-study: warning: the runs are on different data (data.name: toy, other)"), err
    assert "| a | ok | toy |" in out and "| b | ok | other |" in out
    assert (tmp_path / "runs" / "study" / "table.md").is_file(), "several inputs: study/ beside the first"


def test_sweep_jobs_sort_as_numbers_and_a_resumed_run_keeps_its_later_points(toy_cfg, tmp_path):
    for job in (0, 2, 10, 1):
        (tmp_path / str(job) / ".hydra").mkdir(parents=True)
        OmegaConf.save(toy_cfg(), tmp_path / str(job) / ".hydra" / "config.yaml")
    assert [run.name for run in find_runs(tmp_path)] == ["0", "1", "2", "10"]

    # The first session logged steps 10-30; resumed from its step-20 checkpoint, the second logs 30 again.
    for steps, bleu in (((10, 20, 30), 1.0), ((30,), 2.0)):
        writer = SummaryWriter(str(tmp_path / "tb"))
        for step in steps:
            writer.add_scalar("dev/bleu", bleu, step)
        writer.close()
    assert [(p.step, p.value) for p in read_curves(tmp_path / "tb")["dev/bleu"]] == [(10, 1.0), (20, 1.0), (30, 2.0)]


@pytest.mark.parametrize("make", ["missing", "empty", "no_runs"])
def test_bad_input_is_one_line_naming_the_path(make, tmp_path, capsys):
    path = tmp_path / make
    if make != "missing":
        path.mkdir()
    if make == "no_runs":
        (path / "notes.txt").write_text("not a run")
    with pytest.raises(SystemExit) as info:
        study_cli.main([str(path)])
    err = capsys.readouterr().err
    assert info.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"nmt-study: error: {path}: ") and ".hydra/config.yaml" in err, err


def test_help_prints_usage(capsys):
    with pytest.raises(SystemExit) as info:
        study_cli.main(["--help"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("usage: nmt-study")


@pytest.fixture
def one_thread():
    """torch on one thread: a tiny model gains nothing from more, and on cores other processes are busy on, torch's
    threads spin waiting for each other (one of these runs took 23 s on two loaded cores, against 1 s on one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_study_of_two_real_runs(toy_cfg, tmp_path, capsys, one_thread):
    # Two dev evaluations and four training windows each, in a few seconds.
    fast = ["trainer.max_tokens=1024", "trainer.max_steps=4", "trainer.eval_every=2", "trainer.log_every=1"]
    results = []
    for name, lr in (("a", 1e-3), ("b", 3e-3)):
        run = tmp_path / "outputs" / name
        quick_eval = ["trainer.dev_max_sentences=10", "trainer.attention_samples=1", "trainer.search.beam_size=1"]
        cfg = toy_cfg(*fast, *quick_eval, f"optim.lr={lr}")
        (run / ".hydra").mkdir(parents=True)
        OmegaConf.save(cfg, run / ".hydra" / "config.yaml")  # the Hydra CLI writes it; Trainer does not
        results.append(Trainer(cfg, run).fit())
    out, err = study([tmp_path / "outputs", "--image", "attention/0"], capsys)

    table = collect([tmp_path / "outputs"])
    assert table.setting_keys == ["optim.lr"] and err == ""
    for row, result in zip(table.rows, results, strict=True):
        assert row["status"] == "ok" and row["steps"] == 4 and row["test_bleu"] == result["test"]["bleu"]
        assert row["train_seconds"] == result["train_seconds"] > 0 and row["train_tok_per_s"] > 0
        assert row["best_step"] == result["best_step"] and row["best_dev_bleu"] == pytest.approx(result["dev"]["bleu"])
    # The events reader agrees with tensorboard's own.
    tensorboard = EventAccumulator(str(tmp_path / "outputs" / "a" / "tb"))
    tensorboard.Reload()
    ours = read_curves(tmp_path / "outputs" / "a" / "tb")
    for tag in ("dev/bleu", "train/loss"):
        assert [(p.step, p.value) for p in ours[tag]] == [(e.step, e.value) for e in tensorboard.Scalars(tag)]
    # Each run's last attention heatmap, as TensorBoard shows it.
    heatmap = (tmp_path / "outputs" / "study" / "attention_0-a.png").read_bytes()
    assert heatmap.startswith(PNG_SIGNATURE) and heatmap == tensorboard.Images("attention/0")[-1].encoded_image_string
    assert (tmp_path / "outputs" / "study" / "attention_0-b.png").is_file()
    assert "| a | ok | toy | 0.001 |" in out


@pytest.mark.parametrize(
    "argv, overrides, name",
    [
        # The swept keys name the job; the fixed ones are the same for every job of the sweep.
        (["-m", "data=toy", "optim.lr=1e-3,2e-3"], ["data=toy", "optim.lr=2e-3"], "1-optim.lr=2e-3"),
        (["-m", "seed=range(3)", "model=rnn,gru"], ["seed=2", "model=gru"], "1-seed=2,model=gru"),
        # No sweep on this command line (a launcher running the job elsewhere): every override, paths left out.
        ([], ["+data.train=/a/b.tsv", "paths.log_dir=/x", "optim.lr=1"], "1-data.train=_a_b.tsv,optim.lr=1"),
        ([], ["trainer.progress_bar=false"], "1-rnn-toy"),
    ],
)
def test_sweep_jobs_are_named_by_the_values_they_sweep(monkeypatch, argv, overrides, name):
    from nmt.config import sweep_job_name

    monkeypatch.setattr("sys.argv", ["nmt-train", *argv])
    assert sweep_job_name(1, overrides, "rnn", "toy") == name


def test_a_real_sweep_names_its_jobs_and_ends_with_their_table(tmp_path):
    sweep = tmp_path / "sweep"
    tiny = [
        "model=rnn",
        "model.embed_dim=8",
        "model.hidden_size=8",
        "trainer.max_steps=2",
        "trainer.progress_bar=false",
    ]
    where = [f"paths.log_dir={tmp_path}", f"hydra.sweep.dir={sweep}"]
    status, out, err = run_cli("train", ["-m", "data=toy", *tiny, "optim.lr=1e-3,2e-3", *where], tmp_path)
    assert status == 0, err
    assert sorted(p.name for p in sweep.iterdir()) == ["0-optim.lr=0.001", "1-optim.lr=0.002", "multirun.yaml", "study"]
    assert "the sweep's 2 runs" in out and "| 1-optim.lr=0.002 | ok | toy | 0.002 |" in out
    assert (sweep / "study" / "table.md").read_text() in out and (sweep / "study" / "dev_bleu_vs_step.png").is_file()
