"""Data-parallel training across processes started by torchrun: the process group, batch shards, gradient averaging,
sharded evaluation."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes; rank 0 alone writes logs, TensorBoard and checkpoints."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


ONE_PROCESS = Ranks()  # a plain run


def init_distributed(device: torch.device) -> tuple[Ranks, torch.device]:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, MASTER_ADDR, ...): NCCL on
    CUDA, each process on its LOCAL_RANK's GPU, else Gloo. A plain run is rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Ranks(), device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size()), device


def broadcast_parameters(model: torch.nn.Module, ranks: Ranks) -> None:
    """Every rank starts from rank 0's weights (the same seed gives the same ones; this makes sure)."""
    if ranks.world > 1:
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)


def shard(group: list, ranks: Ranks) -> list:
    """This rank's batches of a step's group of world * k batches: disjoint across ranks, k each."""
    return group[ranks.rank :: ranks.world]


def average_gradients(model: torch.nn.Module, extras: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """Average every gradient over the ranks, and sum `extras` (1-D float: the loss, a stop flag, ...) with them,
    in one all-reduce of one flat buffer. Returns the summed extras."""
    if ranks.world == 1:
        return extras
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    flat = torch.cat([g.flatten().float() for g in grads] + [extras.float()])
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g) / ranks.world)
        offset += g.numel()
    return flat[offset:]


def agree(flag: bool, ranks: Ranks, device) -> bool:
    """True on every rank when any rank says so (stop: a signal, early stopping)."""
    if ranks.world == 1:
        return flag
    value = torch.tensor([float(flag)], device=device)
    dist.all_reduce(value)
    return bool(value.item())


def max_over_ranks(value: float, ranks: Ranks, device) -> float:
    """The largest of every rank's `value` (a clock reading), on every rank."""
    if ranks.world == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor.item()


def sum_over_ranks(values: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """Every rank's `values` (counts, sums of losses) added up, on every rank."""
    if ranks.world > 1:
        values = values.clone()
        dist.all_reduce(values)
    return values


def gather_dealt(mine: list, n: int, ranks: Ranks) -> list:
    """Put back in order the n items dealt out as items[rank::world]: every rank holds its share `mine` and gets
    all n (an evaluation's hypotheses: each rank decodes its share, every rank then scores them all)."""
    if ranks.world == 1:
        return mine
    shares = [None] * ranks.world
    dist.all_gather_object(shares, mine)
    items = [None] * n
    for rank, share in enumerate(shares):
        items[rank :: ranks.world] = share
    return items


def barrier(ranks: Ranks) -> None:
    if ranks.world > 1:
        dist.barrier()


class SilentWriter:
    """What ranks other than 0 have for a SummaryWriter: every call does nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None
