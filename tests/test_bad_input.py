"""Bad corpora and bad command lines, one table row each: the exit status, and either the one-line error on stderr
or the output that the documented rule (skip, count, normalise) gives; never a traceback.

A few rows run the real CLIs as subprocesses, so that exit status and stderr are checked end to end; the others call
prepare_data or the CLI's main() in-process, through the same reports_errors, to keep the file fast.
"""

from __future__ import annotations

import gzip
import io
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nmt.cli import compose_config, evaluate, reports_errors, translate
from nmt.data import prepare_data
from nmt.training.trainer import Trainer
from tests.conftest import tiny_model

TINY_DATA = ["data=files", "data.max_len=32", "data.tokenizer.vocab_size=40", "data.tokenizer.byte_fallback=false"]


def letters(n: int, seed: int = 0) -> list[str]:
    """n 'source<TAB>target' lines of a few letters each."""
    rng = random.Random(seed)
    words = [" ".join(rng.choices("abcdefgh", k=rng.randint(2, 6))) for _ in range(2 * n)]
    return [f"{words[2 * i]}\t{words[2 * i + 1]}" for i in range(n)]


def text(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8")


LONG = " ".join("abcdefgh"[i % 8] for i in range(300))  # 300 tokens at least, over data.max_len=32
GOOD = {"ok.tsv": text(letters(6, seed=1))}
HELD_OUT = ["data.dev={tmp}/ok.tsv", "data.test={tmp}/ok.tsv"]

# id: (how: nmt-train subprocess or prepare_data in-process, files {name: bytes, or None for a directory},
#      overrides after TINY_DATA ({tmp}: the test's directory), exit status,
#      regex: the one-line error on stderr, or with status 0 a line of the log or of the kept train pairs)
CORPUS_CASES = {
    "parallel-line-counts": (
        "nmt-train",
        {"a.src": b"a b\nc d\ne f\n", "a.tgt": b"b a\nd c\n"},
        ["data.train=[{tmp}/a.src,{tmp}/a.tgt]"],
        2,
        r"/a\.src: has 3 lines but \S+/a\.tgt has 2 — parallel files must be line-aligned",
    ),
    "invalid-utf8": (
        "nmt-train",
        {"c.tsv": b"a b\tb a\nc d\td \xff c\n"},
        ["data.train={tmp}/c.tsv"],
        2,
        r"/c\.tsv:2: invalid UTF-8 \(byte 0xff at column 7\) — re-encode the file as UTF-8",
    ),
    "tsv-line-without-tab": (
        "prepare_data",
        {"c.tsv": text([*letters(3), "no tab here", *letters(3)])},
        ["data.train={tmp}/c.tsv"],
        2,
        r"/c\.tsv:4: no tab between source and target — each line must be 'source<TAB>target'",
    ),
    "empty-file": ("prepare_data", {"c.tsv": b""}, ["data.train={tmp}/c.tsv"], 2, r"/c\.tsv: empty file — "),
    "missing-file": (
        "prepare_data",
        {},
        ["data.train={tmp}/nope.tsv"],
        2,
        r"/nope\.tsv: file not found — check the data path",
    ),
    "directory-not-file": (
        "prepare_data",
        {"corpus": None},
        ["data.train={tmp}/corpus"],
        2,
        r"/corpus: is a directory, not a file — check the data path",
    ),
    "gz-that-is-not-gzip": (
        "prepare_data",
        {"c.tsv.gz": text(letters(3))},
        ["data.train={tmp}/c.tsv.gz"],
        2,
        r"/c\.tsv\.gz: not a valid gzip file \(.*\) — re-compress it or drop the \.gz suffix",
    ),
    "truncated-gzip": (
        "prepare_data",
        {"c.tsv.gz": gzip.compress(text(letters(200)))[:300]},
        ["data.train={tmp}/c.tsv.gz"],
        2,
        r"/c\.tsv\.gz: not a valid gzip file \(.*\) — re-compress it",
    ),
    "pairs-over-max-len-dropped-and-counted": (
        "prepare_data",
        {"c.tsv": text([*letters(10), f"{LONG}\ta b", f"a b\t{LONG}", *letters(10, seed=2)]), **GOOD},
        ["data.train={tmp}/c.tsv", *HELD_OUT],
        0,
        r"^data train: 22 pairs, 0 empty, 2 longer than 32 tokens, 20 kept$",
    ),
    "one-megabyte-line-refused": (
        "prepare_data",
        {"c.tsv": text([*letters(2), "x" * 1_000_000 + "\ty", *letters(2)])},
        ["data.train={tmp}/c.tsv"],
        2,
        r"/c\.tsv:3: line longer than 100,000 bytes — no sentence is that long: restore the missing line breaks",
    ),
    "old-mac-line-endings": (
        "prepare_data",
        {"c.tsv": "\r".join(letters(20_000)).encode()},
        ["data.train={tmp}/c.tsv"],
        2,
        r"/c\.tsv:1: line longer than 100,000 bytes \(it holds '\\r': convert old Mac line endings to '\\n'\)",
    ),
    "control-characters-normalised": (
        "prepare_data",
        {"c.tsv": text([*letters(5), "a\x00b\x07 c\u200bd\x1b[0m\t\ufeffx\u00a0y\x7f \uff1f"]), **GOOD},
        ["data.train={tmp}/c.tsv", *HELD_OUT],
        0,
        r"^ab cd\[0m\tx y \?$",
    ),
    "dialogue-line-without-eou": (
        "prepare_data",
        {"d.txt": b"hi . __eou__ hello . __eou__\nhow are you ? fine .\n"},
        ["data.format=dialogue", "data.train={tmp}/d.txt"],
        2,
        r"/d\.txt:2: no '__eou__' in this dialogue — one dialogue per line, every turn ending with ' __eou__'",
    ),
}


def run_cli(module: str, args: list[str], cwd: Path, stdin: bytes | None = None) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `python -m nmt.cli.<module> args`."""
    result = subprocess.run(
        [sys.executable, "-m", f"nmt.cli.{module}", *args], cwd=cwd, input=stdin, capture_output=True, timeout=300
    )
    return result.returncode, result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")


def run_in_process(main, capsys) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of main(), a function wrapped by reports_errors."""
    try:
        main()
        status = 0
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def check(status: int, out: str, err: str, program: str, expected_status: int, pattern: str) -> None:
    assert "Traceback" not in err, err
    assert status == expected_status, err
    if expected_status == 0:
        assert "error:" not in err, err
        assert re.search(pattern, out, re.MULTILINE), out[-2000:]
    else:
        line = err.strip()
        assert "\n" not in line, err  # the whole of stderr is one line
        assert line.startswith(f"{program}: error: "), line
        assert re.search(pattern, line), line


@pytest.mark.parametrize("case", CORPUS_CASES.values(), ids=CORPUS_CASES.keys())
def test_bad_corpus(case, tmp_path, capsys):
    how, files, overrides, expected_status, pattern = case
    for name, content in files.items():
        if content is None:
            (tmp_path / name).mkdir()
        else:
            (tmp_path / name).write_bytes(content)
    overrides = [*TINY_DATA, *(o.format(tmp=tmp_path) for o in overrides)]
    if how == "nmt-train":
        run = ["trainer.max_steps=1", f"paths.log_dir={tmp_path}/outputs", "trainer.progress_bar=false"]
        status, out, err = run_cli("train", [*overrides, *tiny_model(), *run], tmp_path)
    else:

        @reports_errors("nmt-train")
        def prepare():
            data = prepare_data(compose_config("train", overrides).data, log=print)
            for example in data.texts["train"]:  # the kept pairs, after the log lines
                print(f"{example.src}\t{example.tgt}")

        status, out, err = run_in_process(prepare, capsys)
    check(status, out, err, "nmt-train", expected_status, pattern)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """best.pt of a tiny model trained for a few steps on the toy corpus."""
    tmp = tmp_path_factory.mktemp("bad-cli")
    overrides = ["data=toy", *tiny_model(), f"paths.log_dir={tmp}/outputs", "trainer.progress_bar=false"]
    Trainer(compose_config("train", [*overrides, "trainer.max_steps=4", "trainer.max_tokens=1024"]), tmp / "run").fit()
    return tmp / "run" / "checkpoints" / "best.pt"


GARBAGE = random.Random(0).randbytes(4000)  # holds '\n' and lone '\r' bytes, and invalid UTF-8
BYTE_LINES = GARBAGE.count(b"\n") + (not GARBAGE.endswith(b"\n"))
ONE_LINE = r"\A[^\n]*\S[^\n]*\n\Z"  # one non-empty output line

# id: (program, how: subprocess or in-process, arguments ({ckpt}: a tiny toy checkpoint, {tmp}: the test's
#      directory), stdin bytes, exit status, regex: the one-line error on stderr, or with status 0 the whole stdout)
CLI_CASES = {
    "train-key-typo": (
        "nmt-train",
        "subprocess",
        ["data=toy", "trainer.max_step=5"],
        None,
        2,
        r"Could not override 'trainer\.max_step': Key 'max_step' not in 'TrainerConfig' — check the spelling",
    ),
    "train-bleu-tokenizer": (
        "nmt-train",
        "subprocess",
        ["data=toy", "data.bleu_tokenize=13b", "paths.log_dir={tmp}"],
        None,
        2,
        r"data\.bleu_tokenize=13b: not a sacreBLEU tokenizer — use 13a, zh, intl, char or none$",
    ),
    "eval-key-typo": (
        "nmt-eval",
        "in-process",
        ["ckpt={ckpt}", "beam_sise=3"],
        None,
        2,
        r"Could not override 'beam_sise': Key 'beam_sise' not in 'EvalConfig' — check the spelling of the key$",
    ),
    "eval-value-type": (
        "nmt-eval",
        "in-process",
        ["ckpt={ckpt}", "beam_size=abc"],
        None,
        2,
        r"Error merging override beam_size=abc: Value 'abc' of type 'str' could not be converted to Integer$",
    ),
    "translate-value-type": (
        "nmt-translate",
        "in-process",
        ["beam_size=1.5", "hello"],
        None,
        2,
        r"Error merging override beam_size=1\.5: Value '1\.5' of type 'float' could not be converted to Integer$",
    ),
    "eval-stop-rule": (
        "nmt-eval",
        "in-process",
        ["ckpt={ckpt}", "beam_size=2", "stop=first"],
        None,
        2,
        r"override stop=first: Invalid value 'first', expected one of \[bound, full_beam, top_eos\]$",
    ),
    "eval-without-ckpt": ("nmt-eval", "in-process", [], None, 2, r"ckpt: not set — add ckpt=<value> to the command"),
    "eval-ckpt-nowhere": ("nmt-eval", "subprocess", ["ckpt=/nowhere"], None, 2, r"/nowhere: no checkpoint there"),
    "translate-nothing-under-outputs": (
        "nmt-translate",
        "in-process",
        ["paths.log_dir={tmp}/outputs", "hello"],
        None,
        2,
        r"no checkpoints/best\.pt under \S+/outputs — train a model first",
    ),
    "translate-empty-line": ("nmt-translate", "in-process", ["ckpt={ckpt}"], b"\n", 0, r"\A\n\Z"),
    "translate-10000-characters": (
        "nmt-translate",
        "in-process",
        ["ckpt={ckpt}", "beam_size=1"],
        (" ".join("abcdefghijklmnopqrst" * 250)[:10_000] + "\n").encode(),
        0,
        ONE_LINE,
    ),
    "translate-unseen-scripts": (
        "nmt-translate",
        "in-process",
        ["ckpt={ckpt}", "beam_size=2"],
        "नमस्ते दुनिया 你好\uff0c世界 Привет\n".encode(),
        0,
        ONE_LINE,
    ),
    "translate-binary-garbage": (
        "nmt-translate",
        "subprocess",
        ["ckpt={ckpt}", "beam_size=1"],
        GARBAGE,
        0,
        rf"\A([^\n]*\n){{{BYTE_LINES}}}\Z",  # one output line per input line, '\r' and all
    ),
}
MODULES = {"nmt-train": "train", "nmt-eval": "evaluate", "nmt-translate": "translate"}


@pytest.mark.parametrize("case", [pytest.param(case, id=name) for name, case in CLI_CASES.items()])
def test_bad_command_line(case, checkpoint, tmp_path, capsys, monkeypatch):
    program, how, args, stdin, expected_status, pattern = case
    args = [a.format(ckpt=checkpoint, tmp=tmp_path) for a in args]
    if how == "subprocess":
        status, out, err = run_cli(MODULES[program], args, tmp_path, stdin)
    else:
        module = {"nmt-eval": evaluate, "nmt-translate": translate}[program]
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin or b"")))
        status, out, err = run_in_process(lambda: module.main(args), capsys)
    check(status, out, err, program, expected_status, pattern)
