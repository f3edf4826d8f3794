"""Training speed of nmt: target tokens/s at several teacher-forcing ratios (medians over windows of steps); with
--preprocess, binarized corpora instead: preprocessing throughput, start-up time and memory.

    python scripts/benchmark.py                          # lstm_attn at ratios 1.0 and 0.5 on the quickstart data
    python scripts/benchmark.py --model rnn --ratios 1.0 0.5 0.0 --windows 7 --window 10
    python scripts/benchmark.py --preprocess [--pairs 1000000] [--workers 4]
    python scripts/benchmark.py peers [--steps 3000] [--precision bf16-mixed]   # scripts/bench_peers.py

Every figure times the trainer's own step (collate, forward, loss, backward, clipping, optimizer) on the same
batches; the first window is a warm-up and is dropped. Reports the median of the windows, their spread, and the
cost of each ratio relative to the first one.

--preprocess generates a parallel corpus of random words (--pairs training pairs, 1000 dev and test pairs) and runs
each measurement in a fresh process (Linux: memory from /proc): prepare_data building the binarized corpus (what
nmt-preprocess and a first nmt-train do) cold, then with the tokenizer cached on 1 and on --workers processes;
prepare_data plus the training batch sampler with the corpus binarized (a later nmt-train's start-up); and the
private memory added while collating one epoch of batches over the first quarter and over all of the corpus, and
over in-memory copies of its ids.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
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
        steps = [batches[i : i + trainer.per_step] for i in range(0, len(batches), trainer.per_step)]
        rates = []
        for w in range(windows + 1):
            meter = Meter(trainer.device, trainer.gradient_groups)
            start = time.perf_counter()
            for group in steps[w * window : (w + 1) * window]:
                trainer.train_step(group, meter)
            elapsed = time.perf_counter() - start
            if w > 0:  # the first window warms up allocators and kernels
                rates.append(int(meter.tokens) / elapsed)
    return rates


# --- --preprocess ------------------------------------------------------------------------------------------------

# One measurement in a fresh interpreter; argv: mode (build | iterate | copy), data config (JSON), workers, pairs.
# build: prepare_data and the trainer's batch sampler, timed, with every log line's time and the peak RSS added.
# iterate / copy: one epoch of collated batches over the first `pairs` pairs of the binarized corpus (copy: of
# in-memory copies of their ids); the peak private memory (RssAnon) added.
MEASURE = r"""
import json, sys, time
import numpy as np
from omegaconf import OmegaConf
from nmt.config import DataConfig
from nmt.data import TokenBatchSampler, TokenizedCorpus, collate, prepare_data

def status_mb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024

mode, cfg, workers, pairs = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
cfg = OmegaConf.merge(OmegaConf.structured(DataConfig), cfg)
peak, anon = status_mb("VmHWM"), status_mb("RssAnon")
marks, start = [], time.perf_counter()
data = prepare_data(cfg, log=lambda line: marks.append((time.perf_counter() - start, line)), workers=workers)
train = data.splits["train"]
if mode == "build":
    TokenBatchSampler.for_pairs(train.src_lengths(), train.tgt_lengths(), 4096, seed=0)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "marks": marks, "peak_mb": status_mb("VmHWM") - peak}))
    sys.exit()
src_offsets, tgt_offsets = train.src_offsets[: pairs + 1], train.tgt_offsets[: pairs + 1]
src, tgt = train.src[: src_offsets[-1]], train.tgt[: tgt_offsets[-1]]
if mode == "copy":
    src, src_offsets, tgt, tgt_offsets = (np.array(a) for a in (src, src_offsets, tgt, tgt_offsets))
train = TokenizedCorpus(src, src_offsets, tgt, tgt_offsets)
sampler = TokenBatchSampler.for_pairs(train.src_lengths(), train.tgt_lengths(), 4096, seed=0)
top = status_mb("RssAnon")
for indices in sampler.batches(0):
    collate(train, indices, data.tokenizer.specials)
    top = max(top, status_mb("RssAnon"))
print(json.dumps({"anon_mb": top - anon, "ids_mb": (src.nbytes + tgt.nbytes) / 1e6}))
"""


def write_corpus(path: Path, pairs: int, rng: np.random.Generator, words: np.ndarray) -> None:
    """`pairs` lines 'source<TAB>target' of 5 to 30 random words each, written a block at a time."""
    with open(path, "w", encoding="utf-8") as f:
        for start in range(0, pairs, 10_000):
            n = min(10_000, pairs - start)
            sides = [[" ".join(words[rng.integers(0, len(words), k)]) for k in rng.integers(5, 31, n)] for _ in "st"]
            f.write("".join(f"{s}\t{t}\n" for s, t in zip(*sides, strict=True)))


def measure(mode: str, cfg: dict, workers: int = 1, pairs: int = 0) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-c", MEASURE, mode, json.dumps(cfg), str(workers), str(pairs)]
    result = subprocess.run(args, capture_output=True, text=True, env=env)
    if result.returncode:
        raise SystemExit(f"benchmark: {mode} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.splitlines()[-1])


def _phases(run: dict) -> tuple[float, float]:
    """(reading and the tokenizer, encoding and writing) seconds of a build, from the times of its log lines."""
    tokenizer = next(t for t, line in run["marks"] if line.startswith("tokenizer:"))
    wrote = next(t for t, line in run["marks"] if line.startswith("binarized corpus: wrote"))
    return tokenizer, wrote - tokenizer


def preprocess_benchmark(pairs: int, workers: int) -> None:
    rng = np.random.default_rng(0)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = np.array(["".join(rng.choice(letters, k)) for k in rng.integers(2, 10, 5000)])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        for name, n in (("train", pairs), ("dev", 1000), ("test", 1000)):
            write_corpus(tmp / f"{name}.tsv", n, rng, words)
        cfg = {
            "name": "generated",
            **{name: str(tmp / f"{name}.tsv") for name in ("train", "dev", "test")},
            "max_len": 64,
            "cache_dir": str(tmp / "cache"),
            "tokenizer": {"type": "unigram", "vocab_size": 8000},
        }
        sentences = 2 * (pairs + 2000)  # source and target sentences of all splits
        print(
            f"{pairs} generated training pairs (+1000 dev, +1000 test; 5-30 random words a side) in"
            f" {time.perf_counter() - started:.0f} s; vocab 8000 unigram, {os.cpu_count()} CPUs"
        )
        print("| prepare_data run | total s | read + tokenizer s | encode + write s | sentences/s | peak RSS +MB |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")

        def build_row(label: str, run: dict) -> None:
            reading, encoding = _phases(run)
            rate = f"{sentences / encoding:.0f} (total {sentences / run['seconds']:.0f})"
            times = f"{run['seconds']:.1f} | {reading:.1f} | {encoding:.1f}"
            print(f"| {label} | {times} | {rate} | {run['peak_mb']:.0f} |")

        build_row(f"build, cold (trains the tokenizer), {workers} workers", measure("build", cfg, workers))
        corpus_dir = next((tmp / "cache").glob("binarized-*"))
        for n in sorted({1, workers}):
            shutil.rmtree(corpus_dir)
            build_row(f"build, tokenizer cached, {n} worker{'s' if n > 1 else ''}", measure("build", cfg, n))
        binarized = measure("build", cfg)
        print(f"| start-up, binarized corpus present | {binarized['seconds']:.2f} | | | | {binarized['peak_mb']:.0f} |")
        print("(start-up: prepare_data and the batch sampler; without a binarized corpus it is a build, as above)")
        print()
        print("| one epoch of collated batches over | pairs | ids MB | private memory added MB |")
        print("| --- | ---: | ---: | ---: |")
        for mode, n in (("iterate", pairs // 4), ("iterate", pairs), ("copy", pairs)):
            run = measure(mode, cfg, pairs=n)
            label = "the binarized corpus (memory-mapped)" if mode == "iterate" else "in-memory copies of its ids"
            print(f"| {label} | {n} | {run['ids_mb']:.1f} | {run['anon_mb']:.1f} |")


def main() -> None:
    if sys.argv[1:2] == ["peers"]:
        import bench_peers  # scripts/ is on sys.path when this file runs as a script

        bench_peers.main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lstm_attn")
    parser.add_argument("--ratios", type=float, nargs="+", default=[1.0, 0.5])
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--window", type=int, default=10, help="training steps per window")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. trainer.max_tokens=4096")
    parser.add_argument("--preprocess", action="store_true", help="benchmark binarized corpora instead")
    parser.add_argument("--pairs", type=int, default=1_000_000, help="--preprocess: generated training pairs")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="--preprocess: processes")
    args = parser.parse_args()
    if args.preprocess:
        preprocess_benchmark(args.pairs, args.workers)
        return
    register_configs()
    # The quickstart's data slice and batches, with the model's own default settings.
    quickstart_data = ["data.max_len=12", "trainer.max_tokens=2048"]  # the default data: Tatoeba eng->fra
    base = [*quickstart_data, f"model={args.model}", "trainer.progress_bar=false", *args.overrides]
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
