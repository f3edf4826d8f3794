"""Training: the loop, loss, optimizers and schedules, checkpoints."""
