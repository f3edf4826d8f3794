"""Pre-flight checks of a training setup, one function per check, each returning a Check for nmt-doctor."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from nmt.evaluation import evaluate_split
from nmt.models.init import GATE_NONLINEARITIES, tanh_layer_names
from nmt.training.device import precision_warning
from nmt.training.gradients import GradientGroups
from nmt.training.loss import sequence_loss


@dataclass
class Check:
    """One row of the report: status is pass, warn or fail; knob is the config setting to try."""

    name: str
    status: str
    detail: str
    knob: str


def _loss(model, batch, pad_id: int) -> torch.Tensor:
    """Teacher-forced, unsmoothed mean loss per target token of `batch` (a Batch on the model's device)."""
    return sequence_loss(model(batch.src, batch.src_lengths, batch.tgt_in), batch.tgt_out, pad_id).loss


def gradient_flow(model, batch, pad_id: int) -> Check:
    """One backward pass; every layer (gradients.gradient_group) must get a finite, non-zero gradient, and every
    parameter some gradient: the ones that get none are named."""
    model.train()
    model.zero_grad(set_to_none=True)
    _loss(model, batch, pad_id).backward()
    groups = GradientGroups(model)
    norms = dict(zip(groups.groups, groups.norms().tolist(), strict=True))
    unreached = groups.without_gradient()
    model.zero_grad(set_to_none=True)
    knob = "model code (the forward pass)"
    broken = [g for g, n in norms.items() if not math.isfinite(n)]
    if broken:
        return Check("gradient flow", "fail", f"{', '.join(broken)}: non-finite gradient", knob)
    if unreached:
        dead = [g for g, n in norms.items() if n == 0.0]
        where = f" (all of {', '.join(dead)})" if dead else ""
        return Check(
            "gradient flow",
            "fail",
            f"no gradient reaches {len(unreached)} of {len(groups.names)} parameters{where}: {', '.join(unreached)}"
            " — look for a .detach(), .item(), .data or a non-differentiable op between them and the loss",
            knob,
        )
    top = max(norms, key=norms.get)
    weak = [g for g, n in norms.items() if n < 1e-6 * norms[top]]
    if weak:
        detail = "; ".join(f"{g} receives {norms[g] / norms[top]:.0e} of {top}'s gradient" for g in weak)
        return Check("gradient flow", "warn", detail, "model.forget_bias, model=lstm_attn (shorter gradient paths)")
    low = min(norms, key=norms.get)
    detail = f"{len(norms)} layers, grad norm {norms[low]:.2g} ({low}) .. {norms[top]:.2g} ({top})"
    return Check("gradient flow", "pass", detail, "-")


def _without_dropout(model: nn.Module) -> None:
    """Zero every dropout rate in place: nn.Dropout modules and float `dropout` attributes (RNNs, attention)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        elif isinstance(getattr(module, "dropout", None), float):
            module.dropout = 0.0


def overfit_one_batch(model, batch, pad_id: int, lr: float, steps: int = 200) -> Check:
    """Train a dropout-free copy with Adam(lr) on one fixed batch; a sound model drives its loss near zero."""
    trial = copy.deepcopy(model)
    _without_dropout(trial)
    # train(), not eval(): cuDNN computes no RNN gradients in eval mode.
    trial.train()
    optimizer = torch.optim.Adam(trial.parameters(), lr=lr)
    initial = None
    for step in range(steps + 1):  # step: the updates made so far
        out = _loss(trial, batch, pad_id)
        loss = float(out.detach())
        initial = loss if initial is None else initial
        if loss < 0.05 * initial or loss < 0.1 or step == steps:
            break
        optimizer.zero_grad(set_to_none=True)
        out.backward()
        optimizer.step()
    detail = f"loss {initial:.3f} -> {loss:.3f} in {step} steps on {batch.src.size(0)} sentences"
    knob = "optim.lr, model size (model.hidden_size / model.d_model)"
    if math.isfinite(loss) and loss < 0.1 * initial:
        return Check("overfit one batch", "pass", detail, knob)
    return Check(
        "overfit one batch", "fail", f"{detail}: a model that cannot fit one batch is broken, not under-trained", knob
    )


def _first_tensor(output):
    """The first tensor of a module's output: LSTMs return (output, (h, c)), a PackedSequence is a tuple too."""
    while isinstance(output, (tuple, list)) and output:
        output = output[0]
    return output if isinstance(output, torch.Tensor) else None


def initialisation(model, batch, pad_id: int, trained: bool = False) -> Check:
    """Activation scale of every leaf module, gradient scale per parameter, and the most saturated tanh layer or
    recurrent gate (sigmoid within 0.01 of 0 or 1, tanh beyond +-0.99): at init, or of a trained model."""
    model.train()
    act_std: dict[str, float] = {}
    saturated: dict[str, float] = {}

    def record_std(name):
        def hook(_module, _inputs, output):
            out = _first_tensor(output)
            if out is not None and out.is_floating_point() and out.numel() > 1:
                act_std[name] = float(out.detach().float().std())  # read now: the loss's backward reuses logits

        return hook

    def record_saturation(name):
        def hook(_module, _inputs, output):
            saturated[name] = float((torch.tanh(output.detach().float()).abs() > 0.99).float().mean())

        return hook

    def record_gates(name):
        # The gates live inside the fused recurrent kernel: recompute the first layer's from its real inputs
        # (zero initial state), gate by gate with its own nonlinearity.
        def hook(module, args):
            x = args[0].data if isinstance(args[0], PackedSequence) else args[0]
            x = x.detach().float().reshape(-1, x.size(-1))
            pre = x @ module.weight_ih_l0.detach().float().T
            if module.bias:
                pre = pre + (module.bias_ih_l0 + module.bias_hh_l0).detach().float()
            shares = []
            for chunk, kind in zip(
                pre.chunk(len(GATE_NONLINEARITIES[module.mode]), -1), GATE_NONLINEARITIES[module.mode], strict=True
            ):
                if kind == "sigmoid":
                    shares.append(((chunk.sigmoid() - 0.5).abs() > 0.49).float().mean())
                elif kind == "tanh":
                    shares.append((chunk.tanh().abs() > 0.99).float().mean())
            saturated[f"{name} gates"] = float(torch.stack(shares).mean()) if shares else 0.0

        return hook

    leaves = [(n, m) for n, m in model.named_modules() if n and not any(m.children())]
    handles = [m.register_forward_hook(record_std(n)) for n, m in leaves]
    modules = dict(model.named_modules())
    # A model lists every layer it may build; its config decides which exist (dot attention has no projections).
    tanh_layers = sorted(n for n in tanh_layer_names(model) if n in modules)
    handles += [modules[n].register_forward_hook(record_saturation(n)) for n in tanh_layers]
    handles += [m.register_forward_pre_hook(record_gates(n)) for n, m in modules.items() if isinstance(m, nn.RNNBase)]
    model.zero_grad(set_to_none=True)
    try:
        _loss(model, batch, pad_id).backward()
    finally:
        for handle in handles:
            handle.remove()
    grad_std = {
        n: float(p.grad.float().std()) for n, p in model.named_parameters() if p.grad is not None and p.numel() > 1
    }
    model.zero_grad(set_to_none=True)

    low, high = min(act_std, key=act_std.get), max(act_std, key=act_std.get)
    g_low, g_high = min(grad_std, key=grad_std.get), max(grad_std, key=grad_std.get)
    parts = [
        f"activation std {act_std[low]:.2g} ({low}) .. {act_std[high]:.2g} ({high})",
        f"grad std {grad_std[g_low]:.2g} ({g_low}) .. {grad_std[g_high]:.2g} ({g_high})",
    ]
    worst = max(saturated, key=saturated.get) if saturated else None
    if worst is not None:
        parts.append(f"saturated units {100 * saturated[worst]:.0f}% ({worst})")
    detail = "; ".join(parts)
    bad_scale = act_std[low] < 1e-3 or act_std[high] > 1e3
    status = "warn" if bad_scale or (worst is not None and saturated[worst] > 0.5) else "pass"
    if trained:
        return Check("activations", status, detail, "optim.lr, trainer.clip_grad_norm, model.dropout")
    return Check("initialisation", status, detail, "model.forget_bias, embedding/weight init (nmt.models.init)")


def _percentiles(lengths: np.ndarray) -> str:
    p50, p95 = np.percentile(lengths, [50, 95])
    return f"{p50:.0f}/{p95:.0f}/{lengths.max()}"


def data_report(data, batches) -> Check:
    """Filtering, lengths, <unk> rate and vocabulary coverage of the training split; all-padding rows in `batches`.

    data: a PreparedData; batches: a few training Batches as the trainer collates them.
    """
    train, specials, counts = data.splits["train"], data.tokenizer.specials, data.stats["train"]
    filtered = 1 - counts["kept"] / max(counts["read"], 1)
    unk = (np.count_nonzero(train.src == specials.unk) + np.count_nonzero(train.tgt == specials.unk)) / max(
        train.src.size + train.tgt.size, 1
    )
    # Special ids never occur in the stored ids (no bos/eos is stored), so they are left out of the coverage.
    n_specials = len({specials.pad, specials.unk, specials.bos, specials.eos})
    coverage = np.unique(train.tgt).size / max(data.tokenizer.tgt_vocab_size - n_specials, 1)
    empty_rows = sum(int((b.src_lengths == 0).sum()) for b in batches)
    detail = (
        f"{100 * filtered:.1f}% of {counts['read']} pairs filtered; lengths p50/p95/max src"
        f" {_percentiles(train.src_lengths())}, tgt {_percentiles(train.tgt_lengths())}; <unk> {100 * unk:.2f}%;"
        f" target vocab coverage {100 * coverage:.0f}%; {empty_rows} all-padding rows in {len(batches)} batches"
    )
    status = "warn" if unk > 0.01 or filtered > 0.1 or empty_rows else "pass"
    return Check("data", status, detail, "data.max_len, data.tokenizer.vocab_size, data.tokenizer.byte_fallback")


def precision_report(precision: str, device: torch.device) -> Check:
    """Whether trainer.precision suits the device (device.precision_warning)."""
    warning = precision_warning(precision, device)
    if warning:
        return Check("precision", "warn", warning, "trainer.precision=32")
    return Check("precision", "pass", f"trainer.precision={precision} on {device.type}", "trainer.precision")


def decoding_report(model, data, search_cfg, device, n: int = 50, max_tokens: int = 4096) -> Check:
    """Greedy-decode n dev sentences (spread over the split); share without EOS and that loop (evaluation.loops)."""
    greedy = OmegaConf.merge(search_cfg, {"beam_size": 1, "nbest": 1})
    m = evaluate_split(model, data, "dev", greedy, max_tokens, device, max_sentences=n)
    detail = (
        f"{len(m['hypotheses'])} dev sentences: {100 * m['no_eos_rate']:.0f}% without EOS,"
        f" {100 * m['repeat_rate']:.0f}% looping"
    )
    knob = "trainer.search.max_len_a, more training, teacher_forcing"
    if max(m["no_eos_rate"], m["repeat_rate"]) > 0.2:
        return Check(
            "decoding", "warn", f"{detail} (an untrained model fails this; after training it should not)", knob
        )
    return Check("decoding", "pass", detail, knob)
