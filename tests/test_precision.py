"""bf16 autocast on a CPU without bf16 instructions is told, not silently 3x slower than fp32."""

from __future__ import annotations

import pytest
import torch

from nmt.models.attention import Attention
from nmt.models.transformer import MultiHeadAttention
from nmt.training import device as device_module
from nmt.training.device import emulated_bf16
from nmt.training.trainer import Trainer


@pytest.mark.parametrize(("fp32_s", "bf16_s", "emulated"), [(1e-3, 3e-3, True), (1e-3, 5e-4, False)])
def test_bf16_is_emulated_where_its_products_measure_slower_than_fp32(monkeypatch, fp32_s, bf16_s, emulated):
    monkeypatch.setattr(device_module, "time_bf16_product", lambda: {"32": fp32_s, "bf16": bf16_s})
    assert emulated_bf16(torch.device("cpu")) is emulated
    assert emulated_bf16(torch.device("cuda")) is False  # no claim off the CPU


def test_time_bf16_product_times_both_precisions_on_this_cpu():
    times = device_module.time_bf16_product()
    assert set(times) == {"32", "bf16"} and all(0 < t < 1 for t in times.values())


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
    assert ("bf16 products are emulated" in caplog.text and "trainer.precision=32" in caplog.text) is warned


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
