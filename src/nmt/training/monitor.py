"""Training health and what a run reports: running metrics, the train, dev and test log lines with their
TensorBoard scalars and samples, where non-finite values come from, attention."""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from torch.nn.utils.rnn import PackedSequence

from nmt.data import SessionBatch
from nmt.errors import UserError
from nmt.evaluation import memory_value_lines, perplexity
from nmt.training.gradients import GradientGroups

clock = time.perf_counter  # what Meter times training with (a test may replace it)


class Meter:
    """Sums of the training metrics between two log lines, kept on the device until they are read."""

    def __init__(self, device, groups: GradientGroups):
        self.device = device
        self.groups = groups
        self.reset()

    def reset(self):
        self.loss = torch.zeros((), device=self.device)
        self.nll = torch.zeros((), device=self.device)
        self.tokens = torch.zeros((), device=self.device, dtype=torch.long)
        self.correct = torch.zeros((), device=self.device, dtype=torch.long)
        self.grad_norm = torch.zeros((), device=self.device)
        self.clipped = torch.zeros((), device=self.device)
        self.group_norms = torch.zeros(len(self.groups.groups), device=self.device)
        self.clip_factor = torch.ones((), device=self.device)  # of the last step: its gradients were multiplied by it
        self.steps = 0
        self.start = clock()

    def add(self, out, grad_norm, clip, group_norms):
        """A step's LossOut, its total gradient norm before clipping at `clip` (None: no clipping), and its
        per-group norms before clipping ((groups,), from GradientGroups.norms)."""
        self.loss += out.loss.detach()
        self.nll += out.nll_sum
        self.tokens += out.n_tokens
        self.correct += out.n_correct
        self.grad_norm += grad_norm
        self.group_norms += group_norms
        if clip is not None:
            self.clipped += (grad_norm > clip).float()
            self.clip_factor = torch.clamp(clip / (grad_norm + 1e-6), max=1.0)  # clip_grad_norm_'s coefficient
        self.steps += 1

    @contextlib.contextmanager
    def paused(self):
        """Leave the time spent inside out of the window's speed and ETA (a dev evaluation is not training)."""
        started = clock()
        try:
            yield
        finally:
            self.start += clock() - started

    def histograms(self) -> dict[str, torch.Tensor]:
        """The last step's gradients per layer, before clipping (which multiplied them all by one factor)."""
        return {group: grads / self.clip_factor for group, grads in self.groups.flat().items() if grads.numel()}

    def read(self) -> dict:
        tokens = max(int(self.tokens), 1)
        elapsed = clock() - self.start
        nll = float(self.nll) / tokens
        return {
            "loss": float(self.loss) / self.steps,  # what is minimised: label-smoothed when that is on
            "nll": nll,  # unsmoothed, per target token: comparable with dev/loss
            "ppl": perplexity(nll),
            "p_token": math.exp(-nll),  # the mean probability per token, geometrically: 1 / ppl
            "token_acc": float(self.correct) / tokens,
            "grad_norm": float(self.grad_norm) / self.steps,
            "group_grad_norms": dict(zip(self.groups.groups, (self.group_norms / self.steps).tolist(), strict=True)),
            "clip_rate": float(self.clipped) / self.steps,
            "tokens_per_sec": tokens / elapsed,
            "sec_per_step": elapsed / self.steps,
        }


def format_eta(seconds: float) -> str:
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"


class TrainingStopped(UserError):
    """Training cannot go on (e.g. non-finite losses step after step); the message names the cause and the knob."""


def _tensors(value):
    """The tensors inside a module's output (tuples, lists, PackedSequence)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, PackedSequence):
        yield value.data
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _tensors(item)


def find_nonfinite(model, run) -> str:
    """Re-run `run()` (a forward and backward pass) and name the first module whose output is non-finite, in the
    order the outputs were computed, else the first parameter whose gradient is, else say that neither is."""
    first: list[str] = []

    def check(name):
        def hook(module, args, output):
            if not first and any(not torch.isfinite(t).all() for t in _tensors(output) if t.is_floating_point()):
                first.append(name)

        return hook

    handles = [m.register_forward_hook(check(name)) for name, m in model.named_modules() if name]
    try:
        model.zero_grad(set_to_none=True)
        run()
    finally:
        for handle in handles:
            handle.remove()
    if first:
        return f"the output of module '{first[0]}'"
    for name, p in model.named_parameters():
        if p.grad is not None and not torch.isfinite(p.grad).all():
            return f"the gradient of '{name}'"
    return "no module output or gradient on a re-run (the loss itself, or a non-deterministic op)"


def weights_finite(model) -> bool:
    return all(torch.isfinite(p).all() for p in model.parameters())


@torch.no_grad()
def attention_map(model, src_ids, hyp_ids, specials, device):
    """Cross-attention of the decoder over the source while it reads [BOS] + hypothesis: (tgt_len, src_len).

    None for models without attention."""
    src = torch.as_tensor(src_ids, dtype=torch.long, device=device).unsqueeze(0)
    enc = model.encode(src, torch.tensor([src.size(1)], device=device))
    state = model.init_state(enc)
    rows = []
    for token in [specials.bos, *hyp_ids]:
        _, state, attn = model.decode_step(torch.tensor([token], device=device), state, enc, need_weights=True)
        if attn is None:
            return None
        rows.append(attn[0].float().cpu())
    return torch.stack(rows)


def attention_figure(weights, src_pieces: list[str], out_pieces: list[str]):
    """A heatmap with source pieces on the x axis and output pieces (the token each row produced) on the y axis."""
    import matplotlib

    matplotlib.use("Agg")  # no display: render to a buffer for TensorBoard
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(0.45 * len(src_pieces) + 2, 0.45 * len(out_pieces) + 1.5))
    ax.imshow(weights.numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(src_pieces)), src_pieces, rotation=90)
    ax.set_yticks(range(len(out_pieces)), out_pieces)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    fig.tight_layout()
    return fig


def write_attention_images(writer, model, tokenizer, m: dict, count: int, device, step: int) -> None:
    """Heatmaps of the decoder's attention over the first `count` sentences of a dev evaluation (evaluate_split's
    metrics), for attention models."""
    for i in range(min(count, len(m["source_ids"]))):
        src_ids, hyp_ids = m["source_ids"][i], m["hypothesis_ids"][i]
        weights = attention_map(model, src_ids, hyp_ids, tokenizer.specials, device)
        if weights is None:
            return
        src_pieces = tokenizer.src_pieces(m["sources"][i])
        out_pieces = [*tokenizer.tgt_pieces_of(hyp_ids), "</s>"]
        writer.add_figure(f"attention/{i}", attention_figure(weights, src_pieces, out_pieces), step)


def out_of_memory_message(batch, step: int, max_tokens: int, last_checkpoint: Path) -> str:
    """What to tell a user whose batch (a Batch, or a SessionBatch of dialogues) did not fit: its size and the knob."""
    sessions = isinstance(batch, SessionBatch)
    turns = batch.turns if sessions else [batch]
    padded = sum(t.src.numel() + t.tgt_in.numel() for t in turns)
    what = f"{len(batch.sessions)} sessions of {len(turns)} turns" if sessions else f"{len(batch.indices)} pairs"
    return (
        f"step {step}: out of memory on a batch of {what}, {batch.n_tokens} target tokens"
        f" ({padded} padded source + target positions) — lower trainer.max_tokens (now {max_tokens});"
        f" last good checkpoint: {last_checkpoint}"
    )


def hparams(cfg) -> dict:
    """The run's scalar settings (model, optim, trainer, teacher forcing, data name) for TensorBoard's hparams tab."""
    flat = {"data": cfg.data.name}
    for group in ("model", "optim", "trainer", "teacher_forcing"):
        for key, value in cfg[group].items():
            if isinstance(value, (int, float, str, bool)):
                flat[f"{group}.{key}"] = value
    return flat


def profiler(tcfg, trace_dir):
    """With trainer.profile: a torch.profiler recording trainer.profile_steps steps after a warm-up step, as a
    trace TensorBoard's profiler plugin reads. Otherwise a stand-in whose step() does nothing."""
    if not tcfg.profile:
        return contextlib.nullcontext(SimpleNamespace(step=lambda: None))
    return torch.profiler.profile(
        schedule=torch.profiler.schedule(wait=1, warmup=1, active=tcfg.profile_steps, repeat=1),
        on_trace_ready=torch.profiler.tensorboard_trace_handler(str(trace_dir)),
    )


def report_train(
    emit,
    writer,
    m: dict,
    histograms: dict,
    step: int,
    total_steps: int,
    epoch: int,
    lr: float,
    ratio: float,
    eta: float,
) -> None:
    """A logging window: Meter.read()'s figures with its per-layer gradient norms, Meter.histograms(), learning rate
    and teacher-forcing ratio to TensorBoard, and one line with the ETA (`eta` seconds) to `emit` (a logging
    function)."""
    for key, value in m.items():
        if key not in ("sec_per_step", "group_grad_norms"):
            writer.add_scalar(f"train/{key}", value, step)
    for group, norm in m["group_grad_norms"].items():
        writer.add_scalar(f"grad_norm/{group}", norm, step)
    for group, grads in histograms.items():
        writer.add_histogram(f"grad/{group}", grads, step)
    writer.add_scalar("train/lr", lr, step)
    writer.add_scalar("train/tf_ratio", ratio, step)
    emit(
        "step %d/%d | epoch %d | loss %.3f | ppl %.2f (p(token) %.3f) | acc %.1f%% | teacher forcing %.2f "
        "| lr %.2e | grad norm %.2f | clipped %.0f%% | %.0f tok/s | ETA %s",
        step,
        total_steps,
        epoch + 1,
        m["loss"],
        m["ppl"],
        m["p_token"],
        100 * m["token_acc"],
        ratio,
        lr,
        m["grad_norm"],
        100 * m["clip_rate"],
        m["tokens_per_sec"],
        format_eta(eta),
    )


def report_dev(emit, writer, m: dict, step: int, improved: bool, num_samples: int, samples_dir: Path) -> None:
    """A dev evaluation (evaluate_split's metrics): scalars to TensorBoard, the log line, a few samples to the log
    and TensorBoard, and every hypothesis to samples_dir/step-<N>.txt."""
    tb_names = {"loss": "loss", "ppl": "ppl", "acc": "token_acc", "bleu": "bleu", "chrf": "chrf"}
    for key, tb in {**tb_names, "no_eos_rate": "no_eos_rate", "repeat_rate": "repeat_rate"}.items():
        writer.add_scalar(f"dev/{tb}", m[key], step)
    writer.add_scalar("dev/p_token", math.exp(-m["loss"]), step)
    # Teacher-forced and free-running side by side: the gap between them is exposure bias. The loss is the
    # unsmoothed NLL per token, so p(token) = exp(-loss) is the mean (geometric) probability of a reference token.
    emit(
        "step %d dev: teacher-forced loss %.3f | ppl %.2f (p(token) %.3f) | acc %.1f%% || free-running BLEU %.2f "
        "| chrF %.2f | no EOS %.1f%% | loops %.1f%%%s",
        step,
        m["loss"],
        m["ppl"],
        math.exp(-m["loss"]),
        100 * m["acc"],
        m["bleu"],
        m["chrf"],
        100 * m["no_eos_rate"],
        100 * m["repeat_rate"],
        " (best)" if improved else "",
    )
    samples = list(zip(m["sources"], m["references"], m["hypotheses"], strict=True))
    text = "\n\n".join(f"    src: {s}\n    ref: {r}\n    hyp: {h}" for s, r, h in samples[:num_samples])
    emit("samples:\n%s", text)
    writer.add_text("dev/samples", text.replace("\n", "  \n"), step)
    samples_dir.mkdir(exist_ok=True)
    (samples_dir / f"step-{step:07d}.txt").write_text("\n".join(m["hypotheses"]) + "\n", encoding="utf-8")


def report_test(emit, writer, cfg, test: dict, best: dict, best_path: Path, step: int) -> None:
    """The final test of the best checkpoint (evaluate_split's metrics, plus "memory_reset" for a memory-LSTM):
    TensorBoard scalars and hparams, the scores with sacreBLEU's signatures, and the commands that use the model."""
    for key in ("bleu", "chrf", "loss"):
        writer.add_scalar(f"test/{key}", test[key], step)
    if "memory_reset" in test:
        for line in memory_value_lines(test, test["memory_reset"]):
            emit(line)
    scores = {"dev_bleu": best["dev"]["bleu"], "test_bleu": test["bleu"], "test_chrf": test["chrf"]}
    writer.add_hparams(hparams(cfg), {f"hparam/{k}": v for k, v in scores.items()}, run_name=".")
    emit("best dev (step %d): BLEU %.2f | chrF %.2f", best["step"], best["dev"]["bleu"], best["dev"]["chrf"])
    emit("test: %s", test["bleu_line"])
    emit("test: %s", test["chrf_line"])


def report_next_steps(emit, best_path: Path, examples: list[tuple[str, str]], log_dir: str) -> None:
    """What to do with a finished run: its example translations ((source, translation) pairs, maybe none), the
    commands that evaluate and use the best checkpoint, and where TensorBoard shows the run."""
    if examples:
        emit("examples (the best checkpoint, as nmt-translate decodes them):")
        width = max(len(source) for source, _ in examples)
        for source, translation in examples:
            emit("  %s  ->  %s", source.ljust(width), translation)
    sentence = examples[0][0] if examples else "a sentence to translate"
    emit("next:")
    emit("  evaluate:  nmt-eval ckpt=%s beam_size=5", best_path)
    emit('  translate: nmt-translate ckpt=%s "%s"   (no sentence: a prompt; or lines on stdin)', best_path, sentence)
    emit("  look:      tensorboard --logdir %s", log_dir)
    emit("             Scalars: train/loss and dev/bleu over steps, grad_norm/* per layer; Images: attention/*,")
    emit("             the attention heatmaps of dev sentences; Text: dev/samples; HParams: this run beside the others")
