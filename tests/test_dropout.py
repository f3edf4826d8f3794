"""The fast CPU dropout (nmt/models/dropout.py): its rate, its scaling, its gradient, its seeding."""

from __future__ import annotations

import pytest
import torch

from nmt.models.dropout import Dropout, dropout


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_drops_a_fraction_p_and_scales_the_rest(p):
    torch.manual_seed(0)
    x = torch.ones(1000, 1001)  # an odd count: the mask's four words per draw must not leave a gap
    y = dropout(x, p, training=True)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - p) < 0.003  # 1M draws: the standard error is below 0.0005
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / (1 - p)))
    # Neither rows nor columns are correlated: each row and each column drops about p of its elements.
    assert (y == 0).float().mean(1).std() < 0.03 and (y == 0).float().mean(0).std() < 0.03


def test_the_gradient_flows_through_kept_elements_only():
    torch.manual_seed(1)
    x = torch.randn(37, 53, requires_grad=True)
    y = dropout(x, 0.2, training=True)
    y.sum().backward()
    assert torch.equal(x.grad, (y != 0).float() / 0.8)


def test_identity_when_evaluating_or_at_zero_and_seeded_when_training():
    x = torch.randn(8, 16)
    layer = Dropout(0.5).eval()
    assert layer(x) is x and dropout(x, 0.0, training=True) is x
    layer.train()
    torch.manual_seed(3)
    first = layer(x)
    torch.manual_seed(3)
    assert torch.equal(first, layer(x))
    assert not torch.equal(first, layer(x))


def test_keeps_the_input_dtype():
    assert dropout(torch.ones(4, 4, dtype=torch.bfloat16), 0.5, training=True).dtype == torch.bfloat16
