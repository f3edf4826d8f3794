"""nmt: a PyTorch toolkit for training and studying sequence-to-sequence translation models."""

import os

__version__ = "0.1.0"

# oneDNN, which runs bf16 matrix products and LSTMs on the CPU, compiles a kernel for each tensor shape and keeps up
# to 1,024 of them. Token-budget batches come in hundreds of shapes, so with bf16 a training process grew by
# gigabytes (Tatoeba en->zh Transformer: 6 GB after 40 minutes; docs/performance.md, "Memory of bf16 training").
# A small cache bounds that; an explicit setting wins. oneDNN reads the variable when it compiles its first kernel,
# so it is set here, on import, before any tensor work of nmt's.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")
