"""Dialogue sessions through a memory-LSTM: the memory carried turn to turn, and the session's loss with
(truncated) backpropagation through time."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from nmt.data.batching import Batch, SessionBatch
from nmt.models.base import EncoderOut, LSTMState
from nmt.training.loss import LossOut, sequence_loss
from nmt.training.teacher_forcing import forced_features


def _carry(memory: LSTMState, updated: LSTMState) -> LSTMState:
    """The batch's memory after a turn that only its first k sessions (those still running) took part in."""
    k = updated.h.size(1)
    return LSTMState(torch.cat([updated.h, memory.h[:, k:]], 1), torch.cat([updated.c, memory.c[:, k:]], 1))


def read_session(
    model, batch: SessionBatch, bptt_turns: int = 0, reset_memory: bool = False
) -> Iterator[tuple[int, Batch, EncoderOut]]:
    """Yield (t, turn t's pair batch, its EncoderOut) for every turn position, the memory carried between them.

    Every session starts from an empty memory. Sessions that have ended take no part in later turns (they are
    the rows past turns[t]'s batch size), so their state stays as they left it. With bptt_turns=K > 0 the memory
    is cut from the graph after every K turns: a caller that calls backward() on turn t's loss before asking for
    turn t + 1 frees each K-turn window's graph. reset_memory starts every turn from an empty memory (the
    ablation that measures what the memory is worth).
    """
    device = batch.turns[0].src.device
    memory = model.initial_memory(len(batch.sessions), device)
    for t, turn in enumerate(batch.turns):
        if reset_memory:
            memory = model.initial_memory(len(batch.sessions), device)
        running = torch.arange(turn.src.size(0), device=device)
        enc, updated = model.read_turn(turn.src, turn.src_lengths, memory.reorder(running))
        memory = _carry(memory, updated)
        yield t, turn, enc
        if bptt_turns and (t + 1) % bptt_turns == 0:
            memory = memory.detach()


def session_loss(
    model,
    batch: SessionBatch,
    tf_cfg,
    ratio: float,
    pad_id: int,
    label_smoothing: float,
    bptt_turns: int,
    reset_memory: bool = False,
    loss_scale: float = 1.0,
) -> LossOut:
    """Backpropagate the session batch's loss (the sum over turns of the smoothed loss, divided by the batch's
    target tokens) and return it as a LossOut with a detached loss, for the logs.

    bptt_turns=0: one backward through the whole session, after the last turn (so no graph is ever walked twice).
    bptt_turns=K: a backward after every K turns, the memory detached there; the gradients add up to the
    truncated-BPTT gradient of the whole session. reset_memory: every turn from an empty memory (an ablation).
    loss_scale multiplies what is backpropagated (gradient accumulation, fp16 loss scaling), not what is returned.

    Each turn's (tokens, vocab) logits would dwarf the rest of a session's graph, so the output layer and the loss
    are backpropagated at once, turn by turn, and only the gradient at the decoder features waits for the
    session's backward: the same gradients, with a graph of (tokens, dim) features instead of logits.
    """
    pending: list[tuple[torch.Tensor, torch.Tensor]] = []  # (features, d loss / d features) since the last backward
    total = torch.zeros((), device=batch.turns[0].src.device)
    nll, tokens, correct = total.clone(), total.long(), total.long()
    last = len(batch.turns) - 1
    for t, turn, enc in read_session(model, batch, bptt_turns, reset_memory):
        features = forced_features(model.backbone, enc, turn.tgt_in, tf_cfg, ratio)
        cut = features.detach().requires_grad_()
        out = sequence_loss(model.backbone.output(cut), turn.tgt_out, pad_id, label_smoothing)
        weighted = out.loss * (turn.n_tokens / batch.n_tokens)
        (weighted * loss_scale).backward()
        pending.append((features, cut.grad))
        total += weighted.detach()
        nll, tokens, correct = nll + out.nll_sum, tokens + out.n_tokens, correct + out.n_correct
        if t == last or (bptt_turns and (t + 1) % bptt_turns == 0):
            torch.autograd.backward([f for f, _ in pending], [g for _, g in pending])
            pending = []
    return LossOut(total, nll, tokens, correct)
