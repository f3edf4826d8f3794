"""Greedy and beam search: beam 1 equals greedy for every model, limits hold, n-best, penalties, blocking."""

from __future__ import annotations

import pytest
import torch

from nmt.config import SearchConfig
from nmt.data import SpecialIds
from nmt.decoding import beam_search, greedy_search
from nmt.decoding.search import output_limits
from nmt.models import MODELS
from nmt.models.base import EncoderOut, LSTMState
from tests.conftest import build_tiny

SPECIALS = SpecialIds(pad=0, unk=1, bos=2, eos=3)


def _sources(seed: int):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, 25, (6, 8), generator=g)
    lengths = torch.tensor([8, 7, 5, 3, 1, 6])
    for i, n in enumerate(lengths):
        src[i, n:] = SPECIALS.pad
    return src, lengths


# Every model, and the rnn with an LSTM cell too: its state is an (h, c) pair that beams must reorder together.
SEARCHED = [(name, {}) for name in sorted(MODELS)] + [("rnn", {"cell": "lstm"})]
SEARCHED_IDS = [name + "".join(f"-{v}" for v in options.values()) for name, options in SEARCHED]


def _tokens(hyps):
    return [[h.tokens for h in nbest] for nbest in hyps]


@pytest.mark.parametrize(("name", "options"), SEARCHED, ids=SEARCHED_IDS)
def test_beam_of_one_equals_greedy(name, options):
    # With alpha 0 a finished hypothesis can never be beaten by its runner-up, so beam 1 is exactly greedy.
    cfg = SearchConfig(beam_size=1, length_penalty=0.0, max_len_a=1.5, max_len_b=4)
    for seed in range(3):
        model = build_tiny(name, src_vocab_size=25, tgt_vocab_size=25, seed=seed, **options)
        src, lengths = _sources(seed)
        greedy = greedy_search(model, src, lengths, SPECIALS, cfg)
        beam = beam_search(model, src, lengths, SPECIALS, cfg)
        assert _tokens(beam) == _tokens(greedy)
        for g, b in zip(greedy, beam, strict=True):
            assert g[0].score == pytest.approx(b[0].score, abs=1e-4)


@pytest.mark.parametrize(("name", "options"), SEARCHED, ids=SEARCHED_IDS)
def test_outputs_never_exceed_the_length_limit_and_contain_no_specials(name, options):
    # An untrained model rarely emits EOS, so the limit is what stops it.
    model, (src, lengths) = build_tiny(name, src_vocab_size=25, tgt_vocab_size=25, seed=1, **options), _sources(1)
    limits = output_limits(lengths, 0.5, 2).tolist()
    for k in (1, 3, 5):
        cfg = SearchConfig(beam_size=k, nbest=k, max_len_a=0.5, max_len_b=2)
        search = greedy_search if k == 1 else beam_search
        for nbest, limit in zip(search(model, src, lengths, SPECIALS, cfg), limits, strict=True):
            for hyp in nbest:
                assert len(hyp.tokens) <= limit
                assert not {SPECIALS.pad, SPECIALS.bos, SPECIALS.eos} & set(hyp.tokens)


@pytest.mark.parametrize(("name", "options"), SEARCHED, ids=SEARCHED_IDS)
def test_nbest_gives_n_distinct_hypotheses_with_sorted_scores(name, options):
    model, (src, lengths) = build_tiny(name, src_vocab_size=25, tgt_vocab_size=25, seed=2, **options), _sources(2)
    cfg = SearchConfig(beam_size=5, nbest=4, max_len_a=1.0, max_len_b=3)
    for nbest in beam_search(model, src, lengths, SPECIALS, cfg):
        assert len(nbest) == 4
        assert len({tuple(h.tokens) for h in nbest}) == 4
        scores = [h.score for h in nbest]
        assert scores == sorted(scores, reverse=True)


def test_nbest_larger_than_the_beam_is_an_error():
    model, (src, lengths) = build_tiny("lstm_attn", src_vocab_size=25, tgt_vocab_size=25), _sources(0)
    with pytest.raises(ValueError, match="nbest=6"):
        beam_search(model, src, lengths, SPECIALS, SearchConfig(beam_size=5, nbest=6))


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
        return self.table[prev_tokens], state, None


def _table(rows: dict[int, dict[int, float]]) -> list[list[float]]:
    probs = [[0.0] * 7 for _ in range(7)]
    for prev, nexts in rows.items():
        for token, p in nexts.items():
            probs[prev][token] = p
    return probs


# ids: pad 0, unk 1, bos 2, eos 3, a 4, b 5, c 6
SRC, LENGTHS = torch.full((2, 3), 7), torch.tensor([3, 3])


def test_beam_search_escapes_the_greedy_trap():
    # Greedy takes "a" (0.6) and then wanders; "b" then EOS has probability 0.4, more than any path through "a".
    model = _BigramModel(_table({2: {4: 0.6, 5: 0.4}, 4: {3: 0.32, 4: 0.35, 5: 0.33}, 5: {3: 1.0}}))
    cfg = SearchConfig(beam_size=3, length_penalty=0.0, max_len_a=1.0, max_len_b=2)
    assert _tokens(greedy_search(model, SRC, LENGTHS, SPECIALS, cfg)) == [[[4, 4, 4, 4, 4]]] * 2
    assert _tokens(beam_search(model, SRC, LENGTHS, SPECIALS, cfg)) == [[[5]]] * 2


def test_a_longer_hypothesis_that_can_still_win_is_waited_for():
    # Step 1 ranks "a EOS" (log 0.275) and "b EOS" (log 0.27) above "a c" (log 0.2585): with beam 2 both end,
    # so a search that stops at k finished returns "a". But with alpha 2, "a c" normalised at its earliest
    # finishing length (3) scores -1.353 / 1.778 = -0.76 > -0.95, so the search goes on and "a c EOS" wins.
    table = _table({2: {4: 0.55, 5: 0.45}, 4: {3: 0.5, 6: 0.47, 4: 0.03}, 5: {3: 0.6, 6: 0.4}, 6: {3: 1.0}})
    cfg = SearchConfig(beam_size=2, nbest=2, length_penalty=2.0, max_len_a=1.0, max_len_b=2)
    nbest = beam_search(_BigramModel(table), SRC, LENGTHS, SPECIALS, cfg)[0]
    assert [h.tokens for h in nbest] == [[4, 6], [4]]
    assert nbest[0].score == pytest.approx(torch.tensor(0.2585).log().item() / (8 / 6) ** 2, abs=1e-5)


def test_repetition_penalty_and_ngram_blocking_stop_a_loop():
    loop = _BigramModel(_table({2: {4: 0.9, 5: 0.1}, 4: {4: 0.5, 5: 0.3, 3: 0.2}, 5: {4: 0.6, 3: 0.4}}))
    plain = SearchConfig(beam_size=1, max_len_a=1.0, max_len_b=3)
    assert _tokens(greedy_search(loop, SRC, LENGTHS, SPECIALS, plain))[0] == [[4, 4, 4, 4, 4, 4]]
    penalised = SearchConfig(beam_size=1, max_len_a=1.0, max_len_b=3, repetition_penalty=3.0)
    out = _tokens(greedy_search(loop, SRC, LENGTHS, SPECIALS, penalised))[0][0]
    assert out[:2] == [4, 5] and len(out) < 6
    blocked = SearchConfig(beam_size=2, max_len_a=1.0, max_len_b=3, no_repeat_ngram_size=2)
    for hyp in beam_search(loop, SRC, LENGTHS, SPECIALS, blocked)[0]:
        bigrams = list(zip(hyp.tokens, hyp.tokens[1:], strict=False))
        assert len(bigrams) == len(set(bigrams)), hyp


@pytest.mark.parametrize("name", sorted(MODELS))
def test_stopping_at_the_first_best_eos_is_exact_without_length_penalty(name):
    # With alpha 0 scores only fall as hypotheses grow: once a step's best candidate is EOS nothing can beat it,
    # so top_eos finds the same best hypothesis as the bound rule, in no more steps.
    for seed in range(3):
        model, (src, lengths) = build_tiny(name, src_vocab_size=25, tgt_vocab_size=25, seed=seed), _sources(seed)
        best = {}
        for stop in ("bound", "top_eos"):
            cfg = SearchConfig(beam_size=4, length_penalty=0.0, max_len_a=1.5, max_len_b=4, stop=stop)
            best[stop] = [nbest[0] for nbest in beam_search(model, src, lengths, SPECIALS, cfg)]
        assert [h.tokens for h in best["top_eos"]] == [h.tokens for h in best["bound"]]
        assert [h.score for h in best["top_eos"]] == pytest.approx([h.score for h in best["bound"]], abs=1e-4)


def test_each_stopping_rule_stops_where_it_says():
    def best(table, stop, alpha):
        cfg = SearchConfig(beam_size=2, length_penalty=alpha, max_len_a=1.0, max_len_b=2, stop=stop)
        return _tokens(beam_search(_BigramModel(table), SRC, LENGTHS, SPECIALS, cfg))[0][0]

    # bos -> EOS 0.4 | a 0.35 | b 0.25, then a and b end. Step 0's best candidate is EOS: top_eos returns the empty
    # output. The others wait for a second finished one, "a", which wins with alpha 1: log 0.35 / (7/6) = -0.90
    # against log 0.4 / 1 = -0.92.
    early = _table({2: {3: 0.4, 4: 0.35, 5: 0.25}, 4: {3: 1.0}, 5: {3: 1.0}})
    assert [best(early, stop, 1.0) for stop in ("top_eos", "full_beam", "bound")] == [[], [4], [4]]
    # The table of the test above: after step 1 two hypotheses have ended, so full_beam stops with "a", while the
    # bound rule waits for "a c EOS".
    late = _table({2: {4: 0.55, 5: 0.45}, 4: {3: 0.5, 6: 0.47, 4: 0.03}, 5: {3: 0.6, 6: 0.4}, 6: {3: 1.0}})
    assert [best(late, stop, 2.0) for stop in ("full_beam", "bound")] == [[4], [4, 6]]


def test_an_unknown_stopping_rule_is_a_one_line_error():
    model = _BigramModel(_table({2: {3: 1.0}}))
    with pytest.raises(ValueError, match=r"search\.stop=first: not a stopping rule"):
        beam_search(model, SRC, LENGTHS, SPECIALS, SearchConfig(beam_size=2, stop="first"))
