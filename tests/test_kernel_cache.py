"""`import nmt` bounds oneDNN's kernel cache (CPU memory grew by GBs under bf16 without it); a user's setting wins."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# 81 bf16 products: shape A, 79 other shapes, shape A again. Each is one oneDNN kernel, so A's second use finds its
# kernel still cached only when the cache holds more than 80.
PRODUCTS = """
import nmt, torch
weight = torch.randn(64, 64, dtype=torch.bfloat16)
for extra_rows in [0, *range(1, 80), 0]:
    torch.randn(64 + extra_rows, 64, dtype=torch.bfloat16) @ weight
"""


def _kernel_lookups(capacity: str | None) -> list[str]:
    """oneDNN's verdict on each kernel lookup ('cache_miss' / 'cache_hit'), in order."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ONEDNN_", "DNNL_"))}
    env["ONEDNN_VERBOSE"] = "2"  # one line per kernel created or found
    if capacity is not None:
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = capacity
    run = subprocess.run([sys.executable, "-c", PRODUCTS], env=env, capture_output=True, text=True, check=True)
    lines = run.stdout.splitlines() + run.stderr.splitlines()
    return [field.split(":")[1] for line in lines for field in line.split(",") if field.startswith("create:cache_")]


def test_import_nmt_bounds_the_kernel_cache_and_an_explicit_capacity_wins():
    bounded = _kernel_lookups(None)
    if len(bounded) != 81:
        pytest.skip(f"bf16 products do not run through oneDNN on this CPU ({len(bounded)} kernel lookups)")
    assert bounded[-1] == "cache_miss"  # 64 kernels kept: A's was evicted by the 79 after it
    assert _kernel_lookups("1024")[-1] == "cache_hit"
