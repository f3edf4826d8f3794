"""The training loop: batches, loss, clipping, optimizer and schedule, evaluation, checkpoints, logs."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import random
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from nmt.config import SearchConfig, TranslateConfig
from nmt.cpu_kernels import keep_measured_choice, use_cpu_kernels
from nmt.data import (
    TokenBatchSampler,
    collate,
    collate_sessions,
    make_normalizer,
    padding_share,
    prepare_data,
    session_sampler,
)
from nmt.decoding import translate_texts
from nmt.decoding.search import check_search
from nmt.errors import UserError
from nmt.evaluation import bleu_metric, evaluate_dialogue, evaluate_split, json_scores
from nmt.models import build_model, count_parameters, describe, model_width
from nmt.training import monitor
from nmt.training.checkpoint import (
    copy_checkpoint,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)
from nmt.training.device import mixed_precision, precision_warning, resolve_device
from nmt.training.distributed import (
    SilentWriter,
    agree,
    average_gradients,
    barrier,
    broadcast_parameters,
    init_distributed,
    max_over_ranks,
    shard,
)
from nmt.training.gradients import GradientGroups
from nmt.training.interrupt import StopRequests, TrainingInterrupted
from nmt.training.loss import LossOut, sequence_loss
from nmt.training.monitor import (
    Meter,
    TrainingStopped,
    find_nonfinite,
    format_eta,
    out_of_memory_message,
    profiler,
    report_dev,
    report_next_steps,
    report_test,
    report_train,
    weights_finite,
    write_attention_images,
)
from nmt.training.optim import build_optimizer, build_scheduler, clip_gradients, describe_param_groups
from nmt.training.run_state import (
    Progress,
    changed_settings,
    check_same_setup,
    describe_changes,
    load_weights,
    restore_train_state,
    resume_checkpoint,
    train_state,
)
from nmt.training.session import session_loss
from nmt.training.teacher_forcing import forced_logits, tf_ratio

log = logging.getLogger("nmt.train")


class Trainer:
    """Owns one run: call fit() to train, evaluate and test. cfg is a validated TrainConfig."""

    def __init__(self, cfg, run_dir):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        tcfg = cfg.trainer
        if not tcfg.resume and any(self.ckpt_dir.glob("*.pt")):
            # Two runs launched in the same second get the same Hydra directory name.
            raise UserError(
                f"{self.run_dir}: already holds a run's checkpoints — resume it with trainer.resume={self.run_dir},"
                " or choose another hydra.run.dir"
            )
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        if tcfg.deterministic:
            torch.use_deterministic_algorithms(True)
        self.ranks, self.device = init_distributed(resolve_device(tcfg.device))
        if not self.ranks.main:
            log.setLevel(logging.WARNING)  # rank 0 alone reports
        if tcfg.accumulate_grad_batches < 1:
            raise UserError(f"trainer.accumulate_grad_batches={tcfg.accumulate_grad_batches}: must be at least 1")
        self.per_step = self.ranks.world * tcfg.accumulate_grad_batches  # batches of the sampler per optimizer step
        # A misspelt tokenizer or stopping rule fails now, not at the first evaluation.
        bleu_metric(cfg.data.bleu_tokenize)
        check_search(tcfg.search)
        self.autocast, self.scaler = mixed_precision(tcfg.precision, self.device)
        # A memory-LSTM trains a whole dialogue at a time; other models train on (turn, reply) pairs of one.
        self.sessions = cfg.model.name == "memory_lstm"
        if self.sessions and cfg.data.format != "dialogue":
            raise UserError(
                f"model=memory_lstm carries memory across dialogue turns, but data={cfg.data.name} holds sentence"
                " pairs — use data=dailydialog (or a data config with format: dialogue)"
            )
        # Rank 0 builds the tokenizer and the binarized corpus; the other ranks then find them ready.
        if not self.ranks.main:
            barrier(self.ranks)
        self.data = prepare_data(cfg.data, log=log.info)
        if self.ranks.main:
            barrier(self.ranks)
        self.tokenizer = self.data.tokenizer
        self.specials = self.tokenizer.specials
        self.train_set = self.data.splits["train"]
        self.model = build_model(
            cfg.model,
            self.tokenizer.src_vocab_size,
            self.tokenizer.tgt_vocab_size,
            self.specials.pad,
            self.tokenizer.shared_vocab,
        ).to(self.device)
        broadcast_parameters(self.model, self.ranks)
        self.kernels = use_cpu_kernels(self.model, cfg.kernels, self.device)
        # The compiled forward shares self.model's parameters; checkpoints save self.model, so their keys do not change.
        # Scheduled sampling and memory-LSTM sessions run eagerly: their Python loops would recompile per length.
        self.teacher_forced = torch.compile(self.model, dynamic=True) if tcfg.compile else self.model
        if self.sessions:
            self.sampler = session_sampler(
                self.train_set,
                self.data.sessions["train"],
                tcfg.max_tokens,
                max_sentences=tcfg.max_sentences,
                order=cfg.data.batch_order,
                seed=cfg.seed,
            )
        else:
            self.sampler = TokenBatchSampler.for_pairs(
                self.train_set.src_lengths(),
                self.train_set.tgt_lengths(),
                tcfg.max_tokens,
                max_sentences=tcfg.max_sentences,
                order=cfg.data.batch_order,
                seed=cfg.seed,
            )
        steps_per_epoch = len(self.sampler) // self.per_step
        if steps_per_epoch == 0:
            raise UserError(
                f"the training data make {len(self.sampler)} batches, fewer than one optimizer step takes"
                f" ({self.per_step}: processes x trainer.accumulate_grad_batches) — lower trainer.max_tokens or"
                " trainer.accumulate_grad_batches"
            )
        self.total_steps = tcfg.max_steps or tcfg.max_epochs * steps_per_epoch
        if tcfg.init_from and tcfg.resume:
            raise UserError(
                "trainer.init_from and trainer.resume are both set — resume continues a run, init_from"
                " starts a new one from its weights: keep one"
            )
        self.optimizer = build_optimizer(cfg.optim, self.model)
        self.gradient_groups = GradientGroups(self.model)  # after build_optimizer: frozen ones are left out
        self.eval_seconds = 0.0  # spent in dev evaluations: left out of the epoch times
        self.progress = Progress()  # before the scheduler, which reads its training time
        self.scheduler = build_scheduler(
            cfg.optim, self.optimizer, self.total_steps, model_width(cfg.model), self._budget_spent
        )
        self.nonfinite_in_a_row = 0
        self.clock = time.monotonic  # seconds; what trainer.max_minutes counts (a test may replace it)
        if tcfg.resume:
            self._resume()
        elif tcfg.init_from:
            self._init_from(tcfg.init_from)
        # A resumed run drops the events its predecessor logged after the checkpoint (purge_step): no step twice.
        purge = self.progress.step + 1 if tcfg.resume else None
        self.writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=purge) if self.ranks.main else SilentWriter()

    # -- checkpoints --------------------------------------------------------------------------------------------

    def _payload(self, with_train_state: bool) -> dict:
        payload = {
            "model": self.model.state_dict(),
            "config": OmegaConf.to_container(self.cfg, resolve=True, enum_to_str=True),
            "tokenizer": self.tokenizer.state(),
            "specials": asdict(self.specials),
        }
        if with_train_state:
            payload["train_state"] = train_state(self.optimizer, self.scheduler, self.progress)
            if self.kernels:  # a resumed run multiplies as this one did, whatever a new measurement would say
                payload["kernels"] = {"matmul": self.kernels.matmul}
        return payload

    def _resume(self) -> None:
        path = resume_checkpoint(self.cfg)
        ckpt = load_checkpoint(path)
        check_same_setup(path, ckpt, self.cfg, self.tokenizer, resuming=True)
        if self.kernels:
            self.kernels = keep_measured_choice(self.model, self.kernels, ckpt.get("kernels"))
        load_weights(path, self.model, ckpt)
        changes = changed_settings(ckpt["config"], self.cfg)
        if changes:
            log.info(
                "resuming with settings changed since the checkpoint (they apply from here): %s",
                describe_changes(changes),
            )
        fresh_optimizer = "optim.name" in changes
        if fresh_optimizer:
            log.info("optim.name changed: the %s optimizer starts from a fresh state", self.cfg.optim.name)
        self.progress = restore_train_state(path, ckpt, self.optimizer, self.scheduler, fresh_optimizer)
        if (path.parent / "best.pt").is_file() and path.parent != self.ckpt_dir:
            copy_checkpoint(path.parent / "best.pt", self.ckpt_dir / "best.pt")  # this run holds its best so far
        log.info("resumed from %s at step %d (epoch %d)", path, self.progress.step, self.progress.epoch + 1)

    def _init_from(self, spec: str) -> None:
        """Start from a checkpoint's weights with a fresh optimizer and schedule (e.g. the second stage of a
        two-stage recipe); the architecture and vocabulary must match, other settings may differ."""
        path = resolve_checkpoint(spec, "best.pt")
        ckpt = load_checkpoint(path)
        check_same_setup(path, ckpt, self.cfg, self.tokenizer, resuming=False)
        load_weights(path, self.model, ckpt)
        log.info("initialised the weights from %s", path)

    # -- evaluation ---------------------------------------------------------------------------------------------

    def _evaluate(self, meter: Meter | None = None) -> bool:
        """Every rank evaluates its share of dev, rank 0 records the whole; True on every rank when early stopping
        says stop. The time it takes is left out of `meter`'s training speed."""
        self.progress.last_eval_step = self.progress.step  # before last.pt is saved, which records it
        started = monitor.clock()
        with meter.paused() if meter else contextlib.nullcontext():
            m = self._evaluate_split("dev", self.cfg.trainer.dev_max_sentences)
            stop = self._record_dev(m) if self.ranks.main else False
        self.eval_seconds += monitor.clock() - started
        return agree(stop, self.ranks, self.device)

    def _record_dev(self, m: dict) -> bool:
        """Dev metrics, samples, best/last checkpoints. Returns True when early stopping says stop."""
        tcfg, p = self.cfg.trainer, self.progress
        improved = m["bleu"] > p.best_bleu
        report_dev(log.info, self.writer, m, p.step, improved, tcfg.num_samples, self.run_dir / "samples")
        if not self.sessions:  # attention_map decodes a turn alone, which is not what a memory-LSTM saw
            write_attention_images(
                self.writer, self.model, self.tokenizer, m, tcfg.attention_samples, self.device, p.step
            )

        if not weights_finite(self.model):
            raise TrainingStopped(
                f"step {p.step}: the weights are no longer finite; no checkpoint written over "
                f"{self.ckpt_dir} — lower optim.lr"
            )
        if improved:
            p.best_bleu, p.bad_evals = m["bleu"], 0
            save_checkpoint(self.ckpt_dir / "best.pt", {**self._payload(False), "dev": json_scores(m), "step": p.step})
        else:
            p.bad_evals += 1
        save_checkpoint(self.ckpt_dir / "last.pt", self._payload(True))
        if tcfg.keep_checkpoints:
            self._keep_step_checkpoint()
        patience = tcfg.early_stopping_patience
        if patience and p.bad_evals >= patience:
            log.info("early stopping: dev BLEU has not improved for %d evaluations", patience)
            return True
        return False

    def _keep_step_checkpoint(self) -> None:
        """This evaluation's weights as step-<N>.pt; the newest trainer.keep_checkpoints stay (for nmt-average)."""
        save_checkpoint(self.ckpt_dir / f"step-{self.progress.step:07d}.pt", self._payload(False))
        for old in sorted(self.ckpt_dir.glob("step-*.pt"))[: -self.cfg.trainer.keep_checkpoints]:
            old.unlink()

    def _evaluate_split(self, split: str, max_sentences=None, reset_memory: bool = False) -> dict:
        tcfg = self.cfg.trainer
        evaluate = evaluate_split
        if self.sessions:
            evaluate = functools.partial(evaluate_dialogue, reset_memory=reset_memory)
        args = (self.model, self.data, split, tcfg.search, tcfg.max_tokens, self.device, max_sentences)
        return evaluate(
            *args, bleu_tokenize=self.cfg.data.bleu_tokenize, ranks=self.ranks, batch_sentences=tcfg.max_sentences
        )

    # -- training -----------------------------------------------------------------------------------------------

    def current_tf_ratio(self) -> float:
        """The teacher-forcing ratio now: a function of step and epoch, so a resumed run continues the schedule."""
        return tf_ratio(self.cfg.teacher_forcing, self.progress.step, self.progress.epoch)

    def _collate(self, indices):
        """A Batch of pairs, or a SessionBatch of whole dialogues for a memory-LSTM, on the device."""
        if self.sessions:
            return collate_sessions(self.train_set, self.data.sessions["train"], indices, self.specials).to(self.device)
        return collate(self.train_set, indices, self.specials).to(self.device)

    def _forward_backward(self, batch, ratio: float, loss_scale: float = 1.0):
        """Backpropagate the training loss of a batch at teacher-forcing `ratio`, times loss_scale; return it
        unscaled (a LossOut)."""
        tcfg, tf_cfg = self.cfg.trainer, self.cfg.teacher_forcing
        if self.sessions:
            bptt = self.cfg.model.memory.bptt_turns
            pad, smoothing = self.specials.pad, tcfg.label_smoothing
            return session_loss(self.model, batch, tf_cfg, ratio, pad, smoothing, bptt, loss_scale=loss_scale)
        if ratio >= 1.0:
            logits = self.teacher_forced(batch.src, batch.src_lengths, batch.tgt_in)
        else:
            enc = self.model.encode(batch.src, batch.src_lengths)
            logits = forced_logits(self.model, enc, batch.tgt_in, tf_cfg, ratio)
        out = sequence_loss(logits, batch.tgt_out, self.specials.pad, tcfg.label_smoothing)
        (out.loss * loss_scale).backward()
        return out

    def train_step(self, group: list, meter: Meter) -> None:
        """One optimizer step over this rank's share of `group`, a step's world * accumulate_grad_batches batches:
        gradients of each batch's mean loss, averaged over the batches and the ranks."""
        tcfg = self.cfg.trainer
        mine = shard(group, self.ranks)
        self.model.train()
        ratio = self.current_tf_ratio()
        self.optimizer.zero_grad(set_to_none=True)
        outs = []
        for indices in mine:
            batch = self._collate(indices)
            try:
                with self.autocast():
                    outs.append(self._forward_backward(batch, ratio, self.scaler.get_scale() / len(mine)))
            except (torch.cuda.OutOfMemoryError, MemoryError):
                self.optimizer.zero_grad(set_to_none=True)
                last = self.ckpt_dir / "last.pt"
                raise TrainingStopped(
                    out_of_memory_message(batch, self.progress.step + 1, tcfg.max_tokens, last)
                ) from None
        out = LossOut(*(sum(getattr(o, f) for o in outs) for f in ("loss", "nll_sum", "n_tokens", "n_correct")))
        out.loss = out.loss / len(outs)
        loss = average_gradients(self.model, out.loss.detach().reshape(1), self.ranks)[0] / self.ranks.world
        self.scaler.unscale_(self.optimizer)
        max_norm = tcfg.clip_grad_norm if tcfg.clip_grad_norm else math.inf
        group_norms = self.gradient_groups.norms()  # before clipping, as the total norm is
        grad_norm = clip_gradients(list(self.model.parameters()), max_norm)
        if not self.scaler.is_enabled() and not (torch.isfinite(loss) and torch.isfinite(grad_norm)):
            self._skip_nonfinite(batch, ratio)
            return
        scale = self.scaler.get_scale()
        self.scaler.step(self.optimizer)  # with fp16, skipped when a gradient overflowed
        self.scaler.update()
        if self.scaler.get_scale() < scale:
            self.progress.skipped_steps += 1  # an fp16 overflow: the scaler lowered its scale and skipped the step
            self.writer.add_scalar("train/skipped_steps", self.progress.skipped_steps, self.progress.step + 1)
            return
        self.nonfinite_in_a_row = 0
        self.scheduler.step()
        meter.add(out, grad_norm, tcfg.clip_grad_norm, group_norms)

    def _skip_nonfinite(self, batch, ratio: float) -> None:
        """Skip an update whose loss or gradient is not finite; after too many in a row, stop and name the cause."""
        p, tcfg = self.progress, self.cfg.trainer
        self.optimizer.zero_grad(set_to_none=True)
        p.skipped_steps += 1
        self.nonfinite_in_a_row += 1
        self.writer.add_scalar("train/skipped_steps", p.skipped_steps, p.step + 1)
        log.warning(
            "step %d: non-finite loss or gradient, update skipped (%d skipped so far)", p.step + 1, p.skipped_steps
        )
        if self.nonfinite_in_a_row < tcfg.max_nonfinite_steps:
            return

        culprit = find_nonfinite(self.model, lambda: self._forward_backward(batch, ratio))
        last = self.ckpt_dir / "last.pt"
        raise TrainingStopped(
            f"step {p.step + 1}: {self.nonfinite_in_a_row} steps in a row had a non-finite loss or gradient; the first "
            f"non-finite value is {culprit} — lower optim.lr, keep trainer.clip_grad_norm on, or check the data; "
            f"last good checkpoint: {last if last.is_file() else 'none yet'}"
        )

    def _log_train(self, meter: Meter, bar) -> None:
        m, p, budget = meter.read(), self.progress, self.cfg.trainer.max_minutes
        lr, ratio = self.scheduler.get_last_lr()[0], self.current_tf_ratio()
        eta = (self.total_steps - p.step) * m["sec_per_step"]
        if budget is not None and 60 * budget - p.train_seconds < eta:
            eta = max(0.0, 60 * budget - p.train_seconds)
            bar.total = p.step + round(eta / m["sec_per_step"])  # the steps the time budget leaves, as now measured
        histograms = meter.histograms()
        report_train(log.info, self.writer, m, histograms, p.step, self.total_steps, p.epoch, lr, ratio, eta)
        bar.set_postfix(loss=f"{m['loss']:.3f}", ppl=f"{m['ppl']:.1f}", tok_s=f"{m['tokens_per_sec']:.0f}")
        meter.reset()

    def _budget_spent(self) -> float:
        """The share of trainer.max_minutes used so far (0 without a time budget)."""
        budget = self.cfg.trainer.max_minutes
        return self.progress.train_seconds / (60 * budget) if budget else 0.0

    def _length_reached(self) -> str | None:
        """Why training ends now, if its length or time budget is spent (the same answer on every rank)."""
        tcfg, p = self.cfg.trainer, self.progress
        if tcfg.max_steps is not None and p.step >= tcfg.max_steps:
            return f"trainer.max_steps={tcfg.max_steps} reached"
        if tcfg.max_steps is None and p.epoch >= tcfg.max_epochs:
            return f"trainer.max_epochs={tcfg.max_epochs} reached"
        budget = tcfg.max_minutes
        if budget is not None and p.train_seconds >= 60 * budget:
            return f"trainer.max_minutes={budget:g} spent ({format_eta(p.train_seconds)} of training)"
        return None

    def fit(self) -> dict:
        tcfg, p = self.cfg.trainer, self.progress
        self._log_start()
        meter = Meter(self.device, self.gradient_groups)
        show_bar = tcfg.progress_bar and sys.stderr.isatty()
        started = self.clock() - p.train_seconds  # a resumed run goes on spending its time budget
        stop = self._length_reached()
        with (
            StopRequests() as requests,
            profiler(tcfg, self.run_dir / "tb" / "profile") as prof,
            logging_redirect_tqdm(),
            tqdm(total=self.total_steps, initial=p.step, disable=not show_bar, unit="step", dynamic_ncols=True) as bar,
        ):
            while not stop:
                batches = self.sampler.batches(p.epoch)
                # The Meter's clock, less the dev evaluations: training time.
                epoch_started, padding = monitor.clock() - self.eval_seconds, self._padding_share(batches)
                # Every rank takes the same number of steps: the last few batches of an epoch may not fill one.
                usable = p.batch_in_epoch + (len(batches) - p.batch_in_epoch) // self.per_step * self.per_step
                for start in range(p.batch_in_epoch, usable, self.per_step):
                    self.train_step(batches[start : start + self.per_step], meter)
                    p.step += 1
                    p.batch_in_epoch = start + self.per_step  # counted over all ranks, so a resume may use other ranks
                    p.train_seconds = self.clock() - started
                    if tcfg.max_minutes is not None:  # one clock for all ranks: it stops them and sets their lr
                        p.train_seconds = max_over_ranks(p.train_seconds, self.ranks, self.device)
                    bar.update(1)
                    prof.step()
                    if p.step % tcfg.log_every == 0 and meter.steps:  # a window of only skipped steps has no figures
                        self._log_train(meter, bar)
                    if tcfg.eval_every and p.step % tcfg.eval_every == 0 and self._evaluate(meter):
                        stop = "early stopping"
                    stop = stop or self._length_reached()
                    if agree(requests.signal is not None, self.ranks, self.device):
                        self._stop_on_signal(requests.signal or signal.SIGTERM)
                    if stop:
                        break
                else:
                    seconds = monitor.clock() - self.eval_seconds - epoch_started
                    log.info(
                        "epoch %d: %s of training (padding %.1f%%)", p.epoch + 1, format_eta(seconds), 100 * padding
                    )
                    self.writer.add_scalar("train/epoch_seconds", seconds, p.step)
                    self.writer.add_scalar("train/padding_share", padding, p.step)
                    p.epoch += 1
                    p.batch_in_epoch = 0
                    if tcfg.eval_each_epoch and p.last_eval_step != p.step and self._evaluate(meter):
                        stop = "early stopping"
                    stop = stop or self._length_reached()
            if meter.steps:  # the last, partial logging window
                self._log_train(meter, bar)
        log.info("training stopped at step %d (epoch %d): %s", p.step, p.epoch + 1, stop)
        if p.last_eval_step != p.step:
            self._evaluate()
        return self._finish()

    def _stop_on_signal(self, signum: int) -> None:
        """Save last.pt after the step that was running when Ctrl-C or SIGTERM came, and stop."""
        last = self.ckpt_dir / "last.pt"
        if self.ranks.main:
            save_checkpoint(last, self._payload(True))
        self.writer.close()
        name = signal.Signals(signum).name
        message = f"{name} at step {self.progress.step}: saved {last} — resume: nmt-train trainer.resume={self.run_dir}"
        log.info(message)
        raise TrainingInterrupted(signum, message)

    def _log_start(self) -> None:
        log.info("run directory: %s", self.run_dir)
        log.info(
            "vocabulary: source %d, target %d (%s) | specials %s",
            self.tokenizer.src_vocab_size,
            self.tokenizer.tgt_vocab_size,
            self.tokenizer.kind,
            asdict(self.specials),
        )
        log.info("model: %s", describe(self.model, self.cfg.model))
        for line in describe_param_groups(self.model, self.cfg.optim):
            log.info("parameters: %s", line)
        log.info("device %s | %d batches per epoch | %s", self.device, len(self.sampler), self._describe_length())
        share = self._padding_share(self.sampler.batches(self.progress.epoch))
        log.info(
            "data.batch_order=%s: padding is %.1f%% of the batches' positions", self.cfg.data.batch_order, 100 * share
        )
        if self.kernels:
            log.info("CPU kernels: %s", self.kernels.describe())
        warning = precision_warning(self.cfg.trainer.precision, self.device)
        if warning:
            log.warning(warning)

    def _padding_share(self, batches) -> float:
        """The padding share of training batches from the sampler (source and target; lengths only)."""
        return padding_share(self.train_set, batches, self.data.sessions["train"] if self.sessions else None)

    def _describe_length(self) -> str:
        """The run's length and evaluation schedule, as the start of the log states them."""
        tcfg = self.cfg.trainer
        if tcfg.max_steps is not None:
            length = f"training for {self.total_steps} steps (trainer.max_steps)"
        else:
            length = f"training for {self.total_steps} steps ({tcfg.max_epochs} epochs, trainer.max_epochs)"
        if tcfg.max_minutes is not None:
            length += f" or {tcfg.max_minutes:g} minutes (trainer.max_minutes), whichever ends first"
        evals = [f"every {tcfg.eval_every} steps"] if tcfg.eval_every else []
        evals += ["at each epoch end"] if tcfg.eval_each_epoch else []
        evals.append("after the last step")
        return f"{length} | dev evaluation {', '.join(evals)}"

    def _translate_examples(self) -> list[tuple[str, str]]:
        """data.examples and their translations by the model as it is (a chat model has none)."""
        if self.sessions or not self.cfg.data.examples:
            return []
        normalize = make_normalizer(self.cfg.data)
        sources = [normalize(text) for text in self.cfg.data.examples]
        search = SearchConfig(beam_size=TranslateConfig.beam_size)  # what nmt-translate answers by default
        outputs = translate_texts(self.model, self.tokenizer, sources, search, self.device)
        return [(source, nbest[0][0]) for source, nbest in zip(sources, outputs, strict=True)]

    def _finish(self) -> dict:
        """Test the best checkpoint (every rank its share), and on rank 0 write results.json, print the scores and
        the commands to use the model."""
        best_path = self.ckpt_dir / "best.pt"
        best = load_checkpoint(best_path)
        self.model.load_state_dict(best["model"])
        test = self._evaluate_split("test")
        if self.sessions:
            # The ablation: the same replies with the memory emptied before every turn.
            test["memory_reset"] = json_scores(self._evaluate_split("test", reset_memory=True))
        if not self.ranks.main:
            return {}
        report_test(log.info, self.writer, self.cfg, test, best, best_path, self.progress.step)
        self.writer.close()
        report_next_steps(log.info, best_path, self._translate_examples(), self.cfg.paths.log_dir)
        results = {
            "run_dir": str(self.run_dir),
            "steps": self.progress.step,
            "epochs": self.progress.epoch,
            "train_seconds": round(self.progress.train_seconds, 1),
            "parameters": count_parameters(self.model),
            "best_step": best["step"],
            "dev": best["dev"],
            "test": json_scores(test),
        }
        (self.run_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        return results
