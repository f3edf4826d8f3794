"""nmt-translate: translate the arguments, stdin line by line, or sentences typed at an interactive prompt; with a
memory-LSTM checkpoint, chat: each line is a turn of a session whose memory carries over."""

from __future__ import annotations

import io
import re
import sys

from nmt.cli import command_line, compose_config, reports_errors
from nmt.cpu_kernels import use_cpu_kernels
from nmt.data import make_normalizer
from nmt.decoding import translate_texts
from nmt.decoding.chat import Chat
from nmt.decoding.search import check_search
from nmt.training.checkpoint import load_for_inference, newest_checkpoint, resolve_checkpoint
from nmt.training.device import resolve_device

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


def _stdin_lines():
    """stdin as lines split at '\\n' only (a lone '\\r' stays in its line): one output line per input line even for
    binary garbage, whose undecodable bytes become U+FFFD instead of an exception."""
    return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline="\n")


def _prompt(banner: str):
    """Lines typed at a '> ' prompt, until Ctrl-D or Ctrl-C."""
    print(f"nmt-translate: {banner}", file=sys.stderr)
    while True:
        try:
            yield input("> ")
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            return


def _interactive(translate, normalize) -> None:
    for line in _prompt("type a sentence, Enter to translate, Ctrl-D to quit"):
        text = normalize(line)
        if text:
            print(_format(translate([text])[0]))


def _chat_stream(lines, chat: Chat, out) -> None:
    """One reply line per turn line; a blank line ends the session (memory reset) and stays blank in the output."""
    for line in lines:
        line = line.rstrip("\r\n")
        if line.strip():
            out.write(chat.reply(line) + "\n")
        else:
            chat.reset()
            out.write("\n")
        out.flush()


def _chat_interactive(chat: Chat) -> None:
    for line in _prompt("chat — type a turn, Enter for the reply, /reset for a new session, Ctrl-D to quit"):
        if line.strip() == "/reset":
            chat.reset()
            print("(new session: the memory is empty)", file=sys.stderr)
        elif line.strip():
            print(chat.reply(line))


def _chat(model, tokenizer, run_cfg, cfg, device, text: str) -> None:
    """nmt-translate with a memory-LSTM: the arguments are one turn of a new session, else stdin or a prompt."""
    data = run_cfg["data"]
    chat = Chat(model, tokenizer, cfg, device, make_normalizer(data), data["max_len"])
    if cfg.nbest > 1:
        print("nmt-translate: a chat answers with the best hypothesis only (nbest ignored)", file=sys.stderr)
    if text:
        print(chat.reply(text))
    elif sys.stdin.isatty():
        _chat_interactive(chat)
    else:
        _chat_stream(_stdin_lines(), chat, sys.stdout)


@reports_errors("nmt-translate")
def main(argv: list[str] | None = None) -> None:
    words = command_line(
        "nmt-translate", __doc__, sys.argv[1:] if argv is None else argv, "translate", "[key=value ...] [text ...]"
    )
    overrides, text = split_arguments(words)
    cfg = compose_config("translate", overrides)
    check_search(cfg)
    path = resolve_checkpoint(cfg.ckpt, "best.pt") if cfg.ckpt else newest_checkpoint(cfg.paths.log_dir)
    device = resolve_device(cfg.device)
    model, tokenizer, run_cfg = load_for_inference(path, device)
    use_cpu_kernels(model, cfg.kernels, device)
    normalize = make_normalizer(run_cfg["data"])  # the same normalisation as the training data
    print(f"nmt-translate: using {path}", file=sys.stderr)
    if run_cfg["model"]["name"] == "memory_lstm":
        _chat(model, tokenizer, run_cfg, cfg, device, text)
        return

    def translate(texts):
        return translate_texts(model, tokenizer, texts, cfg, device)

    if text:
        print(_format(translate([normalize(text)])[0]))
    elif sys.stdin.isatty():
        _interactive(translate, normalize)
    else:
        _stream(_stdin_lines(), translate, normalize, cfg.batch_size, sys.stdout)


if __name__ == "__main__":
    main()
