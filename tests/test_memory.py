"""Memory-LSTM: session batching, the gate that makes it the backbone, a task only memory solves, truncated BPTT,
freezing in the trainer, dialogue corpora."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
import torch

from nmt.data import CorpusError, SpecialIds, collate_sessions, prepare_data, read_dialogues, session_sampler
from nmt.data.dataset import TokenizedCorpus, pack
from nmt.models.base import LSTMState
from nmt.training.checkpoint import CheckpointError
from nmt.training.loss import sequence_loss
from nmt.training.session import _carry, read_session, session_loss
from nmt.training.teacher_forcing import forced_features, forced_logits
from nmt.training.trainer import Trainer
from tests.conftest import build_tiny, compose_config, tiny_model

SPECIALS = SpecialIds(pad=0, unk=1, bos=2, eos=3)
VARIANTS = [
    {"backbone": "transformer", "memory": {"mode": "sequence"}},
    {"backbone": "lstm_attn", "memory": {"mode": "sequence"}},
    {"backbone": "transformer", "memory": {"mode": "utterance"}},
    {"backbone": "lstm_attn", "memory": {"mode": "utterance"}},
]
IDS = [f"{v['backbone']}-{v['memory']['mode']}" for v in VARIANTS]


def _sessions(turn_counts, seed=0, vocab=30):
    """A pair corpus of random sessions with the given numbers of turns, and its session offsets."""
    rng = np.random.default_rng(seed)
    src, tgt, offsets = [], [], [0]
    for turns in turn_counts:
        texts = [rng.integers(4, vocab, rng.integers(2, 7)).tolist() for _ in range(turns)]
        src += texts[:-1]
        tgt += texts[1:]
        offsets.append(offsets[-1] + turns - 1)
    return TokenizedCorpus(*pack(src), *pack(tgt)), np.array(offsets, dtype=np.int64)


def _turn_logits(model, batch):
    """Teacher-forced logits of every turn, memory carried: a list over turns of (running sessions, len, vocab)."""
    return [forced_logits(model.backbone, enc, turn.tgt_in, None, 1.0) for _, turn, enc in read_session(model, batch)]


# -- session batching ---------------------------------------------------------------------------------------------


def test_session_batches_align_turns_longest_session_first():
    corpus, offsets = _sessions([3, 5, 2])  # 2, 4 and 1 pairs
    batch = collate_sessions(corpus, offsets, [0, 1, 2], SPECIALS)
    assert batch.sessions.tolist() == [1, 0, 2]
    assert [turn.src.size(0) for turn in batch.turns] == [3, 2, 1, 1]
    for t, turn in enumerate(batch.turns):
        # Row r of turn t is pair t of the r-th session, so its source is that session's turn t.
        assert turn.indices.tolist() == [offsets[s] + t for s in batch.sessions[: turn.src.size(0)]]
    assert batch.n_tokens == sum(int(corpus.tgt_lengths()[i]) + 1 for i in range(len(corpus)))


def test_the_session_sampler_keeps_the_budget_and_covers_every_session_once():
    corpus, offsets = _sessions([2, 3, 4, 5, 6, 7, 2, 9, 3, 3], seed=1)
    sampler = session_sampler(corpus, offsets, max_tokens=30, seed=3)
    for epoch in range(2):
        batches = sampler.batches(epoch)
        assert sorted(np.concatenate(batches).tolist()) == list(range(10))
        for sessions in batches:
            widest = max(
                max(len(corpus.src_ids(i)), len(corpus.tgt_ids(i)) + 1)
                for s in sessions
                for i in range(offsets[s], offsets[s + 1])
            )
            assert len(sessions) == 1 or len(sessions) * widest <= 30


def test_finished_sessions_keep_their_memory():
    memory = LSTMState(torch.zeros(1, 3, 4), torch.zeros(1, 3, 4))
    updated = LSTMState(torch.ones(1, 2, 4), torch.full((1, 2, 4), 2.0))
    carried = _carry(memory, updated)
    assert torch.equal(carried.h[:, :2], updated.h) and torch.equal(carried.c[:, :2], updated.c)
    assert torch.equal(carried.h[:, 2], memory.h[:, 2]) and torch.equal(carried.c[:, 2], memory.c[:, 2])


@pytest.mark.parametrize("options", VARIANTS, ids=IDS)
def test_a_batch_of_sessions_equals_each_session_run_alone(options):
    """Turns align, sessions do not leak into each other, and each session starts from an empty memory."""
    model = build_tiny("memory_lstm", src_vocab_size=30, tgt_vocab_size=30, **options).eval()
    corpus, offsets = _sessions([3, 5, 2, 4], seed=2)
    with torch.no_grad():
        batch = collate_sessions(corpus, offsets, [0, 1, 2, 3], SPECIALS)
        together = _turn_logits(model, batch)
        for row, session in enumerate(batch.sessions):
            alone = _turn_logits(model, collate_sessions(corpus, offsets, [session], SPECIALS))
            for t, logits in enumerate(alone):
                width = logits.size(1)
                torch.testing.assert_close(together[t][row, :width], logits[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("options", VARIANTS, ids=IDS)
def test_the_memory_changes_later_turns(options):
    """The reply to the same turn depends on the turns before it: otherwise nothing is carried."""
    model = build_tiny("memory_lstm", src_vocab_size=30, tgt_vocab_size=30, **options).eval()
    a, offsets = _sessions([3], seed=3)
    b, _ = _sessions([3], seed=4)
    # Same second turn and reply, different first turn.
    swapped = TokenizedCorpus(
        *pack([b.src_ids(0).tolist(), a.src_ids(1).tolist()]), *pack([a.src_ids(1).tolist(), a.tgt_ids(1).tolist()])
    )
    with torch.no_grad():
        first = _turn_logits(model, collate_sessions(a, offsets, [0], SPECIALS))[1]
        second = _turn_logits(model, collate_sessions(swapped, offsets, [0], SPECIALS))[1]
    assert not torch.allclose(first, second, atol=1e-4)


# -- the gate ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("options", VARIANTS, ids=IDS)
def test_with_the_gate_shut_the_model_is_exactly_its_backbone(options):
    model = build_tiny("memory_lstm", **options).eval()
    backbone = build_tiny(options["backbone"], seed=7).eval()
    backbone.load_state_dict(model.backbone.state_dict())
    with torch.no_grad():
        model.memory.gate.weight.zero_()
        model.memory.gate.bias.fill_(-1e4)  # sigmoid gives exactly 0
    corpus, offsets = _sessions([4], seed=5, vocab=30)
    batch = collate_sessions(corpus, offsets, [0], SPECIALS)
    with torch.no_grad():
        for t, logits in enumerate(_turn_logits(model, batch)):
            turn = batch.turns[t]
            assert torch.equal(logits, backbone(turn.src, turn.src_lengths, turn.tgt_in))


def test_a_disabled_memory_is_exactly_the_backbone():
    model = build_tiny("memory_lstm", memory={"enabled": False}).eval()
    backbone = build_tiny("transformer", seed=7).eval()
    backbone.load_state_dict(model.backbone.state_dict())
    corpus, offsets = _sessions([3], seed=6)
    batch = collate_sessions(corpus, offsets, [0], SPECIALS)
    with torch.no_grad():
        for t, logits in enumerate(_turn_logits(model, batch)):
            turn = batch.turns[t]
            assert torch.equal(logits, backbone(turn.src, turn.src_lengths, turn.tgt_in))


# -- truncated backpropagation through the session -----------------------------------------------------------------


def _memory_grads(bptt_turns: int):
    """Backward the last turn's loss; return the gradient reaching the memory carried out of each turn."""
    model = build_tiny("memory_lstm", src_vocab_size=30, tgt_vocab_size=30)
    corpus, offsets = _sessions([4], seed=8)
    batch = collate_sessions(corpus, offsets, [0], SPECIALS)
    read_turn, memories = model.read_turn, []

    def recording(*args):
        enc, memory = read_turn(*args)
        memory.h.retain_grad()
        memories.append(memory.h)
        return enc, memory

    model.read_turn = recording
    for t, turn, enc in read_session(model, batch, bptt_turns):
        if t == len(batch.turns) - 1:
            logits = forced_logits(model.backbone, enc, turn.tgt_in, None, 1.0)
            sequence_loss(logits, turn.tgt_out, 0).loss.backward()
    return [None if m.grad is None else m.grad.abs().sum().item() for m in memories]


def test_truncated_bptt_stops_gradients_at_the_detach_point():
    through_all = _memory_grads(0)
    assert all(g is not None and g > 0 for g in through_all[:-1]), "K=0 reaches every earlier turn"
    truncated = _memory_grads(2)  # 3 turns: detached after turn 2, so the last loss reaches only turn 3's input
    assert truncated[0] is None and truncated[1] is None
    every_turn = _memory_grads(1)
    assert all(g is None for g in every_turn[:-1])


@pytest.mark.parametrize("bptt_turns", [0, 1, 2])
def test_session_loss_trains_without_a_graph_error(bptt_turns):
    model = build_tiny("memory_lstm", src_vocab_size=30, tgt_vocab_size=30)
    corpus, offsets = _sessions([5, 3, 4], seed=9)
    batch = collate_sessions(corpus, offsets, [0, 1, 2], SPECIALS)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        out = session_loss(model, batch, None, 1.0, 0, 0.0, bptt_turns)
        optimizer.step()
        losses.append(out.loss.item())
    assert losses[-1] < losses[0]
    assert int(out.n_tokens) == batch.n_tokens


def test_bptt_chunks_add_up_to_one_backward_when_nothing_is_cut():
    grads = []
    for bptt_turns in (0, 10):  # 10 > the session's 4 turns: one chunk, but a backward per chunk boundary path
        model = build_tiny("memory_lstm", src_vocab_size=30, tgt_vocab_size=30)
        corpus, offsets = _sessions([5, 3], seed=10)
        session_loss(model, collate_sessions(corpus, offsets, [0, 1], SPECIALS), None, 1.0, 0, 0.1, bptt_turns)
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1])


def test_session_loss_gradients_equal_one_backward_through_the_logits():
    """Backpropagating the output layer turn by turn (to keep no logits in the graph) changes nothing."""
    corpus, offsets = _sessions([5, 3, 4], seed=11)
    batch = collate_sessions(corpus, offsets, [0, 1, 2], SPECIALS)
    model = build_tiny("memory_lstm", src_vocab_size=30, tgt_vocab_size=30)
    out = session_loss(model, batch, None, 1.0, 0, 0.1, 0)
    deferred = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    direct = sum(
        sequence_loss(
            model.backbone.output(forced_features(model.backbone, enc, turn.tgt_in, None, 1.0)), turn.tgt_out, 0, 0.1
        ).loss
        * turn.n_tokens
        / batch.n_tokens
        for _, turn, enc in read_session(model, batch)
    )
    direct.backward()
    assert out.loss.item() == pytest.approx(direct.item(), rel=1e-6)
    for name, p in model.named_parameters():
        torch.testing.assert_close(deferred[name], p.grad, rtol=1e-5, atol=1e-7, msg=name)


# -- a task that needs the memory ----------------------------------------------------------------------------------

KEYS = list(range(4, 12))  # 8 keys: chance is 1/8
FILLER = [12, 13, 14]


def _key_sessions(n, seed):
    """Turn 1 states a key among noise, turn 2 is always the same filler, turn 3 must repeat the key: from turn 2
    alone the reply is a guess."""
    rng = random.Random(seed)
    src, tgt, offsets = [], [], [0]
    for _ in range(n):
        key = rng.choice(KEYS)
        first = [rng.randrange(15, 20) for _ in range(rng.randrange(0, 3))] + [key]
        src += [first, FILLER]
        tgt += [FILLER, [key]]
        offsets.append(offsets[-1] + 2)
    return TokenizedCorpus(*pack(src), *pack(tgt)), np.array(offsets, dtype=np.int64)


def _train_key_task(options, reset_memory: bool, steps=150):
    torch.manual_seed(0)
    model = build_tiny("memory_lstm", src_vocab_size=20, tgt_vocab_size=20, **options)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    corpus, offsets = _key_sessions(512, seed=1)
    for step in range(steps):
        sessions = np.random.default_rng(step).choice(512, 64, replace=False)
        optimizer.zero_grad()
        session_loss(model, collate_sessions(corpus, offsets, sessions, SPECIALS), None, 1.0, 0, 0.0, 0, reset_memory)
        optimizer.step()
    model.eval()
    corpus, offsets = _key_sessions(200, seed=2)
    batch = collate_sessions(corpus, offsets, range(200), SPECIALS)
    with torch.no_grad():
        for t, turn, enc in read_session(model, batch, reset_memory=reset_memory):
            if t == 1:
                logits = forced_logits(model.backbone, enc, turn.tgt_in, None, 1.0)
                return (logits[:, 0].argmax(-1) == turn.tgt_out[:, 0]).float().mean().item()


@pytest.mark.slow
@pytest.mark.parametrize("options", [VARIANTS[0], VARIANTS[3]], ids=[IDS[0], IDS[3]])
def test_a_task_that_needs_memory_is_learned_only_with_it(options):
    with_memory = _train_key_task(options, reset_memory=False)
    without = _train_key_task(options, reset_memory=True)
    assert with_memory >= 0.9, f"accuracy {with_memory:.2f} with the memory carried"
    assert without <= 0.35, f"accuracy {without:.2f} with the memory reset at every turn (chance 0.125)"


# -- dialogue corpora and the trainer --------------------------------------------------------------------------------


def _dialogue_file(path, n, seed):
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        turns = [
            " ".join(rng.choice("abcdefgh") for _ in range(rng.randrange(1, 5))) for _ in range(rng.randrange(2, 6))
        ]
        lines.append("".join(f"{turn} __eou__ " for turn in turns).strip())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _dialogue_cfg(tmp_path, *overrides):
    tmp_path.mkdir(parents=True, exist_ok=True)
    files = {
        split: _dialogue_file(tmp_path / f"{split}.txt", n, i)
        for i, (split, n) in enumerate([("train", 60), ("dev", 8), ("test", 8)])
    }
    return compose_config(
        "train",
        [
            "data=dailydialog",
            *(f"data.{split}={path}" for split, path in files.items()),
            "data.tokenizer.type=bpe",
            "data.tokenizer.vocab_size=24",
            "data.tokenizer.byte_fallback=false",
            *tiny_model("memory_lstm"),
            f"paths.log_dir={tmp_path}/outputs",
            "trainer.progress_bar=false",
            "trainer.max_steps=3",
            "trainer.max_tokens=200",
            "trainer.dev_max_sentences=10",
            *overrides,
        ],
    )


def test_read_dialogues_applies_its_rules_and_counts_them(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("Hi . __eou__ Hello ! __eou__\n\nalone __eou__\na __eou__  __eou__ b __eou__ c\n", encoding="utf-8")
    sessions, counts = read_dialogues(path)
    assert sessions == [["Hi .", "Hello !"], ["a", "b", "c"]]
    assert counts == {"blank_lines": 1, "empty_turns": 1, "short_sessions": 1}
    path.write_text("Hi . __eou__ Hello ! __eou__\nno separator here\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"d\.txt:2: no '__eou__'"):
        read_dialogues(path)


def test_prepared_dialogue_pairs_are_consecutive_turns_of_each_session(tmp_path):
    cfg = _dialogue_cfg(tmp_path)
    data = prepare_data(cfg.data, log=lambda _: None)
    sessions, _ = read_dialogues(cfg.data.dev)
    offsets, texts = data.sessions["dev"], data.texts["dev"]
    assert len(offsets) == len(sessions) + 1
    for s, turns in enumerate(sessions):
        pairs = texts[offsets[s] : offsets[s + 1]]
        assert [(p.src, p.tgt) for p in pairs] == list(itertools.pairwise(turns))


def test_memory_lstm_refuses_sentence_pairs(toy_cfg):
    with pytest.raises(Exception, match="data=dailydialog"):
        Trainer(toy_cfg("trainer.max_steps=1", model="memory_lstm"), "unused")


def test_frozen_modules_stay_bit_identical_in_training(tmp_path, caplog):
    cfg = _dialogue_cfg(tmp_path, "+optim.param_groups={backbone:frozen}")
    trainer = Trainer(cfg, tmp_path / "run")
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    with caplog.at_level("INFO", logger="nmt.train"):
        trainer.fit()
    after = dict(trainer.model.named_parameters())
    # fit() reloads best.pt for the test: whichever step it holds, the backbone never moved.
    assert all(torch.equal(after[n], before[n]) for n in before if n.startswith("backbone."))
    assert any(not torch.equal(after[n], before[n]) for n in before if n.startswith("memory."))
    assert "backbone: frozen" in caplog.text
    assert "memory carried vs reset" in caplog.text


def test_the_two_stage_recipe_composes_both_stages(tmp_path):
    first = compose_config("train", ["experiment=memory_two_stage"])
    assert first.model.memory.enabled is False and dict(first.optim.param_groups) == {"memory": "frozen"}
    second = compose_config("train", ["experiment=memory_two_stage", "memory_stage=memory", "trainer.init_from=x"])
    assert second.model.memory.enabled is True and dict(second.optim.param_groups) == {"backbone": "frozen"}
    assert second.trainer.init_from == "x"


def test_init_from_loads_the_weights_and_refuses_another_architecture(tmp_path):
    Trainer(_dialogue_cfg(tmp_path / "a"), tmp_path / "a" / "run").fit()
    best = tmp_path / "a" / "run" / "checkpoints" / "best.pt"
    stage2 = Trainer(_dialogue_cfg(tmp_path / "a", f"trainer.init_from={best}"), tmp_path / "b")
    saved = torch.load(best, weights_only=True)["model"]
    assert all(torch.equal(stage2.model.state_dict()[k], v) for k, v in saved.items())
    with pytest.raises(CheckpointError, match="do not fit"):
        Trainer(
            _dialogue_cfg(tmp_path / "a", f"trainer.init_from={best}", "model.memory.hidden_size=8"), tmp_path / "c"
        )
