"""Learning-rate schedules follow their formulas; gradient clipping is clip_grad_norm_'s."""

from __future__ import annotations

import math

import pytest
import torch

from nmt.training.optim import clip_gradients, lr_factor


def _params_with_grads(seed: int) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in ((30, 8), (8,), (5, 5))]
    for p in params:
        p.grad = torch.randn(p.shape, generator=generator)
    return params


@pytest.mark.parametrize("max_norm", [0.5, 1e3, math.inf])
def test_clip_gradients_equals_clip_grad_norm_and_leaves_unclipped_gradients_alone(max_norm):
    ours, reference = _params_with_grads(0), _params_with_grads(0)
    versions = [p.grad._version for p in ours]
    norm = clip_gradients(ours, max_norm)
    expected = torch.nn.utils.clip_grad_norm_(reference, max_norm)
    assert norm.item() == expected.item()
    for p, q in zip(ours, reference, strict=True):
        assert torch.equal(p.grad, q.grad)
    clipped = max_norm < norm
    assert clipped == (max_norm == 0.5)
    assert all((p.grad._version > v) == clipped for p, v in zip(ours, versions, strict=True))


def test_linear_warmup_then_inverse_sqrt():
    assert lr_factor(0, "inverse_sqrt", 100, 1000, 0.0) == pytest.approx(0.01)
    assert lr_factor(99, "inverse_sqrt", 100, 1000, 0.0) == pytest.approx(1.0)
    assert lr_factor(399, "inverse_sqrt", 100, 1000, 0.0) == pytest.approx(0.5)


def test_noam_matches_the_paper_formula_and_peaks_at_the_end_of_warmup():
    d, warmup = 512, 4000
    for step in (0, 999, 3999, 15999):
        n = step + 1
        assert lr_factor(step, "noam", warmup, 0, 0.0, d) == pytest.approx(d**-0.5 * min(n**-0.5, n * warmup**-1.5))
    peak = lr_factor(warmup - 1, "noam", warmup, 0, 0.0, d)
    assert peak > lr_factor(warmup - 100, "noam", warmup, 0, 0.0, d)
    assert peak > lr_factor(warmup + 100, "noam", warmup, 0, 0.0, d)


def test_linear_and_cosine_decay_reach_min_lr_at_the_end():
    assert lr_factor(1000, "linear", 0, 1000, 0.1) == pytest.approx(0.1)
    assert lr_factor(500, "linear", 0, 1000, 0.0) == pytest.approx(0.5)
    assert lr_factor(1000, "cosine", 0, 1000, 0.1) == pytest.approx(0.1)
    assert lr_factor(500, "cosine", 0, 1000, 0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)))
    # A time budget half spent at step 100 of 1000: the decay follows the budget, whichever is further.
    assert lr_factor(100, "linear", 0, 1000, 0.0, spent=0.5) == pytest.approx(0.5)
    assert lr_factor(800, "linear", 0, 1000, 0.0, spent=0.5) == pytest.approx(0.2)
    assert lr_factor(99, "inverse_sqrt", 100, 1000, 0.0, spent=0.5) == pytest.approx(1.0)


def test_unknown_schedule_is_an_error():
    with pytest.raises(ValueError, match=r"optim\.scheduler=warp"):
        lr_factor(0, "warp", 0, 10, 0.0)
