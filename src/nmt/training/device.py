"""Where training and inference run, and in what precision training runs: autocast and gradient scaling."""

from __future__ import annotations

import contextlib
import functools

import torch

from nmt.cpu_kernels import time_bf16_product
from nmt.errors import UserError


def mixed_precision(precision: str, device: torch.device):
    """(a function returning the autocast context for training steps, the gradient scaler; disabled unless fp16)."""
    dtypes = {"32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
    if precision not in dtypes:
        raise UserError(f"trainer.precision={precision}: choose 32, bf16-mixed or 16-mixed")
    dtype = dtypes[precision]
    if dtype is torch.float16 and device.type != "cuda":
        raise UserError(
            f"trainer.precision=16-mixed needs a CUDA device, this run is on {device.type} (whose fp16 kernels do not"
            " cover every layer) — use trainer.precision=bf16-mixed"
        )
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    if dtype is None:
        return contextlib.nullcontext, scaler
    return functools.partial(torch.autocast, device.type, dtype=dtype), scaler


def emulated_bf16(device: torch.device) -> bool:
    """True on a CPU where bf16 products run slower than fp32 ones (measured: time_bf16_product): a CPU without bf16
    instructions, where oneDNN emulates them with fp32 products plus conversions and bf16 autocast trains ~3x slower
    than fp32 (docs/performance.md, "bf16 without bf16 instructions")."""
    if device.type != "cpu":
        return False
    times = time_bf16_product()
    return times["bf16"] > times["32"]


def precision_warning(precision: str, device: torch.device) -> str | None:
    """What is wrong with training at `precision` on `device`, with the fix, or None: bf16-mixed on a CPU whose
    bf16 products are slower than fp32 ones (emulated_bf16). The trainer logs it; nmt-doctor reports it."""
    if precision == "bf16-mixed" and emulated_bf16(device):
        times = time_bf16_product()
        return (
            f"trainer.precision=bf16-mixed on a CPU whose bf16 products are emulated ({times['bf16'] * 1e3:.2f} ms"
            f" against fp32's {times['32'] * 1e3:.2f} ms for a 512 x 512 product, measured now): training runs ~3x"
            " slower than in fp32 — use trainer.precision=32"
        )
    return None


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda: this torch sees no CUDA device — use device auto or cpu")
    return torch.device(str(spec))
