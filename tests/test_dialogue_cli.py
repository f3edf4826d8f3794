"""nmt-eval and nmt-translate on dialogue checkpoints: sessions scored with the memory carried vs reset, a chat
whose memory carries across turns (the model's own replies included), and plain models on (turn, reply) pairs."""

from __future__ import annotations

import io
import json

import pytest
import torch

from nmt.cli import evaluate, translate
from nmt.data import make_normalizer
from nmt.decoding.chat import Chat
from nmt.training.checkpoint import load_for_inference
from nmt.training.trainer import Trainer
from tests.conftest import compose_config, tiny_model, write_dialogues


def _train(tmp, name: str, model: list[str]):
    """A few training steps of `model` on the synthetic dialogues in tmp; returns the run directory."""
    overrides = [
        "data=dailydialog",
        f"data.train={tmp / 'train.txt'}",
        f"data.dev={tmp / 'dev.txt'}",
        f"data.test={tmp / 'test.txt'}",
        "data.tokenizer.type=bpe",
        "data.tokenizer.vocab_size=40",
        "data.tokenizer.byte_fallback=false",
        *model,
        "trainer.max_steps=20",
        "trainer.eval_every=10",
        "trainer.max_tokens=512",
        "trainer.progress_bar=false",
        "optim.warmup_steps=5",
        f"paths.log_dir={tmp}",
    ]
    run_dir = tmp / name
    Trainer(compose_config("train", overrides), run_dir).fit()
    return run_dir


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dialogue")
    write_dialogues(tmp / "train.txt", 60, seed=1)
    test = write_dialogues(tmp / "test.txt", 6, seed=2)
    write_dialogues(tmp / "dev.txt", 6, seed=3)
    return tmp, test


@pytest.fixture(scope="module")
def memory_run(corpus):
    return _train(corpus[0], "memory", tiny_model("memory_lstm"))


@pytest.fixture(scope="module")
def chat(memory_run):
    model, tokenizer, run_cfg = load_for_inference(memory_run / "checkpoints" / "best.pt", torch.device("cpu"))
    search_cfg = compose_config("translate", ["beam_size=1"])
    return Chat(model, tokenizer, search_cfg, torch.device("cpu"), make_normalizer(run_cfg["data"]), 64)


class _Terminal:
    def isatty(self) -> bool:
        return True


def _record_fresh_turns(monkeypatch) -> list[bool]:
    """Make nmt-translate's chat record, per turn, whether it starts from the empty memory (a new session): the
    tiny model's replies alone may not show it."""
    fresh = []

    class Recording(Chat):
        def reply(self, text: str) -> str:
            fresh.append(not bool(self.memory.h.any()))
            return super().reply(text)

    monkeypatch.setattr(translate, "Chat", Recording)
    return fresh


def test_eval_reports_memory_carried_vs_reset(memory_run, corpus, tmp_path, capsys):
    test_sessions = corpus[1]
    n_replies = sum(len(turns) - 1 for turns in test_sessions)
    evaluate.main([f"ckpt={memory_run}", "beam_size=2", "no_repeat_ngram_size=3", f"out={tmp_path}"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("BLEU|nrefs:1|") and lines[1].startswith("chrF2|nrefs:1|")
    assert lines[2].startswith("memory carried vs reset")
    assert f"all turns ({n_replies} replies)" in lines[3] and lines[4].startswith("  turn 1 (6 replies)")
    assert lines[-1].startswith("degenerate replies") and f"of {n_replies} with the memory carried" in lines[-1]

    record = json.loads((tmp_path / "dailydialog.test.beam2.json").read_text())
    reset = record["memory_reset"]
    assert record["sessions"] == len(test_sessions) and record["sentences"] == n_replies
    assert sum(t["pairs"] for t in record["per_turn"]) == n_replies
    assert [t["turn"] for t in record["per_turn"]] == [t["turn"] for t in reset["per_turn"]]
    # Turn 1 starts from the empty memory either way; later turns read another memory when it is reset.
    assert record["per_turn"][0]["ppl"] == pytest.approx(reset["per_turn"][0]["ppl"])
    assert record["ppl"] != pytest.approx(reset["ppl"])
    assert 0 <= record["degenerate"] <= n_replies and "hypotheses" not in record
    for suffix in ("hyp", "reset.hyp"):
        assert len((tmp_path / f"dailydialog.test.beam2.{suffix}").read_text().splitlines()) == n_replies


def test_chat_reads_each_turn_and_its_own_reply_into_the_memory(chat):
    chat.reset()
    fresh = chat.memory
    assert not fresh.h.any() and not fresh.c.any()
    reply = chat.reply("hello how are you")
    assert reply, "the tiny model should say something; train it longer"

    # By hand: the user's turn, then the reply, each read in order from the empty memory.
    memory = chat.model.initial_memory(1, chat.device)
    for turn in ("hello how are you", reply):
        ids = chat.tokenizer.encode_src([turn])[0]
        _, memory = chat.model.read_turn(torch.tensor([ids]), torch.tensor([len(ids)]), memory)
    assert torch.allclose(chat.memory.h, memory.h, atol=1e-6) and torch.allclose(chat.memory.c, memory.c, atol=1e-6)


def test_chat_memory_depends_on_the_earlier_turns_and_reset_forgets_them(chat):
    chat.reset()
    first = chat.reply("what now")
    chat.reply("see you")
    after_what_now = chat.memory.h.clone()
    chat.reset()
    assert chat.reply("what now") == first  # a new session is the first one again, exactly
    chat.reset()
    chat.reply("no no no")
    chat.reply("see you")
    assert not torch.allclose(chat.memory.h, after_what_now)


def test_chat_survives_empty_long_and_garbage_turns(chat):
    chat.reset()
    before = chat.memory
    assert chat.reply("   \t ") == "" and chat.memory is before  # no turn: the memory is untouched
    assert isinstance(chat.reply("hi " * 5000), str)
    assert isinstance(chat.reply("\x00\ufffd\u200b ☃ 漢字 zzzz"), str)


def test_translate_stdin_chat_keeps_outputs_aligned_and_blank_lines_reset(memory_run, monkeypatch, capsys):
    turns = [
        b"hello how are you",
        b"fine thanks",
        b"",
        b"hello how are you",
        b"  ",
        b"yes \xff\xfe sure",
        b"bye " * 3000,
    ]
    # A pipe, not a terminal; undecodable bytes included.
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"\n".join(turns) + b"\n")))
    fresh = _record_fresh_turns(monkeypatch)
    translate.main([f"ckpt={memory_run}", "beam_size=2"])
    out = capsys.readouterr().out.split("\n")
    assert len(out) == len(turns) + 1 and out[-1] == ""  # one line per input line, each ended by a newline
    assert out[2] == "" and out[4] == ""
    assert fresh == [True, False, True, True, False]
    assert out[3] == out[0]  # the blank line started a new session: the same first turn, the same reply


def test_translate_chat_prompt_reset_and_argument(memory_run, monkeypatch, capsys):
    lines = iter(["hello how are you", "", "fine thanks", "/reset", "hello how are you"])

    def typed(prompt):
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("sys.stdin", _Terminal())
    monkeypatch.setattr("builtins.input", typed)
    fresh = _record_fresh_turns(monkeypatch)
    translate.main([f"ckpt={memory_run}", "beam_size=1"])
    captured = capsys.readouterr()
    replies = captured.out.splitlines()
    assert len(replies) == 3 and replies[2] == replies[0]  # the empty line is no turn; /reset restarts
    assert fresh == [True, False, True]
    assert "new session" in captured.err

    translate.main([f"ckpt={memory_run}", "beam_size=1", "hello how are you"])
    assert capsys.readouterr().out.splitlines() == [replies[0]]  # an argument is the first turn of a session


def test_plain_model_on_dialogue_data_evaluates_on_turn_pairs(corpus, tmp_path, capsys):
    tmp, test_sessions = corpus
    run_dir = _train(tmp, "transformer", tiny_model("transformer"))
    capsys.readouterr()
    evaluate.main([f"ckpt={run_dir}", "beam_size=2", f"out={tmp_path}"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("BLEU|nrefs:1|")
    pairs = [turns[t + 1] for turns in test_sessions for t in range(len(turns) - 1)]
    assert len((tmp_path / "dailydialog.test.beam2.hyp").read_text().splitlines()) == len(pairs)
    record = json.loads((tmp_path / "dailydialog.test.beam2.json").read_text())
    assert record["sentences"] == len(pairs) and "memory_reset" not in record

    translate.main([f"ckpt={run_dir}", "beam_size=1", "hello how are you"])
    assert len(capsys.readouterr().out.splitlines()) == 1
