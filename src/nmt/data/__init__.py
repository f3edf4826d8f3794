"""The data pipeline: corpora, tokenizers, token-id datasets and batches."""

from nmt.data.batching import Batch, TokenBatchSampler, collate, pad_sequences
from nmt.data.corpus import (
    CorpusError,
    Example,
    filter_pairs,
    make_normalizer,
    normalize,
    read_corpus,
    read_lines,
    split_corpus,
)
from nmt.data.dataset import PreparedData, TokenizedCorpus, encode_corpus, prepare_data, read_splits
from nmt.data.tokenizer import SpecialIds, Tokenizer, build_tokenizer

__all__ = [
    "Batch",
    "CorpusError",
    "Example",
    "PreparedData",
    "SpecialIds",
    "TokenBatchSampler",
    "TokenizedCorpus",
    "Tokenizer",
    "build_tokenizer",
    "collate",
    "encode_corpus",
    "filter_pairs",
    "make_normalizer",
    "normalize",
    "pad_sequences",
    "prepare_data",
    "read_corpus",
    "read_lines",
    "read_splits",
    "split_corpus",
]
