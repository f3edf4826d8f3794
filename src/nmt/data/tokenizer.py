"""SentencePiece tokenizers: training on the train split, the model cache, loading, the shared special ids, and
the optional target vocabulary of only the pieces that training targets use."""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import sentencepiece as spm

from nmt.atomic import write_atomic
from nmt.config import TokenizerConfig
from nmt.data.corpus import CorpusError, Example

# Fixed layout of every model trained here; loaded models may differ and are read as they are.
_TRAIN_IDS = {"pad_id": 0, "unk_id": 1, "bos_id": 2, "eos_id": 3}
_MODEL_TYPES = ("unigram", "bpe")


@dataclass(frozen=True)
class SpecialIds:
    pad: int
    unk: int
    bos: int
    eos: int


def _processor(model: bytes, name: str) -> spm.SentencePieceProcessor:
    try:
        return spm.SentencePieceProcessor(model_proto=model)
    except RuntimeError:
        raise CorpusError(f"{name}: not a SentencePiece model — give a .model file written by spm_train") from None


def _specials(sp: spm.SentencePieceProcessor, name: str) -> tuple[SpecialIds, int]:
    """The special ids of one model and its vocabulary size, counting a pad id appended after the pieces."""
    if sp.bos_id() < 0 or sp.eos_id() < 0:
        raise CorpusError(f"{name}: the SentencePiece model has no bos/eos piece — train it with --bos_id and --eos_id")
    size = sp.get_piece_size()
    pad = sp.pad_id()
    if pad < 0:
        pad, size = size, size + 1
    return SpecialIds(pad=pad, unk=sp.unk_id(), bos=sp.bos_id(), eos=sp.eos_id()), size


class Tokenizer:
    """A joint SentencePiece model (tgt_model None) or one model per side, plus the special ids both share.

    target_ids: the target model's piece ids that make the target vocabulary, sorted (None: all of them). Target ids
    are then positions in this list (a piece outside it reads as unk), so the decoder's embedding and output layer
    span only these pieces; the special ids must come first, keeping their values.
    """

    def __init__(
        self,
        src_model: bytes,
        tgt_model: bytes | None = None,
        names=("source model", "target model"),
        target_ids: list[int] | None = None,
    ):
        self.joint = tgt_model is None
        self._src_model = bytes(src_model)
        self._tgt_model = self._src_model if self.joint else bytes(tgt_model)
        self._src = _processor(self._src_model, names[0])
        self._tgt = self._src if self.joint else _processor(self._tgt_model, names[1])
        self.specials, self.src_vocab_size = _specials(self._src, names[0])
        tgt_specials, self.tgt_vocab_size = _specials(self._tgt, names[1])
        if tgt_specials != self.specials:
            raise CorpusError(
                f"{names[1]}: special ids {tgt_specials} differ from {names[0]}'s {self.specials}"
                " — train both models with the same pad/unk/bos/eos ids"
            )
        self.target_ids = None if target_ids is None else [int(i) for i in target_ids]
        if self.target_ids is not None:
            if any(self.target_ids[i] != i for i in sorted(asdict(self.specials).values())):
                raise CorpusError(
                    f"{names[1]}: a trimmed target vocabulary needs the special ids {self.specials} to be the model's"
                    " first ids — set data.tokenizer.trim_target=false"
                )
            self._to_target = np.full(self.tgt_vocab_size, self.specials.unk, dtype=np.int64)
            self._to_target[self.target_ids] = np.arange(len(self.target_ids))
            self._from_target = np.array(self.target_ids, dtype=np.int64)
            self.tgt_vocab_size = len(self.target_ids)
        # Source and target ids mean the same pieces: the models may share embeddings.
        self.shared_vocab = self.joint and self.target_ids is None
        digest = hashlib.sha256(b"joint" if self.joint else b"separate")
        digest.update(hashlib.sha256(self._src_model).digest())
        digest.update(hashlib.sha256(self._tgt_model).digest())
        if self.target_ids is not None:
            digest.update(self._from_target.tobytes())
        self.fingerprint = digest.hexdigest()

    def __repr__(self) -> str:
        kind = self.kind
        sizes = f"src_vocab={self.src_vocab_size}, tgt_vocab={self.tgt_vocab_size}"
        return f"Tokenizer({kind}, {sizes}, {self.specials})"

    def __reduce__(self):
        # SentencePieceProcessor does not pickle; rebuilding from the model bytes does (DataLoader workers).
        return Tokenizer.from_state, (self.state(),)

    @property
    def kind(self) -> str:
        """'joint' or 'separate' SentencePiece models, and whether the target vocabulary is trimmed."""
        return ("joint" if self.joint else "separate") + ("" if self.target_ids is None else ", target trimmed")

    def encode_src(self, texts: list[str]) -> list[list[int]]:
        """Piece ids of each source text, without bos/eos."""
        return self._src.encode(list(texts))

    def encode_tgt(self, texts: list[str]) -> list[list[int]]:
        """Target ids of each target text, without bos/eos."""
        pieces = self._tgt.encode(list(texts))
        if self.target_ids is None:
            return pieces
        return [self._to_target[np.asarray(ids, dtype=np.int64)].tolist() for ids in pieces]

    def _target_pieces(self, ids: list[int]) -> list[int]:
        """The target model's piece ids of target ids."""
        return ids if self.target_ids is None else self._from_target[ids].tolist()

    def decode_tgt(self, ids) -> str:
        """Text of target ids (list[int] or 1-D tensor/array): stops at the first eos, skips pad and bos."""
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        if self.specials.eos in ids:
            ids = ids[: ids.index(self.specials.eos)]
        ids = [i for i in ids if i != self.specials.pad and i != self.specials.bos]
        return self._tgt.decode(self._target_pieces(ids))

    def src_pieces(self, text: str) -> list[str]:
        """The source pieces of a text, e.g. to label attention plots."""
        return self._src.encode(text, out_type=str)

    def tgt_pieces_of(self, ids) -> list[str]:
        """The piece of each target id (list[int] or 1-D tensor/array); an appended pad id reads '<pad>'."""
        ids = self._target_pieces(ids.tolist() if hasattr(ids, "tolist") else list(ids))
        size = self._tgt.get_piece_size()
        return [self._tgt.id_to_piece(i) if i < size else "<pad>" for i in ids]

    def state(self) -> dict:
        """What a checkpoint stores to rebuild this tokenizer with from_state()."""
        state = {"joint": self.joint, "src_model": self._src_model, "tgt_model": self._tgt_model}
        if self.target_ids is not None:
            state["target_ids"] = self.target_ids
        return state

    @classmethod
    def from_state(cls, state: dict) -> Tokenizer:
        return cls(
            state["src_model"], None if state["joint"] else state["tgt_model"], target_ids=state.get("target_ids")
        )


def _trainer_settings(cfg: TokenizerConfig) -> dict:
    if cfg.type not in _MODEL_TYPES:
        raise CorpusError(
            f"data.tokenizer.type={cfg.type!r}: unknown model type — use one of {', '.join(_MODEL_TYPES)}"
        )
    if int(cfg.vocab_size) < len(_TRAIN_IDS) + 1:
        raise CorpusError(f"data.tokenizer.vocab_size={cfg.vocab_size}: too small — use at least a few dozen pieces")
    return {
        "model_type": cfg.type,
        "vocab_size": int(cfg.vocab_size),
        "character_coverage": float(cfg.character_coverage),
        "byte_fallback": bool(cfg.byte_fallback),
        **_TRAIN_IDS,
        # Tiny corpora may not support vocab_size pieces: take fewer instead of failing.
        "hard_vocab_limit": False,
        # Use every sentence in corpus order, so the same texts always give the same model.
        "input_sentence_size": 0,
        "shuffle_input_sentence": False,
        "num_threads": 2,
    }


def _sample(texts: list[str], size: int | None) -> list[str]:
    """At most `size` of the texts, a seeded random sample in corpus order: SentencePiece's time and memory grow
    with its input, while a million sentences already settle the pieces of a vocabulary of tens of thousands."""
    if size is not None and size < 1:
        raise CorpusError(f"data.tokenizer.train_sentences={size}: must be at least 1, or null for every sentence")
    if size is None or len(texts) <= size:
        return texts
    keep = np.sort(np.random.default_rng(0).choice(len(texts), size, replace=False))
    return [texts[i] for i in keep]


def _cache_key(settings: dict, sides: dict[str, list[str]]) -> str:
    digest = hashlib.sha256(json.dumps({"spm": spm.__version__, **settings}, sort_keys=True).encode())
    for side, texts in sides.items():
        digest.update(f"\0{side}\0{len(texts)}\0".encode())
        # Normalised texts hold no newline, so joining with one is unambiguous.
        digest.update("\n".join(texts).encode("utf-8"))
    return digest.hexdigest()[:20]


def _train_spm(texts: list[str], settings: dict, side: str) -> bytes:
    """Serialized SentencePiece model trained in memory on the non-empty texts."""
    texts = [t for t in texts if t]
    if not texts:
        raise CorpusError(f"data.train: no non-empty {side} sentences to train the tokenizer on — check the corpus")
    writer = io.BytesIO()
    try:
        # Quiet by log level: a logstream would redirect sys.stderr's file descriptor, which a replaced
        # sys.stderr (a notebook's, pytest's capture) may not have.
        spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_writer=writer, minloglevel=2, **settings)
    except RuntimeError as e:
        reason = " ".join(str(e).split())
        raise CorpusError(
            f"data.tokenizer: training the {side} SentencePiece model failed ({reason})"
            " — raise data.tokenizer.vocab_size, or set data.tokenizer.byte_fallback=false for a tiny corpus"
        ) from None
    return writer.getvalue()


def _load_models(model, joint: bool, log) -> Tokenizer:
    if joint and not isinstance(model, (str, os.PathLike)):
        raise CorpusError(
            f"data.tokenizer.model={model!r}: a joint tokenizer takes one model path"
            " — give one path, or set data.tokenizer.joint=false for [src_model, tgt_model]"
        )
    if not joint and (isinstance(model, (str, os.PathLike)) or len(model) != 2):
        raise CorpusError(
            f"data.tokenizer.model={model!r}: separate tokenizers take [src_model, tgt_model]"
            " — give both paths, or set data.tokenizer.joint=true for one model"
        )
    paths = [Path(model)] if joint else [Path(p) for p in model]
    for path in paths:
        if not path.is_file():
            raise CorpusError(
                f"{path}: SentencePiece model not found — set data.tokenizer.model to an existing .model"
                " file, or to null to train one"
            )
    blobs = [p.read_bytes() for p in paths]
    names = (str(paths[0]), str(paths[-1]))
    tokenizer = Tokenizer(blobs[0], None if joint else blobs[1], names=names)
    log(f"tokenizer: loaded {', '.join(names)} (vocab {tokenizer.src_vocab_size}/{tokenizer.tgt_vocab_size})")
    return tokenizer


def build_tokenizer(cfg: TokenizerConfig, train: list[Example], cache_dir: str | Path, log=print) -> Tokenizer:
    """Load cfg.model, or train SentencePiece on the train pairs, caching the model under cache_dir; with
    cfg.trim_target, keep as target vocabulary only the special ids and the pieces the training targets use."""
    tokenizer = _full_tokenizer(cfg, train, cache_dir, log)
    if not cfg.trim_target:
        return tokenizer
    used = np.unique(np.fromiter((i for ids in tokenizer.encode_tgt([e.tgt for e in train]) for i in ids), np.int64))
    target_ids = sorted(set(asdict(tokenizer.specials).values()) | set(used.tolist()))
    state = tokenizer.state()
    trimmed = Tokenizer(state["src_model"], None if tokenizer.joint else state["tgt_model"], target_ids=target_ids)
    log(f"tokenizer: target vocabulary trimmed to the {len(target_ids)} of {tokenizer.tgt_vocab_size} ids in use")
    return trimmed


def _full_tokenizer(cfg: TokenizerConfig, train: list[Example], cache_dir: str | Path, log) -> Tokenizer:
    if cfg.model is not None:
        return _load_models(cfg.model, bool(cfg.joint), log)
    settings = _trainer_settings(cfg)
    src, tgt = [e.src for e in train], [e.tgt for e in train]
    sides = {"joint": src + tgt} if cfg.joint else {"src": src, "tgt": tgt}
    sides = {side: _sample(texts, cfg.train_sentences) for side, texts in sides.items()}
    key = _cache_key(settings, sides)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    paths = {side: cache_dir / (f"spm-{key}.model" if cfg.joint else f"spm-{key}.{side}.model") for side in sides}
    where = ", ".join(str(p) for p in paths.values())
    if all(p.is_file() for p in paths.values()):
        models = {side: p.read_bytes() for side, p in paths.items()}
        log(f"tokenizer: loaded cached {cfg.type} model {where}")
    else:
        models = {side: _train_spm(texts, settings, side) for side, texts in sides.items()}
        for side, model in models.items():
            write_atomic(paths[side], model)
        used = sum(map(len, sides.values()))
        log(f"tokenizer: trained {cfg.type} model on {used:,} of the {2 * len(train):,} training sentences -> {where}")
    if cfg.joint:
        return Tokenizer(models["joint"], names=(where, where))
    return Tokenizer(models["src"], models["tgt"], names=(str(paths["src"]), str(paths["tgt"])))
