"""Gradients by layer: which group each parameter belongs to, the groups' norms, and the parameters none reached."""

from __future__ import annotations

import re

import torch
from torch import nn

_RNN_LAYER = re.compile(r"_l(\d+)(?:_reverse)?$")  # nn.LSTM/GRU/RNN: weight_ih_l0, bias_hh_l1_reverse, ...


def gradient_group(name: str) -> str:
    """The layer a parameter belongs to, for gradient norms: a stacked layer ("encoder.0" of a Transformer,
    "backbone.decoder.1" of a memory-LSTM's), a layer of a recurrent module ("encoder.rnn.l0", both directions
    together), else the module that owns it ("attention.proj", "memory.gate", "src_embed")."""
    parts = name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    module = ".".join(parts[:-1]) or name
    layer = _RNN_LAYER.search(parts[-1])
    return f"{module}.l{layer.group(1)}" if layer else module


class GradientGroups:
    """The trainable parameters of a model by gradient_group, in the model's order."""

    def __init__(self, model: nn.Module):
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.names = [name for name, _ in named]
        self.params = [p for _, p in named]
        self._group_of = [gradient_group(name) for name in self.names]  # per parameter
        self.groups = list(dict.fromkeys(self._group_of))
        position = {group: i for i, group in enumerate(self.groups)}
        self._index = torch.tensor([position[group] for group in self._group_of], dtype=torch.long)

    def norms(self) -> torch.Tensor:
        """(groups,) float32 L2 norm of each group's current gradients; a group no gradient reached has norm 0, so
        that it shows up instead of vanishing."""
        if not self.params:
            return torch.zeros(0)
        device = self.params[0].device
        squares = torch.stack(
            [
                torch.zeros((), device=device) if p.grad is None else p.grad.detach().float().square().sum()
                for p in self.params
            ]
        )
        sums = torch.zeros(len(self.groups), device=device).index_add_(0, self._index.to(device), squares)
        return sums.sqrt()

    def flat(self) -> dict[str, torch.Tensor]:
        """Each group's current gradients flattened into one float32 tensor (empty where none reached it)."""
        parts: dict[str, list[torch.Tensor]] = {group: [] for group in self.groups}
        for group, p in zip(self._group_of, self.params, strict=True):
            if p.grad is not None:
                parts[group].append(p.grad.detach().float().flatten())
        return {group: torch.cat(grads) if grads else torch.zeros(0) for group, grads in parts.items()}

    def without_gradient(self) -> list[str]:
        """The parameters whose gradient is missing or exactly zero everywhere."""
        return [
            name
            for name, p in zip(self.names, self.params, strict=True)
            if p.grad is None or not bool(p.grad.detach().any())
        ]
