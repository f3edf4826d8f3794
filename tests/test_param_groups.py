"""optim.param_groups: per-module lr multipliers and freezing, first matching pattern wins."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from nmt.config import OptimConfig
from nmt.errors import UserError
from nmt.training.optim import apply_param_groups, build_optimizer, build_scheduler, describe_param_groups
from tests.conftest import build_tiny, padded_batch


class Tiny(nn.Module):
    """backbone -> memory -> head, so freezing `memory` still lets gradients reach `backbone`."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8))
        self.memory = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(torch.tanh(self.memory(self.backbone(x))))


def optim_cfg(param_groups=None, **settings):
    return OmegaConf.structured(OptimConfig(param_groups=param_groups or {}, **settings))


def train(model, optimizer, steps=5):
    torch.manual_seed(1)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        model(torch.randn(6, 4)).pow(2).mean().backward()
        optimizer.step()


def optimized(optimizer):
    return {id(p) for group in optimizer.param_groups for p in group["params"]}


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_frozen_parameters_stay_bit_identical_under_weight_decay(name):
    model = Tiny()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = build_optimizer(optim_cfg({"memory": "frozen"}, name=name, weight_decay=0.1), model)
    train(model, optimizer)
    for n, p in model.named_parameters():
        if n.startswith("memory."):
            assert torch.equal(p, before[n]) and not p.requires_grad and id(p) not in optimized(optimizer), n
        else:
            assert not torch.equal(p, before[n]) and p.requires_grad and id(p) in optimized(optimizer), n


def test_freezing_a_real_model_by_module_and_glob():
    model = build_tiny("lstm_attn")
    names = dict(model.named_parameters())
    optimizer = build_optimizer(optim_cfg({"encoder": "frozen", "bridge_*": "frozen"}, weight_decay=0.01), model)
    frozen = {n for n, p in names.items() if not p.requires_grad}
    assert frozen == {n for n in names if n.startswith(("encoder.", "bridge_h.", "bridge_c."))}
    assert optimized(optimizer) == {id(p) for n, p in names.items() if n not in frozen}
    before = {n: names[n].detach().clone() for n in frozen}
    src, lengths, tgt = padded_batch()
    for _ in range(3):
        optimizer.zero_grad(set_to_none=True)
        model(src, lengths, tgt).logsumexp(-1).mean().backward()
        optimizer.step()
    assert all(torch.equal(names[n], before[n]) for n in frozen)


def test_multipliers_reach_the_groups_and_survive_the_schedule():
    model = Tiny()
    cfg = optim_cfg({"memory": 2.0, "head": 0.5}, lr=1e-3, scheduler="cosine", warmup_steps=3, min_lr=1e-4)
    optimizer = build_optimizer(cfg, model)
    groups = {tuple(sorted(id(p) for p in g["params"])): g for g in optimizer.param_groups}
    memory = groups[tuple(sorted(id(p) for p in model.memory.parameters()))]
    head = groups[tuple(sorted(id(p) for p in model.head.parameters()))]
    other = groups[tuple(sorted(id(p) for p in model.backbone.parameters()))]
    assert len(groups) == 3
    assert (memory["lr"], head["lr"], other["lr"]) == pytest.approx((2e-3, 5e-4, 1e-3))
    assert (memory["lr_scale"], head["lr_scale"], other["lr_scale"]) == (2.0, 0.5, 1.0)
    scheduler = build_scheduler(cfg, optimizer, total_steps=20, model_dim=8)
    lrs = []
    for _ in range(22):
        train(model, optimizer, steps=1)
        scheduler.step()
        lrs.append(other["lr"])
        assert memory["lr"] == pytest.approx(2 * other["lr"]) and head["lr"] == pytest.approx(0.5 * other["lr"])
    assert len(set(lrs)) > 15 and lrs[-1] == pytest.approx(1e-4)  # the schedule moved the rates, down to min_lr


def test_patterns_with_one_multiplier_share_a_group_and_no_patterns_give_one_group():
    optimizer = build_optimizer(optim_cfg({"memory": 2, "head": 2.0}), Tiny())
    assert sorted(g["lr_scale"] for g in optimizer.param_groups) == [1.0, 2.0]
    model = Tiny()
    optimizer = build_optimizer(optim_cfg(), model)
    assert len(optimizer.param_groups) == 1 and optimizer.param_groups[0]["lr"] == 1e-3
    assert optimized(optimizer) == {id(p) for p in model.parameters()}


def test_first_matching_pattern_wins():
    model = Tiny()
    groups = apply_param_groups(model, {"backbone.0": 3.0, "backbone.*": "frozen", "*": 5.0})
    by_scale = {g["lr_scale"]: {id(p) for p in g["params"]} for g in groups}
    assert by_scale[3.0] == {id(p) for p in model.backbone[0].parameters()}
    assert not any(p.requires_grad for p in model.backbone[2].parameters())
    assert by_scale[5.0] == {id(p) for p in [*model.memory.parameters(), *model.head.parameters()]}
    assert by_scale.keys() == {3.0, 5.0}  # nothing left for (other)

    model = Tiny()
    groups = apply_param_groups(model, {"backbone": 5.0, "*": "frozen"})
    assert [(g["lr_scale"], len(g["params"])) for g in groups] == [(5.0, 4)]
    assert all(p.requires_grad for p in model.backbone.parameters())
    assert not any(p.requires_grad for p in [*model.memory.parameters(), *model.head.parameters()])


def test_a_pattern_left_nothing_by_earlier_ones_is_an_error():
    with pytest.raises(UserError, match=r"'backbone\.0'.*earlier patterns"):
        apply_param_groups(Tiny(), {"backbone": 2.0, "backbone.0": "frozen"})


def test_a_module_name_is_not_a_prefix_of_another_name():
    model = nn.Module()
    model.mem, model.memory = nn.Linear(2, 2), nn.Linear(2, 2)
    apply_param_groups(model, {"mem": "frozen"})
    assert not model.mem.weight.requires_grad and model.memory.weight.requires_grad


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ({"decoderr": "frozen"}, r"'decoderr'.*matches no parameter.*encoder, bridge_h, bridge_c, tgt_embed, decoder"),
        ({"decoder": "freeze"}, r"'decoder'.*'freeze' is invalid.*'frozen'"),
        ({"decoder": -1.0}, r"'decoder'.*-1\.0 is invalid"),
        ({"decoder": True}, r"'decoder'.*True is invalid"),
        ({"decoder": float("nan")}, r"'decoder'.*nan is invalid"),
        ({"*": "frozen"}, r"optim\.param_groups freezes every parameter: nothing left to train"),
    ],
)
def test_bad_param_groups_are_user_errors(groups, message):
    model = build_tiny("lstm_attn")
    with pytest.raises(UserError, match=message):
        build_optimizer(optim_cfg(groups), model)
    assert all(p.requires_grad for p in model.parameters())  # nothing frozen by a rejected config


def test_describe_lists_lrs_frozen_modules_and_counts():
    model = Tiny()
    cfg = optim_cfg({"memory": 2.0, "backbone.*": "frozen"}, lr=1e-3)
    build_optimizer(cfg, model)
    assert describe_param_groups(model, cfg) == [
        "trainable: 99 parameters in 2 groups; frozen: 112",
        "  memory: lr 2.00e-03 (x2.0), 72 parameters",
        "  backbone.*: frozen, 112 parameters",
        "  (other): lr 1.00e-03 (x1.0), 27 parameters",
    ]
    assert describe_param_groups(Tiny(), optim_cfg()) == [
        "trainable: 211 parameters in 1 group; frozen: 0",
        "  (all): lr 1.00e-03 (x1.0), 211 parameters",
    ]
