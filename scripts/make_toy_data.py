"""Regenerate the toy reversal corpus in data/toy/; the same seed always writes the same files."""

from __future__ import annotations

import argparse
import random
import string
from pathlib import Path

SYMBOLS = string.ascii_lowercase[:20]  # a..t
SPLITS = {"train": 3000, "dev": 200, "test": 200}
MIN_LEN, MAX_LEN = 3, 8


def make_pairs(seed: int) -> dict[str, list[tuple[str, str]]]:
    """Distinct source sentences (no line shared between splits) with their reversals, per split."""
    rng = random.Random(seed)
    seen: set[str] = set()
    pairs: dict[str, list[tuple[str, str]]] = {}
    for split, size in SPLITS.items():
        pairs[split] = []
        while len(pairs[split]) < size:
            symbols = [rng.choice(SYMBOLS) for _ in range(rng.randint(MIN_LEN, MAX_LEN))]
            src = " ".join(symbols)
            if src not in seen:
                seen.add(src)
                pairs[split].append((src, " ".join(reversed(symbols))))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data" / "toy")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for split, pairs in make_pairs(args.seed).items():
        path = args.out / f"{split}.tsv"
        path.write_text("".join(f"{src}\t{tgt}\n" for src, tgt in pairs), encoding="utf-8")
        print(f"wrote {len(pairs)} pairs to {path}")


if __name__ == "__main__":
    main()
