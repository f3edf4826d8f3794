"""Every hardware-dependent path, forced, end to end on whatever CPU runs the tests: a few training steps, a dev
evaluation with beam search and nmt-translate, for every model in fp32 and bf16-mixed.

The paths (nmt/cpu_kernels.py, docs/performance.md): fp32 products on torch's BLAS or on oneDNN
(kernels.matmul), torch's or the fast dropout (kernels.dropout), LSTMs under bf16 autocast on oneDNN or in fp32
(kernels.bf16_lstm), one or two batches decoded at once (search.parallel_batches), eager or compiled
(trainer.compile), and, through oneDNN's own ONEDNN_MAX_CPU_ISA, a CPU whose bf16 is emulated (an Intel Xeon
without AVX-512 BF16) and one with AVX2 only, where oneDNN builds no bf16 LSTM (a Zen 3 EPYC). A path this torch
build or CPU cannot take is skipped with the reason (pytest -ra prints it).
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys

import pytest

from nmt.cli import translate
from nmt.cpu_kernels import onednn_builds_bf16_lstm, onednn_linear_op
from nmt.training.trainer import Trainer
from tests.conftest import ROOT, compose_config, tiny_model

# Each model by test id, with its options: the rnn also with an LSTM cell, whose state is an (h, c) pair.
MODELS = {
    "rnn": ("rnn", {}),
    "rnn-lstm": ("rnn", {"cell": "lstm"}),
    "lstm_attn": ("lstm_attn", {}),
    "transformer": ("transformer", {}),
    "memory_lstm": ("memory_lstm", {}),
}
PRECISIONS = ["32", "bf16-mixed"]
# Each value of each kernel setting is taken by one of the two; parallel_batches is set for dev and nmt-translate.
PATHS = {
    "torch": {"kernels.matmul": "blas", "kernels.dropout": "torch", "kernels.bf16_lstm": "fp32", "parallel_batches": 1},
    "fast": {
        "kernels.matmul": "onednn",
        "kernels.dropout": "fast",
        "kernels.bf16_lstm": "onednn",
        "parallel_batches": 2,
    },
}
HAS_LSTM = {"rnn-lstm", "lstm_attn", "memory_lstm"}  # nn.LSTM modules: the LSTM cells, attention LSTMs, memory


def _skip_reason(path: str, name: str, precision: str) -> str | None:
    if path == "fast" and onednn_linear_op() is None:
        return "this torch build has no oneDNN linear for fp32 CPU tensors"
    if path == "fast" and precision != "32" and name in HAS_LSTM and not onednn_builds_bf16_lstm():
        return "oneDNN builds no bf16 LSTM on this CPU (kernels.bf16_lstm=onednn cannot run here)"
    return None


def _train_and_translate(name, precision, settings, extra, dialogue_data, tmp_path, capsys):
    kernels = [f"{key}={value}" for key, value in settings.items() if key.startswith("kernels.")]
    model, options = MODELS[name]
    overrides = [
        *(dialogue_data if name == "memory_lstm" else ["data=toy"]),
        *tiny_model(model, dropout=0.3, **options),
        f"paths.log_dir={tmp_path}",
        "trainer.progress_bar=false",
        "trainer.max_steps=3",
        "trainer.max_tokens=512",
        "trainer.dev_max_sentences=8",
        "trainer.search.beam_size=2",
        f"trainer.search.parallel_batches={settings['parallel_batches']}",
        f"trainer.precision={precision}",
        *kernels,
        *extra,
    ]
    results = Trainer(compose_config("train", overrides), tmp_path / "run").fit()
    assert results["steps"] == 3 and all(math.isfinite(results["test"][key]) for key in ("loss", "bleu", "chrf"))
    capsys.readouterr()
    ckpt = tmp_path / "run" / "checkpoints" / "best.pt"
    translate.main([f"ckpt={ckpt}", "beam_size=2", f"parallel_batches={settings['parallel_batches']}", *kernels, "a b"])
    assert capsys.readouterr().out.strip(), "nmt-translate printed no translation"


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("name", MODELS)
def test_every_model_trains_evaluates_and_translates_on_each_path(
    name, precision, path, dialogue_data, tmp_path, capsys
):
    reason = _skip_reason(path, name, precision)
    if reason:
        pytest.skip(reason)
    _train_and_translate(name, precision, PATHS[path], [], dialogue_data, tmp_path, capsys)


@pytest.mark.slow
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("name", ["rnn", "lstm_attn", "transformer"])  # a memory-LSTM's sessions run eagerly
def test_every_model_trains_compiled(name, precision, dialogue_data, tmp_path, capsys):
    """trainer.compile=true compiles the teacher-forced forward (20-55 s a model on 2 cores)."""
    settings = {**PATHS["fast"], "kernels.matmul": "auto", "kernels.bf16_lstm": "auto"}
    _train_and_translate(name, precision, settings, ["trainer.compile=true"], dialogue_data, tmp_path, capsys)


def _cli(module: str, *args: str, env: dict, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", f"nmt.cli.{module}", *args], env=env, cwd=cwd, capture_output=True, text=True
    )


# oneDNN's instruction-set cap: what oneDNN may use, whatever the CPU has (https://uxlfoundation.github.io/oneDNN/).
CPUS = {"AVX512_CORE": "no bf16 instructions (an Intel Xeon's)", "AVX2": "AVX2 only (a Zen 3 EPYC's)"}


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="ONEDNN_MAX_CPU_ISA's x86 values")
@pytest.mark.parametrize("isa", sorted(CPUS))
@pytest.mark.parametrize("name", ["lstm_attn", "transformer"])
def test_bf16_training_on_a_cpu_without_bf16_instructions(name, isa, tmp_path):
    """bf16-mixed where oneDNN may not use bf16 instructions: training, dev and test evaluation and nmt-translate
    run, with kernels.bf16_lstm=auto finding by itself whether oneDNN builds a bf16 LSTM."""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": isa, "NMT_ROOT": str(ROOT)}
    run_dir = tmp_path / "run"
    train = _cli(
        "train",
        "data=toy",
        *tiny_model(name, dropout=0.3),
        "trainer.max_steps=3",
        "trainer.max_tokens=512",
        "trainer.dev_max_sentences=8",
        "trainer.precision=bf16-mixed",
        f"hydra.run.dir={run_dir}",
        env=env,
        cwd=tmp_path,
    )
    assert train.returncode == 0, train.stderr[-2000:]
    log = (run_dir / "train.log").read_text()
    if isa == "AVX2":
        # 60x slower than fp32 there: the measured warning cannot miss it.
        assert "bf16 products are emulated" in log
        if name == "lstm_attn":
            assert "LSTMs under bf16 autocast: fp32" in log
    out = _cli("translate", f"ckpt={run_dir / 'checkpoints' / 'best.pt'}", "a b", env=env, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip(), out.stderr[-2000:]
