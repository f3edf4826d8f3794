"""nmt.models.linear: the oneDNN path computes what F.linear computes, forward and backward, and is taken where
NMT_CPU_MATMUL and the CPU choose it."""

import pytest
import torch
import torch.nn.functional as F

from nmt.errors import UserError
from nmt.models import linear as linear_module
from nmt.models.linear import MIN_ROWS, Linear, linear, onednn_linear_op


def _choose(monkeypatch, choice, vendor=None, flags="fpu avx2 avx512f avx512bw", family="26"):
    """Set NMT_CPU_MATMUL (and the CPU vendor, flags and family Linear reads) for one test; the choice is made
    afresh."""
    monkeypatch.setenv("NMT_CPU_MATMUL", choice)
    if vendor is not None:
        fields = {"vendor_id": vendor, "flags": flags, "cpu family": family}
        monkeypatch.setattr(linear_module, "cpuinfo_field", lambda name: fields.get(name, ""))
    onednn_linear_op.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_choice():
    """Every test starts and leaves with the choice unmade, so none sees another's environment."""
    onednn_linear_op.cache_clear()
    yield
    onednn_linear_op.cache_clear()


@pytest.fixture
def on_onednn(monkeypatch):
    _choose(monkeypatch, "onednn")
    if onednn_linear_op() is None:
        pytest.skip("this torch build has no oneDNN linear")


def _inputs(shape, out_features, bias, transposed, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g)
    if transposed:  # a strided view, as teacher forcing's x[:, 0] or the attention's transposes give
        x = x.transpose(0, 1).contiguous().transpose(0, 1)
    weight = torch.randn(out_features, shape[-1], generator=g) / shape[-1] ** 0.5
    b = torch.randn(out_features, generator=g) if bias else None
    return [t.requires_grad_() if t is not None else None for t in (x, weight, b)]


@pytest.mark.parametrize("shape", [(64, 48), (8, 13, 48), (3, 48)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("transposed", [False, True])
def test_matches_f_linear_forward_and_backward(on_onednn, shape, bias, transposed):
    mine = _inputs(shape, 40, bias, transposed)
    ref = [t.detach().clone().requires_grad_() if t is not None else None for t in mine]
    out, expected = linear(*mine), F.linear(*ref)
    grad = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1))
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    for got, want in zip(mine, ref, strict=True):
        if got is not None:
            torch.testing.assert_close(got.grad, want.grad, rtol=1e-5, atol=1e-5)


def test_onednn_path_taken_for_fp32_cpu_batches_only(on_onednn):
    x, weight, bias = _inputs((MIN_ROWS, 32), 24, True, False)
    assert type(linear(x, weight, bias).grad_fn).__name__ == "_OneDnnLinearBackward"
    assert type(linear(x[: MIN_ROWS - 1], weight, bias).grad_fn).__name__ != "_OneDnnLinearBackward"
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast's own bf16 products, already on oneDNN
        out = linear(x, weight, bias)
    assert out.dtype == torch.bfloat16 and type(out.grad_fn).__name__ != "_OneDnnLinearBackward"


def test_frozen_weight_and_tied_weight_gradients(on_onednn):
    layer = Linear(32, 24)
    layer.weight.requires_grad_(False)
    x = torch.randn(MIN_ROWS, 32, requires_grad=True)
    layer(x).sum().backward()
    assert layer.weight.grad is None and x.grad is not None and layer.bias.grad is not None

    tied = Linear(32, 24, bias=False)
    rows = torch.randn(MIN_ROWS, 32)
    (tied(rows).sum() + linear(rows, tied.weight).sum()).backward()  # one weight used twice, as tied embeddings are
    expected = 2 * torch.ones(24, MIN_ROWS) @ rows
    torch.testing.assert_close(tied.weight.grad, expected, rtol=1e-5, atol=1e-5)


def _takes_onednn() -> bool:
    x, weight, bias = _inputs((MIN_ROWS, 32), 24, True, False)
    return type(linear(x, weight, bias).grad_fn).__name__ == "_OneDnnLinearBackward"


def test_blas_keeps_torchs_own_path(monkeypatch):
    _choose(monkeypatch, "blas", vendor="AuthenticAMD")
    assert onednn_linear_op() is None and linear_module.cpu_matmul() == "torch's BLAS"
    assert not _takes_onednn()


def test_auto_takes_onednn_on_amd_with_full_width_avx512_and_mkl_only(monkeypatch):
    if not torch.backends.mkldnn.is_available() or not torch.backends.mkl.is_available():
        pytest.skip("this torch build has no oneDNN or no MKL")
    _choose(monkeypatch, "auto", vendor="AuthenticAMD")
    assert _takes_onednn() and linear_module.cpu_matmul() == "oneDNN"
    _choose(monkeypatch, "auto", vendor="GenuineIntel")
    assert not _takes_onednn()
    _choose(monkeypatch, "auto", vendor="AuthenticAMD", flags="fpu avx avx2 fma", family="25")  # Zen 3: MKL is faster
    assert not _takes_onednn() and linear_module.cpu_matmul() == "torch's BLAS"
    _choose(monkeypatch, "auto", vendor="AuthenticAMD", family="25")  # Zen 4: AVX-512 in two halves, MKL as fast
    assert not _takes_onednn()
    _choose(monkeypatch, "auto", vendor="AuthenticAMD", family="")  # no family field: no claim, MKL
    assert not _takes_onednn()
    monkeypatch.setattr(torch.backends.mkl, "is_available", lambda: False)
    _choose(monkeypatch, "auto", vendor="AuthenticAMD")
    assert not _takes_onednn()


def test_unknown_choice_is_a_user_error(monkeypatch):
    _choose(monkeypatch, "mkl")
    with pytest.raises(UserError, match="NMT_CPU_MATMUL=mkl: not a choice — set it to one of auto, onednn, blas"):
        linear_module.cpu_matmul()


def test_cpuinfo_field_reads_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R45\ncpu family\t: 25\n")
    assert linear_module.cpuinfo_field("vendor_id", str(info)) == "AuthenticAMD"
    assert linear_module.cpuinfo_field("model name", str(info)) == "AMD EPYC 9R45"
    assert linear_module.cpuinfo_field("flags", str(info)) == ""
    assert linear_module.cpuinfo_field("vendor_id", str(tmp_path / "missing")) == ""
