"""Transformer specifics: the decoding cache, source padding, tied embeddings, their init, pre/post-norm training.

What every model must do (gradients, step decoding equal to teacher forcing, padding rows, search) is in
test_model.py and test_search.py."""

from __future__ import annotations

import pytest
import torch

from nmt.data import SpecialIds
from nmt.training.loss import sequence_loss
from tests.conftest import build_tiny, padded_batch

SPECIALS = SpecialIds(pad=0, unk=1, bos=2, eos=3)
PAD = SPECIALS.pad
SETTINGS = [(norm, positions) for norm in ("pre", "post") for positions in ("sinusoidal", "learned")]


def test_a_step_runs_only_the_new_token_and_equals_recomputing_the_prefix():
    model = build_tiny(
        "transformer",
    ).eval()
    src, lengths, tgt = padded_batch()
    query_lengths = []
    # Counts the target positions that the first decoder layer computes queries for.
    model.decoder[0].self_attn.query.register_forward_hook(lambda m, x, out: query_lengths.append(out.size(1)))
    with torch.no_grad():
        enc = model.encode(src, lengths)
        state = model.init_state(enc)
        for t in range(tgt.size(1)):
            query_lengths.clear()
            log_probs, state, _ = model.decode_step(tgt[:, t], state, enc)
            assert query_lengths == [1], "a step must not re-run the prefix"
            shape = (4, model.heads, t + 1, model.d_model // model.heads)
            assert state.steps == t + 1 and all(k.shape == shape for k in state.keys + state.values)
            prefix = torch.log_softmax(model(src, lengths, tgt[:, : t + 1])[:, -1], dim=-1)
            torch.testing.assert_close(log_probs, prefix, rtol=1e-5, atol=1e-5)


def test_source_padding_does_not_change_the_real_tokens():
    model = build_tiny(
        "transformer",
    ).eval()
    alone = torch.tensor([[5, 9, 14, 7, 22]])
    batch = torch.full((2, 9), PAD)
    batch[0] = torch.randint(4, 30, (9,))
    batch[1, :5] = alone[0]
    prev = torch.tensor([[2, 8, 31, 17], [2, 8, 31, 17]])
    with torch.no_grad():
        enc_alone = model.encode(alone, torch.tensor([5]))
        enc_batch = model.encode(batch, torch.tensor([9, 5]))
        torch.testing.assert_close(enc_batch.memory[1, :5], enc_alone.memory[0], rtol=1e-5, atol=1e-5)
        state_alone, state_batch = model.init_state(enc_alone), model.init_state(enc_batch)
        for t in range(prev.size(1)):
            log_probs_alone, state_alone, _ = model.decode_step(prev[:1, t], state_alone, enc_alone)
            log_probs_batch, state_batch, _ = model.decode_step(prev[:, t], state_batch, enc_batch)
            torch.testing.assert_close(log_probs_batch[1], log_probs_alone[0], rtol=1e-5, atol=1e-5)


def test_shared_embeddings_are_one_matrix_only_with_a_joint_vocabulary():
    joint = build_tiny("transformer", src_vocab_size=40, joint_vocab=True)
    pointers = {m.weight.data_ptr() for m in (joint.src_embed, joint.tgt_embed, joint.output)}
    assert len(pointers) == 1
    separate = build_tiny("transformer", src_vocab_size=40, joint_vocab=False)
    assert separate.src_embed.weight.data_ptr() != separate.tgt_embed.weight.data_ptr()
    assert separate.tgt_embed.weight.data_ptr() == separate.output.weight.data_ptr()
    untied = build_tiny("transformer", src_vocab_size=40, joint_vocab=True, share_embeddings=False)
    assert len({m.weight.data_ptr() for m in (untied.src_embed, untied.tgt_embed, untied.output)}) == 3


def test_embeddings_start_at_the_transformer_scale_with_zero_padding():
    model = build_tiny("transformer", positions="learned", d_model=64, heads=4)
    for embedding in (model.src_embed, model.tgt_embed, model.positions):
        assert abs(embedding.weight.std().item() - 64**-0.5) < 0.2 * 64**-0.5
    assert torch.all(model.src_embed.weight[PAD] == 0) and torch.all(model.tgt_embed.weight[PAD] == 0)


def _copy_batch(g, size):
    """Random sequences of ids 4..19, lengths 3..7; the target is the source. Returns src, lengths, tgt_in, tgt_out."""
    lengths = torch.randint(3, 8, (size,), generator=g)
    src = torch.full((size, 7), PAD)
    tgt_in = torch.full((size, 8), PAD)
    tgt_out = torch.full((size, 8), PAD)
    for i, n in enumerate(lengths.tolist()):
        seq = torch.randint(4, 20, (n,), generator=g)
        src[i, :n] = seq
        tgt_in[i, 0], tgt_in[i, 1 : n + 1] = SPECIALS.bos, seq
        tgt_out[i, :n], tgt_out[i, n] = seq, SPECIALS.eos
    return src, lengths, tgt_in, tgt_out


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["pre", "post"])
def test_learns_to_copy(norm):
    model = build_tiny("transformer", src_vocab_size=20, tgt_vocab_size=20, joint_vocab=True, norm=norm)
    g = torch.Generator().manual_seed(0)
    held_out = _copy_batch(g, 64)

    def held_out_loss():
        model.eval()
        with torch.no_grad():
            src, lengths, tgt_in, tgt_out = held_out
            loss = sequence_loss(model(src, lengths, tgt_in), tgt_out, PAD).loss.item()
        model.train()
        return loss

    initial = held_out_loss()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(300):
        src, lengths, tgt_in, tgt_out = _copy_batch(g, 32)
        optimizer.zero_grad()
        sequence_loss(model(src, lengths, tgt_in), tgt_out, PAD).loss.backward()
        optimizer.step()
    assert held_out_loss() < 0.3 * initial


def test_bad_settings_are_errors():
    with pytest.raises(ValueError, match=r"'sandwich', expected one of \[pre, post\]"):
        build_tiny("transformer", norm="sandwich")
    with pytest.raises(ValueError, match="heads"):
        build_tiny("transformer", heads=3)


def test_learned_positions_refuse_a_sequence_longer_than_they_cover():
    from nmt.errors import UserError

    model = build_tiny("transformer", positions="learned", max_positions=8).eval()
    with pytest.raises(UserError, match="12 tokens is longer than the 8 learned positions"):
        model.encode(torch.randint(4, 30, (1, 12)), torch.tensor([12]))
