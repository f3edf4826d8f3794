"""Decoding: one greedy and one beam search for every model, and corpus-level translation."""

from nmt.decoding.search import Hypothesis, beam_search, greedy_search, search
from nmt.decoding.translate import translate_ids, translate_texts

__all__ = ["Hypothesis", "beam_search", "greedy_search", "search", "translate_ids", "translate_texts"]
