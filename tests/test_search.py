"""Greedy and beam search: beam 1 equals greedy, outputs respect the length limit, decoding always stops."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

from nmt.config import LSTMAttnConfig
from nmt.data import SpecialIds
from nmt.decoding import beam_search, greedy_search
from nmt.decoding.search import output_limits
from nmt.models import build_model
from nmt.models.base import EncoderOut, LSTMState

SPECIALS = SpecialIds(pad=0, unk=1, bos=2, eos=3)


def _model(seed: int):
    cfg = OmegaConf.structured(LSTMAttnConfig(embed_dim=16, hidden_size=32, dropout=0.0))
    torch.manual_seed(seed)
    return build_model(cfg, src_vocab_size=25, tgt_vocab_size=25, pad_id=SPECIALS.pad).eval()


def _sources(seed: int):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, 25, (6, 8), generator=g)
    lengths = torch.tensor([8, 7, 5, 3, 1, 6])
    for i, n in enumerate(lengths):
        src[i, n:] = SPECIALS.pad
    return src, lengths


def test_beam_of_one_equals_greedy():
    for seed in range(5):
        model, (src, lengths) = _model(seed), _sources(seed)
        greedy = greedy_search(model, src, lengths, SPECIALS, 1.5, 4)
        beam = beam_search(model, src, lengths, SPECIALS, beam_size=1, alpha=1.0, max_len_a=1.5, max_len_b=4)
        assert beam == greedy


def test_outputs_never_exceed_the_length_limit_and_contain_no_specials():
    # An untrained model rarely emits EOS, so the limit is what stops it.
    for seed in range(3):
        model, (src, lengths) = _model(seed), _sources(seed)
        limits = output_limits(lengths, 0.5, 2).tolist()
        for k in (1, 3, 5):
            hyps = beam_search(model, src, lengths, SPECIALS, beam_size=k, max_len_a=0.5, max_len_b=2)
            if k == 1:
                hyps = greedy_search(model, src, lengths, SPECIALS, 0.5, 2)
            for hyp, limit in zip(hyps, limits, strict=True):
                assert len(hyp) <= limit
                assert not {SPECIALS.pad, SPECIALS.bos, SPECIALS.eos} & set(hyp)


class _BigramModel:
    """A model whose next-token distribution depends only on the previous token: a (vocab, vocab) table."""

    def __init__(self, probs):
        self.table = torch.tensor(probs).clamp(min=1e-9).log()

    def eval(self):
        return self

    def encode(self, src, src_lengths):
        return EncoderOut(torch.zeros(src.size(0), 1, 1), torch.ones(src.size(0), 1, dtype=torch.bool))

    def init_state(self, enc):
        return LSTMState(torch.zeros(1, enc.memory.size(0), 1), torch.zeros(1, enc.memory.size(0), 1))

    def decode_step(self, prev_tokens, state, enc):
        return self.table[prev_tokens], state, torch.ones(prev_tokens.size(0), 1)


def test_beam_search_escapes_the_greedy_trap():
    # ids: pad 0, unk 1, bos 2, eos 3, a 4, b 5. Greedy takes a (0.6) and then wanders; "b" then EOS has
    # probability 0.4, more than any path through "a" (at most 0.6 * 0.35).
    probs = [[0.0] * 6 for _ in range(6)]
    probs[2][4], probs[2][5] = 0.6, 0.4
    probs[4][3], probs[4][4], probs[4][5] = 0.32, 0.35, 0.33
    probs[5][3] = 1.0
    model = _BigramModel(probs)
    src, lengths = torch.full((2, 3), 7), torch.tensor([3, 3])
    greedy = greedy_search(model, src, lengths, SPECIALS, 1.0, 2)
    beam = beam_search(model, src, lengths, SPECIALS, beam_size=3, alpha=0.0, max_len_a=1.0, max_len_b=2)
    assert greedy == [[4, 4, 4, 4, 4]] * 2, "greedy follows the locally best token up to the length limit"
    assert beam == [[5]] * 2
