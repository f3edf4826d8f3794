"""The CPU kernels (nmt/cpu_kernels.py): each equals the torch module it replaces, is swapped in from outside the
model, and is chosen by measuring or probing the machine, or forced by a setting."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from nmt import cpu_kernels
from nmt.config import KernelsConfig
from nmt.cpu_kernels import (
    MIN_ROWS,
    FastDropout,
    Fp32LSTM,
    KernelChoice,
    OneDnnLinear,
    choose_kernels,
    fast_dropout,
    onednn_linear,
    onednn_linear_op,
    swap_modules,
    time_matmul,
    use_cpu_kernels,
)
from nmt.errors import UserError
from nmt.models.base import LSTMState, run_lstm
from nmt.training.loss import sequence_loss
from tests.conftest import build_tiny

CPU = torch.device("cpu")
needs_onednn = pytest.mark.skipif(
    onednn_linear_op() is None, reason="this torch build has no oneDNN linear for fp32 CPU tensors"
)
needs_bf16_lstm = pytest.mark.skipif(
    not cpu_kernels.onednn_builds_bf16_lstm(), reason="oneDNN builds no bf16 LSTM on this CPU"
)


def _kernels(**settings):
    return OmegaConf.merge(OmegaConf.structured(KernelsConfig), settings)


def _inputs(shape, out_features, bias, transposed, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g)
    if transposed:  # a strided view, as teacher forcing's x[:, 0] or the attention's transposes give
        x = x.transpose(0, 1).contiguous().transpose(0, 1)
    weight = torch.randn(out_features, shape[-1], generator=g) / shape[-1] ** 0.5
    b = torch.randn(out_features, generator=g) if bias else None
    return [t.requires_grad_() if t is not None else None for t in (x, weight, b)]


@needs_onednn
@pytest.mark.parametrize("shape", [(64, 48), (8, 13, 48), (3, 48)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("transposed", [False, True])
def test_onednn_linear_matches_f_linear_forward_and_backward(shape, bias, transposed):
    mine = _inputs(shape, 40, bias, transposed)
    ref = [t.detach().clone().requires_grad_() if t is not None else None for t in mine]
    out, expected = onednn_linear(*mine), F.linear(*ref)
    grad = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1))
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    for got, want in zip(mine, ref, strict=True):
        if got is not None:
            torch.testing.assert_close(got.grad, want.grad, rtol=1e-5, atol=1e-5)


@needs_onednn
def test_onednn_path_taken_for_fp32_cpu_batches_only():
    x, weight, bias = _inputs((MIN_ROWS, 32), 24, True, False)
    assert type(onednn_linear(x, weight, bias).grad_fn).__name__ == "_OneDnnLinearFunctionBackward"
    assert type(onednn_linear(x[: MIN_ROWS - 1], weight, bias).grad_fn).__name__ == "AddmmBackward0"
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast's own bf16 products, already on oneDNN
        out = onednn_linear(x, weight, bias)
    assert out.dtype == torch.bfloat16 and "OneDnn" not in type(out.grad_fn).__name__


@needs_onednn
def test_frozen_weight_and_tied_weight_gradients():
    layer = nn.Linear(32, 24)
    layer.__class__ = OneDnnLinear
    layer.weight.requires_grad_(False)
    x = torch.randn(MIN_ROWS, 32, requires_grad=True)
    layer(x).sum().backward()
    assert layer.weight.grad is None and x.grad is not None and layer.bias.grad is not None

    tied = OneDnnLinear(32, 24, bias=False)
    rows = torch.randn(MIN_ROWS, 32)
    (tied(rows).sum() + onednn_linear(rows, tied.weight).sum()).backward()  # one weight used twice, as tied
    expected = 2 * torch.ones(24, MIN_ROWS) @ rows
    torch.testing.assert_close(tied.weight.grad, expected, rtol=1e-5, atol=1e-5)


@needs_onednn
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_the_loss_trains_through_the_onednn_output_layer(eps):
    """The crash on a Zen 5 (issue 26): the loss wrote into a view of the oneDNN Function's output."""
    torch.manual_seed(0)
    hidden, target = torch.randn(4, 5, 16), torch.randint(1, 11, (4, 5))
    target[0, 3:] = 0
    layers = [nn.Linear(16, 11), nn.Linear(16, 11)]
    layers[1].load_state_dict(layers[0].state_dict())
    layers[1].__class__ = OneDnnLinear
    for layer in layers:
        sequence_loss(layer(hidden), target, pad_id=0, label_smoothing=eps).loss.backward()
    assert layers[1].weight.grad.isfinite().all() and layers[1].weight.grad.abs().sum() > 0
    torch.testing.assert_close(layers[1].weight.grad, layers[0].weight.grad, rtol=1e-5, atol=1e-6)


def _model_classes(model) -> dict[str, type]:
    return {name: type(m) for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Dropout, nn.LSTM))}


@needs_onednn
def test_kernels_are_swapped_in_and_out_from_outside_the_model():
    model = build_tiny("lstm_attn", dropout=0.3)
    keys = list(model.state_dict())
    assert set(_model_classes(model).values()) == {nn.Linear, nn.Dropout, nn.LSTM}, "models are plain PyTorch"
    swap_modules(model, KernelChoice("onednn", "fast", "fp32"))
    assert set(_model_classes(model).values()) == {OneDnnLinear, FastDropout, Fp32LSTM}
    assert list(model.state_dict()) == keys
    assert all(isinstance(m, nn.Dropout) for m in model.modules() if type(m) is FastDropout)
    swap_modules(model, KernelChoice("blas", "torch", "onednn"))
    assert set(_model_classes(model).values()) == {nn.Linear, nn.Dropout, nn.LSTM}


def test_choosing_the_kernels_leaves_the_random_stream_as_seeded():
    model = build_tiny("lstm_attn", dropout=0.3)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    use_cpu_kernels(model, _kernels(), CPU)
    assert torch.equal(torch.rand(3), expected)


def test_an_accelerator_keeps_torchs_modules():
    model = build_tiny("transformer", dropout=0.3)
    assert use_cpu_kernels(model, _kernels(matmul="blas"), torch.device("cuda")) is None
    assert set(_model_classes(model).values()) == {nn.Linear, nn.Dropout}


@pytest.mark.parametrize(
    ("blas", "onednn", "chosen"),
    [(10.0, 5.0, "onednn"), (10.0, 9.5, "blas"), (10.0, 12.0, "blas")],
    ids=["onednn-faster", "within-noise", "blas-faster"],
)
def test_auto_takes_onednn_only_when_measured_clearly_faster(monkeypatch, blas, onednn, chosen):
    monkeypatch.setattr(cpu_kernels, "onednn_linear_op", lambda: object())
    monkeypatch.setattr(cpu_kernels, "time_matmul", lambda shapes: {"blas": blas / 1e3, "onednn": onednn / 1e3})
    choice = choose_kernels(_kernels(), build_tiny("transformer"))
    assert choice.matmul == chosen
    assert f"BLAS {blas:.1f} ms, oneDNN {onednn:.1f} ms" in choice.describe()


def test_a_forced_choice_is_not_measured(monkeypatch):
    monkeypatch.setattr(cpu_kernels, "time_matmul", lambda shapes: pytest.fail("measured a forced choice"))
    choice = choose_kernels(_kernels(matmul="blas"), build_tiny("transformer"))
    assert choice.matmul == "blas" and "set by kernels.matmul" in choice.describe()


def test_onednn_forced_where_torch_has_none_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(cpu_kernels, "onednn_linear_op", lambda: None)
    with pytest.raises(UserError, match=r"kernels.matmul=onednn: this torch build has no oneDNN linear"):
        choose_kernels(_kernels(matmul="onednn"), build_tiny("rnn"))
    assert choose_kernels(_kernels(), build_tiny("rnn")).matmul == "blas"


@needs_onednn
def test_time_matmul_measures_both_libraries_on_the_shapes_given():
    times = time_matmul({(32, 48): 2, (48, 32): 1}, rows=64)
    assert set(times) == {"blas", "onednn"} and all(0 < t < 1 for t in times.values())


@pytest.mark.parametrize(("works", "chosen"), [(True, "onednn"), (False, "fp32")])
def test_bf16_lstm_auto_follows_the_probe(monkeypatch, works, chosen):
    monkeypatch.setattr(cpu_kernels, "onednn_builds_bf16_lstm", lambda: works)
    assert choose_kernels(_kernels(matmul="blas"), build_tiny("lstm_attn")).bf16_lstm == chosen


@pytest.mark.parametrize("packed", [False, True])
def test_fp32_lstm_runs_in_fp32_under_autocast(packed):
    torch.manual_seed(0)
    lstm = nn.LSTM(8, 6, 2, batch_first=True, bidirectional=True)
    x = torch.randn(3, 5, 8)
    inputs = pack_padded_sequence(x, torch.tensor([5, 4, 2]), batch_first=True) if packed else x
    state = LSTMState(torch.randn(4, 3, 6), torch.randn(4, 3, 6))
    expected, (h, c) = lstm(inputs, (state.h, state.c))
    lstm.__class__ = Fp32LSTM
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, final = run_lstm(lstm, inputs, state)
    out, expected = (out.data, expected.data) if packed else (out, expected)
    assert out.dtype == final.h.dtype == torch.float32
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    torch.testing.assert_close((final.h, final.c), (h, c), rtol=0, atol=0)


@needs_bf16_lstm
def test_a_plain_lstm_runs_in_bf16_under_autocast_where_onednn_builds_one():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = nn.LSTM(8, 6, batch_first=True)(torch.randn(3, 5, 8))
    assert out.dtype == torch.bfloat16


# -- dropout ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_fast_dropout_drops_a_fraction_p_and_scales_the_rest(p):
    torch.manual_seed(0)
    x = torch.ones(1000, 1001)  # an odd count: the mask's four words per draw must not leave a gap
    y = fast_dropout(x, p, training=True)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - p) < 0.003  # 1M draws: the standard error is below 0.0005
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / (1 - p)))
    # Neither rows nor columns are correlated: each row and each column drops about p of its elements.
    assert (y == 0).float().mean(1).std() < 0.03 and (y == 0).float().mean(0).std() < 0.03


def test_fast_dropout_gradient_flows_through_kept_elements_only():
    torch.manual_seed(1)
    x = torch.randn(37, 53, requires_grad=True)
    y = fast_dropout(x, 0.2, training=True)
    y.sum().backward()
    assert torch.equal(x.grad, (y != 0).float() / 0.8)


def test_fast_dropout_is_identity_when_evaluating_or_at_zero_and_seeded_when_training():
    x = torch.randn(8, 16)
    layer = FastDropout(0.5).eval()
    assert layer(x) is x and fast_dropout(x, 0.0, training=True) is x
    layer.train()
    torch.manual_seed(3)
    first = layer(x)
    torch.manual_seed(3)
    assert torch.equal(first, layer(x))
    assert not torch.equal(first, layer(x))


def test_fast_dropout_keeps_the_input_dtype():
    assert fast_dropout(torch.ones(4, 4, dtype=torch.bfloat16), 0.5, training=True).dtype == torch.bfloat16


@needs_onednn
def test_a_resumed_run_keeps_the_product_library_its_run_measured(toy_cfg, tmp_path, monkeypatch):
    """On a busy machine a second measurement may come out the other way; a resumed run must equal an
    uninterrupted one, so it multiplies as the run it resumes did. A forced library still wins."""
    from nmt.training.trainer import Trainer

    def measuring(blas, onednn):
        monkeypatch.setattr(cpu_kernels, "time_matmul", lambda shapes: {"blas": blas, "onednn": onednn})

    measuring(blas=2.0, onednn=1.0)
    run = tmp_path / "run"
    Trainer(toy_cfg("trainer.max_steps=2", "trainer.eval_every=2"), run).fit()
    measuring(blas=1.0, onednn=2.0)
    resumed = Trainer(toy_cfg("trainer.max_steps=4", f"trainer.resume={run}"), run)
    assert (
        resumed.kernels.matmul == "onednn" and "as measured when the resumed run started" in resumed.kernels.describe()
    )
    assert {type(m) for m in resumed.model.modules() if isinstance(m, nn.Linear)} == {OneDnnLinear}
    forced = Trainer(toy_cfg("trainer.max_steps=4", f"trainer.resume={run}", "kernels.matmul=blas"), run)
    assert {type(m) for m in forced.model.modules() if isinstance(m, nn.Linear)} == {nn.Linear}
