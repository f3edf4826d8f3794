"""The data pipeline: corpora, tokenizers, token-id datasets and batches."""

from nmt.data.batching import (
    Batch,
    SessionBatch,
    TokenBatchSampler,
    collate,
    collate_sessions,
    pad_sequences,
    padding_share,
    session_sampler,
)
from nmt.data.binarized import TextPairs
from nmt.data.corpus import (
    CorpusError,
    Example,
    filter_pairs,
    make_normalizer,
    normalize,
    read_corpus,
    read_dialogues,
    read_lines,
    split_corpus,
)
from nmt.data.dataset import PreparedData, TokenizedCorpus, encode_corpus, read_splits
from nmt.data.preprocess import binarized_dir, prepare_data
from nmt.data.tokenizer import SpecialIds, Tokenizer, build_tokenizer

__all__ = [
    "Batch",
    "CorpusError",
    "Example",
    "PreparedData",
    "SessionBatch",
    "SpecialIds",
    "TextPairs",
    "TokenBatchSampler",
    "TokenizedCorpus",
    "Tokenizer",
    "binarized_dir",
    "build_tokenizer",
    "collate",
    "collate_sessions",
    "encode_corpus",
    "filter_pairs",
    "make_normalizer",
    "normalize",
    "pad_sequences",
    "padding_share",
    "prepare_data",
    "read_corpus",
    "read_dialogues",
    "read_lines",
    "read_splits",
    "session_sampler",
    "split_corpus",
]
