"""nmt-train: compose the Hydra config and run the trainer in the run directory Hydra created."""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig

from nmt.cli import reports_errors
from nmt.config import register_configs
from nmt.training.trainer import Trainer

register_configs()


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
@reports_errors("nmt-train")
def main(cfg) -> float:
    results = Trainer(cfg, HydraConfig.get().runtime.output_dir).fit()
    return results["dev"]["bleu"]  # what a Hydra sweeper would optimise


if __name__ == "__main__":
    main()
