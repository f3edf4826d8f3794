"""Training speed of nmt: target tokens/s at several teacher-forcing ratios (medians over windows of steps).

    python scripts/benchmark.py                          # lstm_attn at ratios 1.0 and 0.5 on the quickstart data
    python scripts/benchmark.py --model rnn --ratios 1.0 0.5 0.0 --windows 7 --window 10

Every figure times the trainer's own step (collate, forward, loss, backward, clipping, optimizer) on the same
batches; the first window is a warm-up and is dropped. Reports the median of the windows, their spread, and the
cost of each ratio relative to the first one.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from hydra import compose, initialize_config_module

from nmt.config import register_configs
from nmt.training.monitor import Meter
from nmt.training.trainer import Trainer


def tokens_per_second(overrides: list[str], windows: int, window: int) -> list[float]:
    """Target tokens/s of each window of `window` training steps after one warm-up window."""
    with initialize_config_module("nmt.configs", version_base="1.3"):
        cfg = compose("train", overrides)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(cfg, run_dir)
        batches = trainer.sampler.batches(0)
        rates = []
        for w in range(windows + 1):
            meter = Meter(trainer.device)
            start = time.perf_counter()
            for indices in batches[w * window : (w + 1) * window]:
                trainer._train_step(indices, meter)
            elapsed = time.perf_counter() - start
            if w > 0:  # the first window warms up allocators and kernels
                rates.append(int(meter.tokens) / elapsed)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lstm_attn")
    parser.add_argument("--ratios", type=float, nargs="+", default=[1.0, 0.5])
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--window", type=int, default=10, help="training steps per window")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. trainer.max_tokens=4096")
    args = parser.parse_args()
    register_configs()
    base = ["experiment=quickstart", f"model={args.model}", "trainer.progress_bar=false", *args.overrides]
    print(f"model {args.model}, {args.windows} windows of {args.window} steps, overrides: {' '.join(base)}")
    print("| teacher forcing | tgt tok/s (median) | min-max | cost vs first |")
    print("| ---: | ---: | ---: | ---: |")
    first = None
    for ratio in args.ratios:
        rates = tokens_per_second([*base, f"teacher_forcing.ratio={ratio}"], args.windows, args.window)
        median = statistics.median(rates)
        first = first or median
        print(f"| {ratio:.2f} | {median:.0f} | {min(rates):.0f}-{max(rates):.0f} | {first / median:.2f}x |")


if __name__ == "__main__":
    main()
