"""Translating many sentences: batches decoded several at a time on a CPU give each batch's own outputs, in order."""

from __future__ import annotations

import threading

import pytest
import torch

from nmt.config import SearchConfig
from nmt.data import SpecialIds
from nmt.decoding import translate as translate_module
from nmt.decoding.search import check_search
from nmt.decoding.translate import MAX_AUTO_PARALLEL, parallel_batches, translate_ids
from nmt.errors import UserError
from nmt.models import MODELS
from tests.conftest import build_tiny

SPECIALS = SpecialIds(pad=0, unk=1, bos=2, eos=3)
CPU = torch.device("cpu")


@pytest.fixture
def torch_threads():
    """Set torch's thread count for a test; restored after it."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def _sources(n: int, seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 9, (n,), generator=g).tolist()
    return [torch.randint(4, 25, (length,), generator=g).tolist() for length in lengths]


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("beam", [1, 3])
def test_parallel_batches_give_each_batch_its_own_outputs_in_order(name, beam, torch_threads):
    # One thread per batch either way, so the arithmetic is the same and the outputs must be equal exactly.
    model = build_tiny(name, src_vocab_size=25, tgt_vocab_size=25, seed=3)
    sources = _sources(11, seed=3)
    cfg = SearchConfig(beam_size=beam, nbest=beam, max_len_a=1.0, max_len_b=3, batch_size=2)
    torch_threads(1)
    alone = translate_ids(model, sources, SPECIALS, SearchConfig(**{**vars(cfg), "parallel_batches": 1}), CPU)
    torch_threads(2)
    together = translate_ids(model, sources, SPECIALS, SearchConfig(**{**vars(cfg), "parallel_batches": 2}), CPU)
    assert together == alone
    assert [len(nbest) for nbest in together] == [beam] * len(sources)


def test_parallel_batches_run_at_the_same_time_on_their_share_of_the_threads(monkeypatch, torch_threads):
    # Each decoding waits at a barrier for a second one: batches decoded one after another would break it.
    barrier, seen = threading.Barrier(2, timeout=30), []
    real_search = translate_module.search

    def search_at_the_barrier(*args, **kwargs):
        seen.append((threading.get_ident(), torch.get_num_threads()))
        barrier.wait()
        return real_search(*args, **kwargs)

    monkeypatch.setattr(translate_module, "search", search_at_the_barrier)
    torch_threads(4)
    model = build_tiny("transformer", src_vocab_size=25, tgt_vocab_size=25)
    cfg = SearchConfig(max_len_b=2, batch_size=3, parallel_batches=2)
    translate_ids(model, _sources(12, seed=0), SPECIALS, cfg, CPU)
    assert len(seen) == 4
    assert len({thread for thread, _ in seen}) == 2
    assert {threads for _, threads in seen} == {2}  # 4 threads shared by 2 batches
    assert torch.get_num_threads() == 4  # restored for the caller


def test_how_many_batches_run_at_once(torch_threads):
    torch_threads(2)
    assert parallel_batches(SearchConfig(), CPU, n_batches=16) == 2
    assert parallel_batches(SearchConfig(), CPU, n_batches=1) == 1
    assert parallel_batches(SearchConfig(parallel_batches=1), CPU, n_batches=16) == 1
    assert parallel_batches(SearchConfig(parallel_batches=8), CPU, n_batches=16) == 2  # no more than the threads
    assert parallel_batches(SearchConfig(), torch.device("cuda"), n_batches=16) == 1
    torch_threads(MAX_AUTO_PARALLEL * 2)
    assert parallel_batches(SearchConfig(), CPU, n_batches=16) == MAX_AUTO_PARALLEL


def test_a_negative_number_of_parallel_batches_is_a_one_line_error():
    with pytest.raises(UserError, match=r"parallel_batches=-1: give the batches to decode at once"):
        check_search(SearchConfig(parallel_batches=-1))
