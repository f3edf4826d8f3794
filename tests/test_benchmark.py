"""scripts/benchmark.py runs the trainer's own steps through Trainer.train_step and prints its table."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import ROOT, tiny_model


def test_teacher_forcing_table_on_the_toy_corpus(tmp_path):
    command = [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "data=toy", *tiny_model("rnn")]
    command += ["--windows", "1", "--window", "2", "--ratios", "1.0", "0.5"]
    run = subprocess.run(
        command, capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "NMT_ROOT": str(ROOT)}
    )
    assert run.returncode == 0, run.stderr[-2000:]
    rows = re.findall(r"^\| (\d\.\d\d) \| (\d+) \| \d+-\d+ \| (\d+\.\d\d)x \|$", run.stdout, re.MULTILINE)
    assert [ratio for ratio, _, _ in rows] == ["1.00", "0.50"], run.stdout
    assert all(int(rate) > 0 for _, rate, _ in rows) and rows[0][2] == "1.00"
