"""nmt: a PyTorch toolkit for training and studying sequence-to-sequence translation models."""

import os

__version__ = "0.1.0"

# oneDNN, which runs bf16 matrix products and LSTMs on the CPU, caches a compiled kernel with its buffers for each
# tensor shape, up to 1,024 of them. Token-budget batches come in hundreds of shapes, so with bf16 a training
# process grew by gigabytes (Tatoeba en->zh Transformer: 6 GB after 40 minutes; docs/performance.md, "Memory").
# A small cache bounds that; an explicit setting wins. oneDNN reads it when it makes its first kernel, which no
# `import nmt` precedes.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")
