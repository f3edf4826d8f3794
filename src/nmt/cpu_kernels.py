"""CPU speed paths, swapped into a built model from outside it: oneDNN matrix products, a cheaper dropout mask,
fp32 LSTMs where oneDNN builds no bf16 one. Each is a subclass of the torch module it replaces, chosen by measuring
or probing this machine at start-up, and forced by the `kernels.*` settings.

The models themselves use nn.Linear, nn.Dropout and nn.LSTM. `use_cpu_kernels(model, cfg.kernels, ...)` changes
the class of those modules in place to a subclass below (same parameters, same state_dict keys, same
isinstance answers), so a reader of a model never meets these kernels, and tools that look for nn.Linear or
nn.Dropout (nmt-doctor, export, torch.compile) see what they expect. docs/performance.md says what each buys.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nmt.errors import UserError

# Below this many rows a oneDNN call's fixed cost (~10 us) outweighs any faster product (256-wide layers).
MIN_ROWS = 16
# oneDNN must beat torch's BLAS by more than this share of the time to be chosen: a smaller gap is the noise of
# a shared machine, and there the plain torch path is the one to keep.
MATMUL_MARGIN = 0.10
# Rows of the products timed at start-up: enough to be in the regime of a training batch's products, few enough
# that the measurement costs tens of milliseconds.
MEASURE_ROWS = 128
MEASURE_REPEATS = 3


# -- fp32 matrix products on oneDNN ------------------------------------------------------------------------------


@functools.cache
def onednn_linear_op():
    """torch's oneDNN linear on dense fp32 tensors (the op torch.compile's CPU backend calls), or None where this
    torch build has none (no oneDNN, another CPU architecture)."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        op = torch.ops.mkldnn._linear_pointwise
        op(torch.ones(MIN_ROWS, 4), torch.ones(3, 4), None, "none", [], "")
    except (AttributeError, RuntimeError):
        return None
    return op


def _product(a, b, bias=None):
    """a @ b.T (+ bias) on oneDNN: a (..., k), b (n, k) -> (..., n); either may be a strided view."""
    return onednn_linear_op()(a, b, bias, "none", [], "")


class _OneDnnLinearFunction(torch.autograd.Function):
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


def onednn_linear(x, weight, bias=None):
    """F.linear with its fp32 CPU products on oneDNN, for at least MIN_ROWS rows outside autocast and
    torch.compile (whose CPU backend lowers this op only for frozen weights); F.linear otherwise.

    x: (..., in_features), weight: (out_features, in_features), bias: (out_features,) -> (..., out_features)
    """
    if (
        x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
        and x.numel() >= MIN_ROWS * x.size(-1) > 0
    ):
        return _OneDnnLinearFunction.apply(x, weight, bias)
    return F.linear(x, weight, bias)


class OneDnnLinear(nn.Linear):
    """nn.Linear whose fp32 CPU products run on oneDNN (onednn_linear)."""

    def forward(self, x):
        return onednn_linear(x, self.weight, self.bias)


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_matmul(shapes: dict[tuple[int, int], int], rows: int = MEASURE_ROWS) -> dict[str, float]:
    """Seconds that one pass over a model's fp32 Linear products takes on each library: for every
    (in_features, out_features) shape, the forward product and the two of backward at `rows` rows, times the
    number of layers of that shape. {'blas': s, 'onednn': s}, the median of MEASURE_REPEATS passes; the libraries
    take turns on each shape, so that both see the same noise."""
    products = {
        "blas": lambda x, weight, grad: (F.linear(x, weight), grad @ weight, grad.t() @ x),
        "onednn": lambda x, weight, grad: (_product(x, weight), _product(grad, weight.t()), _product(grad.t(), x.t())),
    }
    operands = [
        ((torch.randn(rows, n_in), torch.randn(n_out, n_in), torch.randn(rows, n_out)), count)
        for (n_in, n_out), count in shapes.items()
    ]
    passes: dict[str, list[float]] = {library: [] for library in products}
    for repeat in range(MEASURE_REPEATS + 1):  # the first pass creates oneDNN's kernels and warms the caches
        totals = dict.fromkeys(products, 0.0)
        for tensors, count in operands:
            for library, product in products.items():
                totals[library] += count * _seconds(lambda: product(*tensors))  # noqa: B023 (called at once)
        for library, total in totals.items():
            if repeat:
                passes[library].append(total)
    return {library: statistics.median(seconds) for library, seconds in passes.items()}


@functools.cache
def time_bf16_product() -> dict[str, float]:
    """Median seconds of a (512, 512) x (512, 512) CPU product in fp32 and under bf16 autocast: {'32': s, 'bf16': s}.
    Slower bf16 means oneDNN emulates it (a CPU without bf16 instructions)."""
    with torch.random.fork_rng(devices=[]):  # a measurement must not move the run's random stream
        a, b = torch.randn(512, 512), torch.randn(512, 512)
    times = {}
    for precision in ("32", "bf16"):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            runs = [_seconds(lambda: a @ b) for _ in range(7)]
        times[precision] = statistics.median(runs[2:])  # the first products create oneDNN's kernel
    return times


def linear_shapes(model: nn.Module) -> dict[tuple[int, int], int]:
    """(in_features, out_features) -> how many of the model's nn.Linear layers have that shape."""
    shapes: dict[tuple[int, int], int] = {}
    for module in model.modules():
        if isinstance(module, nn.Linear):
            key = (module.in_features, module.out_features)
            shapes[key] = shapes.get(key, 0) + 1
    return shapes


# -- dropout ------------------------------------------------------------------------------------------------------


def _keep_mask(shape, p: float, dtype: torch.dtype) -> torch.Tensor:
    """(shape) of dtype: 1 with probability 1 - p (to 2e-5), else 0."""
    n = math.prod(shape)
    # random_ from int64's minimum with no upper bound draws all 64 bits: four uniform int16 words per draw.
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), None).view(torch.int16)
    return (words >= round(p * 65536) - 32768)[:n].view(shape).to(dtype)


def fast_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """F.dropout with a cheaper mask on a CPU: zero each element with probability p, scale the rest by 1 / (1 - p).

    On a CPU, torch's dropout fills a float mask with bernoulli_ and scales it in separate passes: a Transformer's
    dropouts took 13% of a training step. Comparing random 16-bit integers with a threshold draws the same
    distribution of masks at about 3x the speed. The mask is kept in x's dtype because multiplying by a bool
    tensor takes a type-promoting path ~10x slower than a same-dtype product; the scale is applied as a scalar
    so that a bf16 x is scaled at full precision. Other devices keep torch's fused kernel.
    """
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training)
    return (x * _keep_mask(x.shape, p, x.dtype)).mul_(1.0 / (1.0 - p))


class FastDropout(nn.Dropout):
    """nn.Dropout with fast_dropout's CPU mask."""

    def forward(self, x):
        return fast_dropout(x, self.p, self.training)


# -- LSTMs under CPU bf16 autocast --------------------------------------------------------------------------------


@functools.cache
def onednn_builds_bf16_lstm() -> bool:
    """Whether oneDNN runs an LSTM under CPU bf16 autocast on this machine, found by trying one: on an AVX2-only
    AMD EPYC every such call failed ("could not create a primitive descriptor for the LSTM forward propagation
    primitive")."""
    lstm = nn.LSTM(8, 8, batch_first=True)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = lstm(torch.randn(2, 3, 8))
        out.float().sum().backward()
    except RuntimeError:
        return False
    return True


class Fp32LSTM(nn.LSTM):
    """nn.LSTM that runs in fp32 under CPU autocast, for machines where oneDNN builds no bf16 LSTM; the rest of
    the step stays in bf16. x: a (batch, len, input) tensor or a PackedSequence; hx: (h, c) or None."""

    def forward(self, x, hx=None):
        if x.data.device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
            return super().forward(x, hx)
        with torch.autocast("cpu", enabled=False):
            return super().forward(x.float(), None if hx is None else tuple(s.float() for s in hx))


# -- choosing and swapping ----------------------------------------------------------------------------------------


@dataclass
class KernelChoice:
    """What use_cpu_kernels put in the model, and why, for the log."""

    matmul: str  # onednn | blas
    dropout: str  # fast | torch
    bf16_lstm: str  # onednn | fp32
    timings: dict[str, float] | None = None  # the measurement behind an auto matmul choice, seconds per pass
    resumed: bool = False  # an auto matmul choice kept from the run this one resumes

    def describe(self) -> str:
        library = "oneDNN" if self.matmul == "onednn" else "torch's BLAS"
        if self.resumed:
            why = "as measured when the resumed run started"
        elif self.timings is None:
            why = "set by kernels.matmul"
        else:
            blas_ms, onednn_ms = self.timings["blas"] * 1e3, self.timings["onednn"] * 1e3
            why = f"measured on this model's shapes: BLAS {blas_ms:.1f} ms, oneDNN {onednn_ms:.1f} ms a pass"
        return (
            f"fp32 linear products on {library} ({why}) | dropout: {self.dropout}"
            f" | LSTMs under bf16 autocast: {self.bf16_lstm}"
        )


def choose_kernels(cfg, model: nn.Module) -> KernelChoice:
    """Resolve cfg (a KernelsConfig) for `model` on the CPU: kernels.matmul=auto times both libraries on the
    model's Linear shapes and takes oneDNN only when it is more than MATMUL_MARGIN faster; bf16_lstm=auto tries
    a bf16 LSTM. A forced choice this torch build cannot take is an error naming the setting."""
    timings = None
    matmul = str(cfg.matmul)
    if matmul == "onednn" and onednn_linear_op() is None:
        raise UserError(
            "kernels.matmul=onednn: this torch build has no oneDNN linear for fp32 CPU tensors — use"
            " kernels.matmul=blas (or auto)"
        )
    if matmul == "auto":
        matmul = "blas"
        shapes = linear_shapes(model)
        if onednn_linear_op() is not None and shapes:
            timings = time_matmul(shapes)
            if timings["onednn"] < (1.0 - MATMUL_MARGIN) * timings["blas"]:
                matmul = "onednn"
    bf16_lstm = str(cfg.bf16_lstm)
    if bf16_lstm == "auto":
        bf16_lstm = "onednn" if onednn_builds_bf16_lstm() else "fp32"
    return KernelChoice(matmul, str(cfg.dropout), bf16_lstm, timings)


def swap_modules(model: nn.Module, choice: KernelChoice) -> None:
    """Give the model's nn.Linear, nn.Dropout and nn.LSTM modules the classes `choice` names, in place."""
    pairs = [  # (torch's class, its kernel subclass, whether the subclass is wanted)
        (nn.Linear, OneDnnLinear, choice.matmul == "onednn"),
        (nn.Dropout, FastDropout, choice.dropout == "fast"),
        (nn.LSTM, Fp32LSTM, choice.bf16_lstm == "fp32"),
    ]
    for module in model.modules():
        for plain, kernel, wanted in pairs:
            if type(module) in (plain, kernel):
                # The subclasses add no state: the same object, parameters, hooks and state_dict keys, another forward.
                module.__class__ = kernel if wanted else plain


def keep_measured_choice(model: nn.Module, choice: KernelChoice, recorded: dict | None) -> KernelChoice:
    """On resuming, the product library that the run's checkpoint recorded (recorded: {'matmul': ...}) instead
    of this start-up's measurement, which on a busy machine may come out the other way: a resumed run must equal
    an uninterrupted one. A library forced by kernels.matmul stays."""
    if choice.timings is None or not recorded or recorded.get("matmul") not in ("onednn", "blas"):
        return choice
    kept = dataclasses.replace(choice, matmul=recorded["matmul"], timings=None, resumed=True)
    swap_modules(model, kept)
    return kept


def use_cpu_kernels(model: nn.Module, cfg, device: torch.device) -> KernelChoice | None:
    """Swap the CPU kernels that cfg (a KernelsConfig) chooses into `model` on a CPU and return the choice; None
    elsewhere (an accelerator keeps torch's own modules)."""
    if device.type != "cpu":
        return None
    with torch.random.fork_rng(devices=[]):  # measuring draws random tensors: the run's random stream stays as seeded
        choice = choose_kernels(cfg, model)
    swap_modules(model, choice)
    return choice
