"""nmt-train: compose the Hydra config and run the trainer in the run directory Hydra created (or, when resuming,
in the resumed run's own directory)."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from nmt.cli import OPTION, check_ranges, compose_config, reports_errors, reports_hydra_errors
from nmt.config import register_configs
from nmt.errors import UserError
from nmt.study import collect, write_study
from nmt.training.interrupt import TrainingInterrupted
from nmt.training.run_state import resume_checkpoint
from nmt.training.trainer import Trainer

register_configs()

# Hydra's own flags, which nmt-train takes as they are (nmt-train --help lists them).
HYDRA_OPTIONS = {
    *("-h", "--help", "--hydra-help", "--version", "-c", "--cfg", "--resolve", "-p", "--package", "-i", "--info"),
    *("-m", "--multirun", "-r", "--run", "-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir"),
    *("-sc", "--shell-completion", "--experimental-rerun"),
}
_MODES = {"-m": "-m", "--multirun": "-m", "-c": "--cfg", "--cfg": "--cfg", "-i": "--info", "--info": "--info"}


def check_options(argv: list[str]) -> None:
    """One line, instead of argparse's usage block or Hydra's traceback, for an unknown -x/--x or two modes."""
    options = [a.partition("=")[0] for a in argv if OPTION.match(a)]
    unknown = [o for o in options if o not in HYDRA_OPTIONS]
    if unknown:
        raise UserError(f"unknown option {unknown[0]}: settings are key=value words (see nmt-train --help)")
    modes = sorted({_MODES[o] for o in options if o in _MODES})
    if len(modes) > 1:
        raise UserError(f"{' and '.join(modes)} do not go together: use one of them")


@reports_errors("nmt-train")
def resume_in_place(argv: list[str]) -> list[str]:
    """Check the options and settings (keys, types, ranges) before Hydra creates a run directory. With
    trainer.resume: the run's own overrides (those given now win) and those that continue the run in its own
    directory, so that its train.log and TensorBoard history go on where they stopped; this invocation's Hydra
    config goes to .hydra/resume-<time> beside the original's, which stays. trainer.resume=auto becomes the
    checkpoint it picks."""
    check_options(argv)
    overrides = [a for a in argv if "=" in a and not a.startswith(("-", "hydra."))]
    if any(a in ("-m", "--multirun") for a in argv):
        return argv  # a sweep: each job checks its own settings
    cfg = compose_config("train", overrides)
    if cfg.trainer.resume is None or any(a.startswith("hydra.run.dir=") for a in argv):
        return argv  # a fresh run, or a run directory chosen by hand: Hydra's choice stands
    last = resume_checkpoint(cfg)
    if last.parent.name != "checkpoints":
        return argv  # a checkpoint outside a run directory: a new run directory it is
    run_dir = last.parent.parent
    given = {_key(a) for a in overrides}
    kept = [o for o in saved_overrides(run_dir) if _key(o) not in given]
    if kept:
        print(f"nmt-train: resuming {run_dir} with its own settings: {' '.join(kept)}", file=sys.stderr)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    argv = [f"trainer.resume={last}" if a.startswith("trainer.resume=") else a for a in argv]
    return [*kept, *argv, f"hydra.run.dir={run_dir}", f"hydra.output_subdir=.hydra/resume-{stamp}"]


def _key(override: str) -> str:
    return override.lstrip("+~").partition("=")[0]


def saved_overrides(run_dir: Path) -> list[str]:
    """The overrides a run was started (or last resumed) with, from its .hydra/ (or newest .hydra/resume-*/)
    overrides.yaml: resuming re-applies them, so that `nmt-train trainer.resume=<run>` continues that run as it
    was configured. None where the run directory holds no Hydra record."""
    records = sorted((run_dir / ".hydra").glob("resume-*/overrides.yaml")) or [run_dir / ".hydra" / "overrides.yaml"]
    if not records[-1].is_file():
        return []
    saved = OmegaConf.load(records[-1])
    return [o for o in saved if not _key(o).startswith(("trainer.resume", "hydra."))]


@reports_hydra_errors("nmt-train")
@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
@reports_errors("nmt-train")
def train(cfg) -> float:
    check_ranges(cfg)
    try:
        results = Trainer(cfg, HydraConfig.get().runtime.output_dir).fit()
    except TrainingInterrupted as stopped:
        print(f"nmt-train: {stopped}", file=sys.stderr)
        sys.exit(stopped.exit_code)
    return results["dev"]["bleu"] if results else None  # what a Hydra sweeper optimises (rank 0 has the results)


class SweepTable(Callback):
    """When a sweep's jobs are done: nmt-study's table and plots of its runs, in <sweep dir>/study and on the
    console (configs/train.yaml names this callback)."""

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep = Path(config.hydra.sweep.dir)
        try:
            study = collect([sweep])
            _, table = write_study(study, sweep / "study")
        except UserError as e:
            print(f"nmt-train: no sweep table: {e}", file=sys.stderr)
            return
        for warning in study.warnings:
            print(f"nmt-train: warning: {warning}", file=sys.stderr)
        print(f"\nnmt-train: the sweep's {len(study.rows)} runs (also in {sweep / 'study'}, with plots):")
        print(table, end="")


def main() -> None:
    sys.argv[1:] = resume_in_place(sys.argv[1:])
    if int(os.environ.get("RANK", "0")) > 0:
        # Under torchrun, rank 0 alone writes the run directory's config and log; the others warn on the console.
        sys.argv += ["hydra.output_subdir=null", "hydra/job_logging=stdout"]
    train()


if __name__ == "__main__":
    main()
