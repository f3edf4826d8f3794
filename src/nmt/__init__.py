"""nmt: a PyTorch toolkit for training and studying sequence-to-sequence translation models."""

__version__ = "0.1.0"
