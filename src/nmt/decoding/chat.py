"""A chat with a memory-LSTM: the memory carried from turn to turn, the model's own replies read into it too."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from nmt.config import SearchConfig
from nmt.data.corpus import normalize as plain_normalize
from nmt.data.tokenizer import Tokenizer
from nmt.decoding.search import search
from nmt.models.base import EncoderOut, LSTMState


@dataclass
class Chat:
    """One session at a time with a MemoryLSTM (in eval mode); reset() starts the next.

    In training every turn of a session, both speakers', passes through the memory in order, each read while the
    decoder produces the next. So reply() reads the user's turn, decodes the reply from it, then reads that reply
    as the turn before the user's next one. Turns are cut to max_len tokens, as training cut them (data.max_len).
    """

    model: torch.nn.Module
    tokenizer: Tokenizer
    search_cfg: SearchConfig  # the best hypothesis is the reply
    device: torch.device
    normalize: Callable[[str], str] = plain_normalize  # the checkpoint's data normalisation
    max_len: int = 64
    memory: LSTMState = field(init=False)  # (1, 1, hidden) each

    def __post_init__(self):
        self.reset()

    def reset(self) -> None:
        """Forget the session: the next turn starts from the empty memory, as every session did in training."""
        self.memory = self.model.initial_memory(1, self.device)

    def _encode(self, text: str) -> list[int]:
        text = self.normalize(text)
        return self.tokenizer.encode_src([text])[0][: self.max_len] if text else []

    def _read(self, ids: list[int]) -> tuple[EncoderOut, torch.Tensor, torch.Tensor]:
        """Read one turn into the memory; returns its EncoderOut, src (1, len) and src_lengths (1,)."""
        src = torch.tensor([ids], dtype=torch.long, device=self.device)
        lengths = torch.tensor([len(ids)], dtype=torch.long, device=self.device)
        enc, self.memory = self.model.read_turn(src, lengths, self.memory)
        return enc, src, lengths

    @torch.no_grad()
    def reply(self, text: str) -> str:
        """The model's reply to the user's turn `text`; an empty turn (nothing left after normalising) gets ""
        and leaves the memory as it was, since training never saw an empty turn."""
        ids = self._encode(text)
        if not ids:
            return ""
        enc, src, lengths = self._read(ids)
        best = search(self.model.backbone, src, lengths, self.tokenizer.specials, self.search_cfg, enc=enc)[0][0]
        reply = self.tokenizer.decode_tgt(best.tokens)
        # Re-encoded from the text, as training encoded every turn; an empty reply is no turn (as above).
        reply_ids = self._encode(reply)
        if reply_ids:
            self._read(reply_ids)
        return reply
