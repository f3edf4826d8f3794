"""Text corpora: parallel files and dialogue sessions, validation, normalisation, the seeded split, length filters."""

from __future__ import annotations

import functools
import gzip
import os
import random
import re
import unicodedata
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nmt.errors import UserError

_TSV_FORMAT = "each line must be 'source<TAB>target' (extra columns are ignored)"
MAX_LINE_BYTES = 100_000  # read_lines refuses longer lines


class CorpusError(UserError):
    """Bad input data or data settings; the message is one line naming the file, the problem and the fix."""


@dataclass(frozen=True)
class Example:
    src: str
    tgt: str


# A run of , . ! ? glued to the end of a word ("now." but not "3.5" or "U.S.A"): d2l's Tatoeba preprocessing.
_GLUED_PUNCTUATION = re.compile(r"(?<=[^\s,.!?])([,.!?]+)(?=\s|$)")
# Printable characters that SentencePiece reads as a space: its word mark '▁' and U+FFFD.
_SPM_SPACES = "\u2581\ufffd"


def normalize(text: str, lowercase: bool = False, space_punctuation: bool = False) -> str:
    """NFKC, then map every kind of space to ' ', drop control and zero-width characters, collapse whitespace, strip.

    Optionally lowercase, and put a space before sentence punctuation ("Go now." -> "go now ."). NFKC and the
    spaces are what SentencePiece does to the text it encodes, so a decoded output can equal a normalised reference
    (a full-width question mark, U+FF1F, would otherwise never match the '?' decoded for it).
    """
    text = unicodedata.normalize("NFKC", text)
    # Most lines hold only printable characters and plain spaces: skip the per-character pass for them.
    if not text.isprintable() or any(ch in text for ch in _SPM_SPACES):
        chars = []
        for ch in text:
            if ch.isspace() or ch in _SPM_SPACES or unicodedata.category(ch) == "Zs":
                chars.append(" ")
            elif unicodedata.category(ch) not in ("Cc", "Cf"):
                chars.append(ch)
        text = "".join(chars)
    text = " ".join(text.split())
    if space_punctuation:
        text = _GLUED_PUNCTUATION.sub(r" \1", text)
    return text.lower() if lowercase else text


def make_normalizer(cfg) -> Callable[[str], str]:
    """The normalisation a data config (or a checkpoint's copy of it) asks for: training and inference share it."""
    return functools.partial(normalize, lowercase=cfg["lowercase"], space_punctuation=cfg["space_punctuation"])


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_lines(path: str | os.PathLike) -> list[str]:
    """All lines of a UTF-8 text file (plain or .gz) without their line endings; CorpusError if unusable.

    A line over MAX_LINE_BYTES is refused: no sentence or dialogue is that long, so the file's line breaks are
    missing or it is not text (lines are read at most that far, so such a file is never held in memory whole).
    """
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "file not found"
        raise CorpusError(f"{path}: {what} — check the data path (relative paths start at {Path.cwd()})")
    lines = []
    try:
        with _open_binary(path) as f:
            for lineno, raw in enumerate(iter(functools.partial(f.readline, MAX_LINE_BYTES + 1), b""), start=1):
                if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                    breaks = " (it holds '\\r': convert old Mac line endings to '\\n')" if b"\r" in raw else ""
                    raise CorpusError(
                        f"{path}:{lineno}: line longer than {MAX_LINE_BYTES:,} bytes{breaks}"
                        " — no sentence is that long: restore the missing line breaks or remove the line"
                    )
                try:
                    lines.append(raw.decode("utf-8").rstrip("\r\n"))
                except UnicodeDecodeError as e:
                    raise CorpusError(
                        f"{path}:{lineno}: invalid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})"
                        " — re-encode the file as UTF-8, e.g. with iconv"
                    ) from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise CorpusError(f"{path}: not a valid gzip file ({e}) — re-compress it or drop the .gz suffix") from None
    if not lines:
        raise CorpusError(f"{path}: empty file — a corpus needs at least one line")
    return lines


def _read_tsv(path, src_column: int, tgt_column: int, norm) -> list[Example]:
    need = max(src_column, tgt_column) + 1
    examples = []
    for lineno, line in enumerate(read_lines(path), start=1):
        fields = line.split("\t")
        if len(fields) < need:
            if line.strip() == "":
                problem = "blank line"
            elif len(fields) == 1:
                problem = "no tab between source and target"
            else:
                problem = f"{len(fields)} columns, but column {need - 1} is used (src_column/tgt_column)"
            raise CorpusError(f"{path}:{lineno}: {problem} — {_TSV_FORMAT}")
        examples.append(Example(norm(fields[src_column]), norm(fields[tgt_column])))
    return examples


def _read_parallel(src_path, tgt_path, norm) -> list[Example]:
    src_lines, tgt_lines = read_lines(src_path), read_lines(tgt_path)
    if len(src_lines) != len(tgt_lines):
        raise CorpusError(
            f"{src_path}: has {len(src_lines)} lines but {tgt_path} has {len(tgt_lines)}"
            " — parallel files must be line-aligned, one sentence per line"
        )
    return [Example(norm(s), norm(t)) for s, t in zip(src_lines, tgt_lines, strict=True)]


def read_corpus(spec, src_column: int = 0, tgt_column: int = 1, norm=normalize) -> list[Example]:
    """Read sentence pairs from a TSV file or two line-aligned files [src_file, tgt_file], plain or .gz.

    Texts go through `norm` (e.g. make_normalizer(data_cfg)); pairs with an empty side are kept
    (prepare_data filters and counts them).
    """
    if isinstance(spec, (str, os.PathLike)):
        if min(src_column, tgt_column) < 0:
            raise CorpusError(
                f"{spec}: src_column={src_column}, tgt_column={tgt_column} — TSV column numbers start at 0"
            )
        return _read_tsv(spec, src_column, tgt_column, norm)
    if isinstance(spec, Sequence) and len(spec) == 2:
        return _read_parallel(str(spec[0]), str(spec[1]), norm)
    raise CorpusError(f"{spec!r}: not a corpus spec — give a TSV path or a list [src_file, tgt_file]")


def read_dialogues(path, separator: str = "__eou__", norm=normalize) -> tuple[list[list[str]], dict[str, int]]:
    """Sessions (lists of normalised turns) from a file of one dialogue per line, every turn ending with `separator`.

    Rules, each counted in the returned {"blank_lines", "empty_turns", "short_sessions"}: blank lines are skipped;
    turns empty after normalisation are dropped (their neighbours become adjacent); sessions left with fewer than
    two turns give no (turn, reply) pair and are skipped. A non-blank line without the separator is refused:
    pairs cut from it would be silently wrong.
    """
    sessions, counts = [], {"blank_lines": 0, "empty_turns": 0, "short_sessions": 0}
    for lineno, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            counts["blank_lines"] += 1
            continue
        if separator not in line:
            raise CorpusError(
                f"{path}:{lineno}: no '{separator}' in this dialogue — one dialogue per line, every turn ending"
                f" with ' {separator}' (set data.turn_separator for another mark)"
            )
        pieces = line.split(separator)
        if not pieces[-1].strip():
            pieces.pop()  # the text after the last turn's separator
        turns = [norm(piece) for piece in pieces]
        kept = [turn for turn in turns if turn]
        counts["empty_turns"] += len(turns) - len(kept)
        if len(kept) < 2:
            counts["short_sessions"] += 1
            continue
        sessions.append(kept)
    return sessions, counts


def split_corpus(
    examples: list, dev_size: int, test_size: int, seed: int, name: str = "corpus"
) -> tuple[list, list, list]:
    """Seeded split of pairs (or sessions) into (train, dev, test); each part keeps the corpus order.

    A random.Random(seed) shuffle of the positions puts the first test_size in test, the next dev_size in
    dev and the rest in train, so the split depends only on the seed and the number of pairs. `name` labels
    errors.
    """
    if dev_size < 0 or test_size < 0:
        raise CorpusError(f"{name}: dev_size={dev_size}, test_size={test_size} — sizes must be >= 0")
    if len(examples) <= dev_size + test_size:
        raise CorpusError(
            f"{name}: {len(examples)} pairs, too few for dev_size={dev_size} + test_size={test_size}"
            " and some training pairs — lower data.dev_size/data.test_size or give data.dev/data.test files"
        )
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    test = sorted(order[:test_size])
    dev = sorted(order[test_size : test_size + dev_size])
    train = sorted(order[test_size + dev_size :])
    return [examples[i] for i in train], [examples[i] for i in dev], [examples[i] for i in test]


def filter_pairs(
    src_ids: Sequence[Sequence[int]], tgt_ids: Sequence[Sequence[int]], max_len: int | None
) -> tuple[list[int], dict[str, int]]:
    """Indices of the pairs to keep, and counts {"empty", "too_long", "kept"}.

    A pair is empty when either side has no tokens, too long when either side has more than max_len
    tokens (None: no length limit); an empty pair counts as empty only. Only the lengths of the ids matter.
    """
    if len(src_ids) != len(tgt_ids):
        raise CorpusError(
            f"filter_pairs: {len(src_ids)} source but {len(tgt_ids)} target sentences — pass aligned lists"
        )
    if max_len is not None and max_len < 1:
        raise CorpusError(f"data.max_len={max_len}: must be a positive number of tokens — or null for no limit")
    src_len = np.fromiter((len(s) for s in src_ids), dtype=np.int64, count=len(src_ids))
    tgt_len = np.fromiter((len(t) for t in tgt_ids), dtype=np.int64, count=len(tgt_ids))
    empty = (src_len == 0) | (tgt_len == 0)
    too_long = np.zeros_like(empty) if max_len is None else ~empty & ((src_len > max_len) | (tgt_len > max_len))
    kept = np.flatnonzero(~empty & ~too_long)
    counts = {"empty": int(empty.sum()), "too_long": int(too_long.sum()), "kept": len(kept)}
    return kept.tolist(), counts
