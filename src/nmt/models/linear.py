"""Linear layers whose fp32 matrix products run on oneDNN on the CPU, where torch's MKL takes a slow path on AMD.

torch multiplies fp32 matrices on the CPU with MKL, which on AMD processors does not use their AVX-512 units: on
this project's 2-core AMD EPYC it ran a (320, 256) x (256, 1024) product at ~95 GFLOP/s where oneDNN, also inside
torch (it already runs bf16 products and LSTMs), ran the same product, to fp32 accuracy, at ~210
(docs/performance.md, "fp32 matrix products on oneDNN"). Linear sends the forward product and both backward ones
there; NMT_CPU_MATMUL=blas in the environment keeps torch's own path (for comparisons).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn


def _onednn_linear_op():
    """torch's oneDNN linear on dense tensors (the one torch.compile's CPU backend calls), or None."""
    if os.environ.get("NMT_CPU_MATMUL", "onednn") != "onednn" or not torch.backends.mkldnn.is_available():
        return None
    try:
        return torch.ops.mkldnn._linear_pointwise
    except (AttributeError, RuntimeError):
        return None


_OP = _onednn_linear_op()
# Below this many rows a oneDNN call's fixed cost (~10 us) outweighs its faster product (256-wide layers).
MIN_ROWS = 16


def cpu_matmul() -> str:
    """Which library multiplies fp32 CPU matrices in Linear, for the training log."""
    return "oneDNN" if _OP is not None else "torch's BLAS"


def _product(a, b, bias=None):
    """a @ b.T (+ bias) on oneDNN: a (..., k), b (n, k) -> (..., n); either may be a strided view."""
    return _OP(a, b, bias, "none", [], "")


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
    """F.linear, on oneDNN for fp32 CPU tensors of at least MIN_ROWS rows, outside autocast and torch.compile.

    x: (..., in_features), weight: (out_features, in_features), bias: (out_features,) -> (..., out_features)
    """
    if (
        _OP is not None
        and x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()  # inductor lowers this op only for frozen (inference) weights
        and x.numel() >= MIN_ROWS * x.size(-1) > 0
    ):
        return _OneDnnLinear.apply(x, weight, bias)
    return F.linear(x, weight, bias)


class Linear(nn.Linear):
    """nn.Linear (same parameters, same checkpoints) computed by `linear`."""

    def forward(self, x):
        return linear(x, self.weight, self.bias)
