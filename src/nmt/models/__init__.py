"""Model registry: build any architecture from its config by name."""

from __future__ import annotations

from torch import nn

from nmt.models.init import xavier_init
from nmt.models.lstm_attn import LSTMAttention
from nmt.models.memory_lstm import MemoryLSTM
from nmt.models.rnn import RNNSeq2Seq
from nmt.models.transformer import Transformer

MODELS = {"rnn": RNNSeq2Seq, "lstm_attn": LSTMAttention, "transformer": Transformer, "memory_lstm": MemoryLSTM}


def _core(cfg):
    """The config that sizes the network: a memory-LSTM's chosen backbone, else the model's own."""
    return cfg[cfg.backbone] if cfg.name == "memory_lstm" else cfg


def build_model(cfg, src_vocab_size: int, tgt_vocab_size: int, pad_id: int, joint_vocab: bool = False) -> nn.Module:
    """Instantiate the model named by cfg.name (only nmt's own classes, whatever the config says).

    joint_vocab: source and target share one vocabulary, so models may share their embeddings.
    """
    if cfg.name not in MODELS:
        raise ValueError(f"unknown model '{cfg.name}'; known: {', '.join(MODELS)}")
    model = MODELS[cfg.name](cfg, src_vocab_size, tgt_vocab_size, pad_id, joint_vocab)
    xavier_init(model, forget_bias=_core(cfg).get("forget_bias", 1.0))
    return model


def model_width(cfg) -> int:
    """d_model or hidden_size: the width the noam schedule scales by."""
    core = _core(cfg)
    return core.get("d_model") or core.get("hidden_size")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def describe(model: nn.Module, cfg) -> str:
    """One line naming the architecture and its settings (a memory-LSTM: its memory and its chosen backbone)."""
    if cfg.name == "memory_lstm":
        memory = ", ".join(f"{k}={v}" for k, v in cfg.memory.items())
        return f"memory_lstm(memory({memory}), backbone={describe(model.backbone, cfg[cfg.backbone])})"
    settings = ", ".join(f"{k}={v}" for k, v in cfg.items() if k != "name")
    return f"{cfg.name}({settings})"
