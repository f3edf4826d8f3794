"""Where training and inference run, and in what precision training runs: autocast and gradient scaling."""

from __future__ import annotations

import contextlib
import functools

import torch

from nmt.errors import UserError
from nmt.models.linear import cpuinfo_field

# /proc/cpuinfo flags of CPUs that multiply bf16 matrices in hardware (x86 AVX-512 BF16 or AMX; ARM's 'bf16').
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


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


def emulated_bf16(device: torch.device, cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True on a CPU whose cpuinfo lists no bf16 instructions: oneDNN then emulates bf16 products with fp32 ones
    plus conversions, and bf16 autocast trains ~3x slower than fp32 (docs/performance.md, "bf16 without bf16
    instructions"). False where cpuinfo is unreadable (not Linux): no claim without evidence."""
    if device.type != "cpu":
        return False
    flags = cpuinfo_field("flags", cpuinfo) or cpuinfo_field("Features", cpuinfo)
    return bool(flags) and not NATIVE_BF16_FLAGS & set(flags.split())


def precision_warning(precision: str, device: torch.device) -> str | None:
    """What is wrong with training at `precision` on `device`, with the fix, or None: bf16-mixed on a CPU without
    bf16 instructions (emulated_bf16). The trainer logs it; nmt-doctor reports it."""
    if precision == "bf16-mixed" and emulated_bf16(device):
        return (
            "trainer.precision=bf16-mixed on a CPU without bf16 instructions (none of avx512_bf16, amx_bf16, bf16 in"
            " /proc/cpuinfo): its bf16 products are emulated and train ~3x slower than fp32 — use"
            " trainer.precision=32"
        )
    return None


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda: this torch sees no CUDA device — use device auto or cpu")
    return torch.device(str(spec))
