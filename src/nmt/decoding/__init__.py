"""Decoding: one greedy and one beam search for every model, and corpus-level translation."""

from nmt.decoding.search import beam_search, greedy_search, search
from nmt.decoding.translate import translate_ids, translate_texts

__all__ = ["beam_search", "greedy_search", "search", "translate_ids", "translate_texts"]
