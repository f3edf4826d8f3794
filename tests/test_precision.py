"""bf16 autocast on a CPU without bf16 instructions is told, not silently 3x slower than fp32, and LSTMs run there."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from nmt.models import base
from nmt.models.attention import Attention
from nmt.models.transformer import MultiHeadAttention
from nmt.training import device as device_module
from nmt.training.device import emulated_bf16
from nmt.training.trainer import Trainer

INTEL_FLAGS = "fpu sse2 avx2 avx512f avx512bw avx512_vnni"


def _cpuinfo(tmp_path, text: str) -> str:
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("text", "emulated"),
    [
        (f"processor\t: 0\nflags\t\t: {INTEL_FLAGS}\n", True),
        (f"processor\t: 0\nflags\t\t: {INTEL_FLAGS} avx512_bf16 amx_tile amx_bf16\n", False),
        (f"processor\t: 0\nflags\t\t: {INTEL_FLAGS} avx512_bf16\n", False),  # AMD Zen 4: AVX-512 BF16, no AMX
        ("processor\t: 0\nFeatures\t: fp asimd sve\n", True),  # ARM without bf16
        ("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n", False),
        ("processor\t: 0\n", False),  # no flags at all: no claim
    ],
)
def test_emulated_bf16_reads_the_cpu_flags(tmp_path, text, emulated):
    assert emulated_bf16(torch.device("cpu"), _cpuinfo(tmp_path, text)) is emulated


def test_emulated_bf16_makes_no_claim_without_cpuinfo_or_off_the_cpu(tmp_path):
    assert emulated_bf16(torch.device("cpu"), str(tmp_path / "missing")) is False
    assert emulated_bf16(torch.device("cuda"), _cpuinfo(tmp_path, f"flags\t: {INTEL_FLAGS}\n")) is False


@pytest.mark.parametrize(
    ("precision", "emulated", "warned"), [("bf16-mixed", True, True), ("bf16-mixed", False, False), ("32", True, False)]
)
def test_training_warns_when_bf16_would_be_emulated(
    toy_cfg, tmp_path, caplog, monkeypatch, precision, emulated, warned
):
    monkeypatch.setattr(device_module, "emulated_bf16", lambda device: emulated)
    trainer = Trainer(toy_cfg("trainer.max_steps=1", f"trainer.precision={precision}"), tmp_path / "run")
    with caplog.at_level("INFO", logger="nmt.train"):
        trainer.fit()
    assert ("bf16 instructions" in caplog.text and "trainer.precision=32" in caplog.text) is warned


@pytest.mark.parametrize("packed", [False, True])
def test_lstm_runs_in_fp32_under_autocast_where_onednn_builds_no_bf16_lstm(monkeypatch, packed):
    monkeypatch.setattr(base, "_onednn_builds_bf16_lstm", lambda: False)
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(8, 6, 2, batch_first=True, bidirectional=True)
    x = torch.randn(3, 5, 8)
    inputs = pack_padded_sequence(x, torch.tensor([5, 4, 2]), batch_first=True) if packed else x
    state = base.LSTMState(torch.randn(4, 3, 6), torch.randn(4, 3, 6))
    expected, (h, c) = lstm(inputs, (state.h, state.c))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, final = base.run_lstm(lstm, inputs, state)
    out, expected = (out.data, expected.data) if packed else (out, expected)
    assert out.dtype == final.h.dtype == torch.float32
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    torch.testing.assert_close((final.h, final.c), (h, c), rtol=0, atol=0)


def test_attention_weights_are_fp32_under_cpu_autocast():
    """CPU autocast would leave softmax in bf16, whose rows sum to 1 only to ~1e-2; CUDA's runs it in fp32."""
    torch.manual_seed(0)
    query, memory = torch.randn(2, 3, 8) * 4, torch.randn(2, 5, 8) * 4
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    luong = Attention("general", 8, 8)
    heads = MultiHeadAttention(8, 2, dropout=0.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, luong_weights = luong(query, memory, mask)
        keys, values = heads.keys_values(memory)
        _, head_weights = heads(query, keys, values, mask[:, None, None, :], need_weights=True)
    for weights in (luong_weights, head_weights):
        assert weights.dtype == torch.float32
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3), rtol=0, atol=1e-6)
        assert (weights[1, :, 3:] == 0).all()
