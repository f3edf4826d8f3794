"""nmt-translate: translate the arguments, stdin line by line, or sentences typed at an interactive prompt."""

from __future__ import annotations

import io
import re
import sys

from nmt.cli import compose_config, reports_errors
from nmt.data import make_normalizer
from nmt.decoding import translate_texts
from nmt.training.checkpoint import load_for_inference, newest_checkpoint, resolve_checkpoint
from nmt.training.trainer import resolve_device

# key=value (Hydra override) versus free text: a sentence rarely starts with an identifier glued to '='.
_OVERRIDE = re.compile(r"^[+~]?[A-Za-z_][\w.]*=")


def split_arguments(argv: list[str]) -> tuple[list[str], str]:
    """Separate Hydra overrides from the text to translate (the remaining words, joined by spaces)."""
    overrides = [a for a in argv if _OVERRIDE.match(a)]
    words = [a for a in argv if not _OVERRIDE.match(a)]
    return overrides, " ".join(words)


def _format(nbest: list[tuple[str, float]]) -> str:
    """The translation; with nbest > 1, one 'score<TAB>translation' line per hypothesis."""
    if len(nbest) == 1:
        return nbest[0][0]
    return "\n".join(f"{score:.4f}\t{text}" for text, score in nbest)


def _stream(lines, translate, normalize, batch_size: int, out) -> None:
    """One output line per input line (nbest lines with nbest > 1); an empty line stays empty.

    Flushes after each batch."""
    pending: list[str] = []

    def flush():
        texts = [normalize(line) for line in pending]
        non_empty = [t for t in texts if t]
        translations = iter(translate(non_empty)) if non_empty else iter(())
        for text in texts:
            out.write((_format(next(translations)) if text else "") + "\n")
        out.flush()
        pending.clear()

    for line in lines:
        pending.append(line.rstrip("\r\n"))
        if len(pending) >= batch_size:
            flush()
    if pending:
        flush()


def _interactive(translate, normalize) -> None:
    print("nmt-translate: type a sentence, Enter to translate, Ctrl-D to quit", file=sys.stderr)
    while True:
        try:
            line = input("> ")
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            return
        text = normalize(line)
        if text:
            print(_format(translate([text])[0]))


@reports_errors("nmt-translate")
def main(argv: list[str] | None = None) -> None:
    overrides, text = split_arguments(sys.argv[1:] if argv is None else argv)
    cfg = compose_config("translate", overrides)
    path = resolve_checkpoint(cfg.ckpt, "best.pt") if cfg.ckpt else newest_checkpoint(cfg.paths.log_dir)
    device = resolve_device(cfg.device)
    model, tokenizer, run_cfg = load_for_inference(path, device)
    normalize = make_normalizer(run_cfg["data"])  # the same normalisation as the training data
    print(f"nmt-translate: using {path}", file=sys.stderr)

    def translate(texts):
        return translate_texts(model, tokenizer, texts, cfg, device)

    if text:
        print(_format(translate([normalize(text)])[0]))
    elif sys.stdin.isatty():
        _interactive(translate, normalize)
    else:
        # Undecodable bytes become U+FFFD instead of an exception: binary garbage in, a line out.
        stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
        _stream(stdin, translate, normalize, cfg.batch_size, sys.stdout)


if __name__ == "__main__":
    main()
