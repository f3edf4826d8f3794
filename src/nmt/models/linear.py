"""Linear layers whose fp32 matrix products run on oneDNN on AMD CPUs with full-width AVX-512, where MKL takes a
slow path.

torch multiplies fp32 matrices on the CPU with MKL, which on AMD processors does not use their AVX-512 units. On a
2-core AMD EPYC whose cores run 512-bit FMAs at full width (Zen 5, CPU family 26) it ran a (320, 256) x (256,
1024) product at ~95 GFLOP/s where oneDNN, also inside torch (it already runs bf16 products and LSTMs), ran the
same product, to fp32 accuracy, at ~210. A Zen 4 core (family 25) splits each 512-bit operation into two 256-bit
halves, so MKL's AVX2 path reaches its peak too: there both ran ~100 GFLOP/s and MKL trained 5-15% faster with
~250 MiB less at peak; on an Intel Xeon MKL is the faster of the two (training steps 1.2x faster than on oneDNN),
and so it is on an AMD EPYC with AVX2 only (Zen 3: training steps 1.1-1.2x faster). So Linear sends the forward
product and both backward ones to oneDNN where torch's BLAS is MKL and the CPU is an AMD one of family 26 or later
with AVX-512 (docs/performance.md, "fp32 matrix products on oneDNN" and "A Zen 4 AMD EPYC").
NMT_CPU_MATMUL=onednn or =blas in the environment picks one regardless (for comparisons).
"""

from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F
from torch import nn

from nmt.errors import UserError

CHOICES = ("auto", "onednn", "blas")
# AMD's first CPU family whose cores execute 512-bit FMAs at full width (Zen 5); Zen 4 (25) splits them in two.
FULL_WIDTH_AVX512_FAMILY = 26
# Below this many rows a oneDNN call's fixed cost (~10 us) outweighs its faster product (256-wide layers).
MIN_ROWS = 16


def cpuinfo_field(name: str, cpuinfo: str = "/proc/cpuinfo") -> str:
    """The first CPU's `name` field in Linux's cpuinfo ('vendor_id': 'AuthenticAMD', 'GenuineIntel'; 'model name'),
    or '' where `cpuinfo` has none."""
    try:
        with open(cpuinfo) as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return ""


@functools.cache
def onednn_linear_op():
    """torch's oneDNN linear on dense tensors (the one torch.compile's CPU backend calls) when Linear should use
    it: NMT_CPU_MATMUL=onednn, or =auto (the default) on an AMD CPU with full-width AVX-512 and MKL as torch's
    BLAS; else None."""
    choice = os.environ.get("NMT_CPU_MATMUL", "auto")
    if choice not in CHOICES:
        raise UserError(f"NMT_CPU_MATMUL={choice}: not a choice — set it to one of {', '.join(CHOICES)}, or unset it")
    wanted = choice == "onednn" or (
        choice == "auto"
        and torch.backends.mkl.is_available()
        and cpuinfo_field("vendor_id") == "AuthenticAMD"
        and "avx512f" in cpuinfo_field("flags").split()
        and int(cpuinfo_field("cpu family") or 0) >= FULL_WIDTH_AVX512_FAMILY
    )
    if not wanted or not torch.backends.mkldnn.is_available():
        return None
    try:
        return torch.ops.mkldnn._linear_pointwise
    except (AttributeError, RuntimeError):
        return None


def cpu_matmul() -> str:
    """Which library multiplies fp32 CPU matrices in Linear, for the training log."""
    return "oneDNN" if onednn_linear_op() is not None else "torch's BLAS"


def _product(a, b, bias=None):
    """a @ b.T (+ bias) on oneDNN: a (..., k), b (n, k) -> (..., n); either may be a strided view."""
    return onednn_linear_op()(a, b, bias, "none", [], "")


class _OneDnnLinear(torch.autograd.Function):
    """y = x W^T + b, with the three products of forward and backward on oneDNN."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return _product(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = grad_weight = grad_bias = None
        rows = grad.reshape(-1, grad.size(-1))
        if ctx.needs_input_grad[0]:
            grad_x = _product(grad, weight.t())
        if ctx.needs_input_grad[1]:
            grad_weight = _product(rows.t(), x.reshape(-1, x.size(-1)).t())
        if ctx.needs_input_grad[2]:  # False when there is no bias
            grad_bias = rows.sum(0)
        return grad_x, grad_weight, grad_bias


def linear(x, weight, bias=None):
    """F.linear, on oneDNN (where onednn_linear_op chooses it) for fp32 CPU tensors of at least MIN_ROWS rows,
    outside autocast and torch.compile.

    x: (..., in_features), weight: (out_features, in_features), bias: (out_features,) -> (..., out_features)
    """
    if (
        x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()  # inductor lowers this op only for frozen (inference) weights
        and x.numel() >= MIN_ROWS * x.size(-1) > 0
        and onednn_linear_op() is not None
    ):
        return _OneDnnLinear.apply(x, weight, bias)
    return F.linear(x, weight, bias)


class Linear(nn.Linear):
    """nn.Linear (same parameters, same checkpoints) computed by `linear`."""

    def forward(self, x):
        return linear(x, self.weight, self.bias)
