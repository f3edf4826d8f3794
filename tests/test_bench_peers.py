"""The peer benchmark (scripts/bench_peers.py): its window arithmetic, its table, and one tiny run end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import sentencepiece as spm

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import bench_peers


def log_line(stamp: str, step: int, tok: int) -> str:
    return f"[2026-11-21 {stamp}][nmt.train][INFO] - step {step}/400 | epoch 1 | loss 3.000 | clipped 0% | {tok} tok/s"


def test_window_rates_drop_the_first_window_and_read_time_stamps():
    text = "\n".join(
        [
            "[2026-11-21 10:00:00,000][nmt.train][INFO] - run directory: x",
            log_line("10:00:10,000", 50, 900),
            log_line("10:00:20,000", 100, 3000),
            "[2026-11-21 10:00:21,000][nmt.train][INFO] - step 100 dev: teacher-forced loss 3.0",
            log_line("10:00:45,000", 150, 1500),
        ]
    )
    ups, own = bench_peers.window_rates(text)
    assert ups == [5.0, 2.0]
    assert own == [3000.0, 1500.0]


def test_table_ratios_are_against_the_fastest_peer_and_the_smallest_rss(capsys):
    peers = [
        ("a", "transformer", [1000, 900, 4000, 1000, 20.0, 21.0]),
        ("b", "transformer", [2000, 1200, 3000, None, 19.0, None]),
    ]
    bench_peers.table({"transformer": [3000, 450, 6000, 1500, 20.5, 22.0]}, "nmt", peers)
    ratios = capsys.readouterr().out.strip().splitlines()[-1]
    assert ratios == "| transformer | 1.50x | 0.50x | 1.50x | 1.50x |"


def test_conditions_name_the_cpu_the_steal_and_where_peer_rows_come_from(capsys):
    results = {
        "env": {"cpu": "Some CPU", "bf16": "emulated"},
        "transformer": {"train_steal_pct": 22.7, "beam1": {"steal_pct": 3.0}, "beam5": {"steal_pct": None}},
    }
    bench_peers.conditions(results, [("fairseq (published, 400 updates)", "transformer", [])], threads=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("CPU: Some CPU (bf16 products: emulated), 2 threads")
    assert lines[1] == "- transformer: training 22.7%, beam 1 3.0%, beam 5 ?%"
    assert "compare machines as much as toolkits" in lines[2]
    bench_peers.conditions(results, [("fairseq 0.12.3.1", "transformer", [])], threads=2)
    assert "compare machines" not in capsys.readouterr().out


def test_cpu_ticks_count_steal_within_all_ticks():
    stolen, total = bench_peers.cpu_ticks()
    assert 0 <= stolen <= total


def write_prepared(data, pairs: list[tuple[str, str]]) -> None:
    """The files the peers' prep_data.py writes, for a tiny corpus: splits, a joint spm.model, stats.json."""
    splits = {"test": pairs[:12], "dev": pairs[12:24], "train": pairs[24:]}
    for name, split in splits.items():
        for side, column in (("src", 0), ("trg", 1)):
            (data / f"{name}.{side}").write_text("".join(p[column] + "\n" for p in split), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=[str(data / "train.src"), str(data / "train.trg")],
        model_prefix=str(data / "spm"),
        vocab_size=40,
        model_type="bpe",
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=3,
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_file=str(data / "spm.model"))
    targets = [p[1] for p in splits["train"]]
    tokens = sum(len(ids) + 1 for ids in sp.encode(targets))
    stats = {"train.trg.sentences": len(targets), "train.trg.sp_tokens_plus_eos": tokens}
    (data / "stats.json").write_text(json.dumps(stats))


@pytest.mark.slow
def test_a_tiny_run_writes_the_peers_schema_and_the_side_by_side_table(tmp_path):
    toy = (ROOT / "data" / "toy" / "train.tsv").read_text(encoding="utf-8").splitlines()[:400]
    data = tmp_path / "data"
    data.mkdir()
    write_prepared(data, [tuple(line.split("\t")) for line in toy])
    out = tmp_path / "out"
    small = ["model.d_model=32", "model.ffn_dim=64", "model.heads=2", "trainer.log_every=2", "trainer.max_tokens=4096"]
    args = [*small, "--steps", "6", "--models", "transformer", "--reps", "1", "--data", str(data), "--out", str(out)]
    args += ["--peer-results", str(tmp_path / "peer.json"), "--stop", "top_eos", "--parallel-batches", "2"]
    peer = {"env": {"toolkit": "peer"}, "transformer": {"train_norm": {"tgt_tok_s": 10.0}, "train_peak_rss_mb": 1e6}}
    (tmp_path / "peer.json").write_text(json.dumps(peer))
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "peers", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    transformer = results["transformer"]
    assert len(transformer["train_norm"]["windows_ups"]) == 2  # steps 2->4 and 4->6
    assert transformer["train_peak_rss_mb"] > 50
    for beam in ("beam1", "beam5"):
        hyps = (out / "transformer" / f"hyp.b{beam[-1]}.txt").read_text(encoding="utf-8").splitlines()
        assert len(hyps) == 12
        assert transformer[beam]["hyp_tokens"] >= 12  # every hypothesis counts its EOS
        assert transformer[beam]["sent_s"] > 0
    assert transformer["beam5"]["stop"] == "top_eos"
    assert transformer["beam1"]["parallel_batches"] == 1  # asked for 2, but the 12 sentences make one batch
    table = result.stdout.splitlines()
    assert any(line.startswith("| peer | transformer | 10 |") for line in table)
    speedup = transformer["train_norm"]["tgt_tok_s"] / 10.0
    assert any(line.startswith(f"| transformer | {speedup:.2f}x | ") for line in table)
    assert results["env"]["cpu"] and table[-1].startswith("- transformer: training ")
    run = json.loads((out / "transformer" / "results.json").read_text())
    assert transformer["dev"] == {name: round(run["dev"][name], 2) for name in ("bleu", "chrf", "ppl")}
    assert f"- transformer: BLEU {transformer['dev']['bleu']:.2f} | chrF " in result.stdout
    assert all(0 <= x <= 100 for x in (transformer["train_steal_pct"], transformer["beam5"]["steal_pct"]))
