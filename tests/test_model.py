"""The LSTM-attention model: shapes, gradient flow, padding safety, and step decoding equal to the fast path."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from nmt.config import LSTMAttnConfig
from nmt.models import build_model
from nmt.training.loss import sequence_loss

PAD = 0


def _model(**overrides):
    cfg = OmegaConf.structured(LSTMAttnConfig(embed_dim=16, hidden_size=24, dropout=0.0, **overrides))
    torch.manual_seed(0)
    return build_model(cfg, src_vocab_size=30, tgt_vocab_size=40, pad_id=PAD)


def _batch():
    torch.manual_seed(1)
    src = torch.randint(4, 30, (4, 9))
    src[1, 6:] = PAD
    src[2, 3:] = PAD
    tgt = torch.randint(4, 40, (4, 7))
    tgt[3, 4:] = PAD
    return src, (src != PAD).sum(1), tgt


@pytest.mark.parametrize("attention", ["dot", "general", "bahdanau"])
def test_every_parameter_receives_a_gradient(attention):
    model = _model(attention=attention)
    src, lengths, tgt = _batch()
    sequence_loss(model(src, lengths, tgt), tgt, PAD, 0.1).loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing}"


@pytest.mark.parametrize("attention", ["dot", "general", "bahdanau"])
def test_step_by_step_decoding_equals_the_whole_sequence_pass(attention):
    model = _model(attention=attention, encoder_layers=2, decoder_layers=3).eval()
    src, lengths, tgt = _batch()
    full = torch.log_softmax(model(src, lengths, tgt), dim=-1)
    enc = model.encode(src, lengths)
    state = model.init_state(enc)
    for t in range(tgt.size(1)):
        log_probs, state, attn = model.decode_step(tgt[:, t], state, enc)
        torch.testing.assert_close(log_probs, full[:, t], rtol=1e-5, atol=1e-5)
        assert torch.allclose(attn.sum(-1), torch.ones(4))
        assert (attn[1, 6:] == 0).all(), "attention must not look at padding"


def test_an_all_padding_row_gives_finite_loss_and_gradients():
    model = _model()
    src, lengths, tgt = _batch()
    src[0] = PAD
    lengths[0] = 0
    out = sequence_loss(model(src, lengths, tgt), tgt, PAD, 0.1)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_loss_of_a_batch_of_only_padding_is_zero_not_nan():
    logits = torch.randn(2, 3, 40, requires_grad=True)
    out = sequence_loss(logits, torch.full((2, 3), PAD), PAD, 0.1)
    out.loss.backward()
    assert out.loss.item() == 0.0 and int(out.n_tokens) == 0
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_loss_and_its_gradient_equal_pytorch_cross_entropy(eps):
    torch.manual_seed(3)
    logits = torch.randn(3, 5, 40, requires_grad=True)
    target = torch.randint(1, 40, (3, 5))
    target[2, 2:] = PAD
    out = sequence_loss(logits.clone(), target, PAD, eps)
    reference = (
        torch.nn.functional.cross_entropy(
            logits.reshape(-1, 40), target.reshape(-1), ignore_index=PAD, label_smoothing=eps, reduction="sum"
        )
        / (target != PAD).sum()
    )
    (grad,) = torch.autograd.grad(out.loss, logits)
    (expected,) = torch.autograd.grad(reference, logits)
    torch.testing.assert_close(out.loss, reference)
    torch.testing.assert_close(grad, expected)
    nll = torch.nn.functional.cross_entropy(
        logits.reshape(-1, 40), target.reshape(-1), ignore_index=PAD, reduction="sum"
    )
    torch.testing.assert_close(out.nll_sum, nll.detach())
    assert int(out.n_correct) == int(((logits.argmax(-1) == target) & (target != PAD)).sum())


def test_loss_ignores_padding_positions():
    logits = torch.randn(1, 4, 40)
    target = torch.tensor([[5, 6, PAD, PAD]])
    changed = logits.clone()
    changed[0, 2:] = torch.randn(2, 40)
    assert sequence_loss(logits, target, PAD, 0.1).loss == sequence_loss(changed, target, PAD, 0.1).loss


def test_xavier_init_sets_forget_gate_bias_and_zero_padding_embedding():
    model = _model(forget_bias=1.0)
    hidden = model.decoder.hidden_size
    bias = model.decoder.bias_ih_l0
    assert torch.all(bias[hidden : 2 * hidden] == 1.0)
    assert torch.all(bias[:hidden] == 0.0) and torch.all(model.decoder.bias_hh_l0 == 0.0)
    assert torch.all(model.tgt_embed.weight[PAD] == 0)
    # The tanh candidate gate is initialised with tanh's gain (5/3): a wider spread than the sigmoid gates'.
    w = model.decoder.weight_hh_l0
    assert w[2 * hidden : 3 * hidden].std() > 1.3 * w[:hidden].std()


def test_unknown_attention_is_an_error():
    with pytest.raises(ValueError, match="unknown attention"):
        _model(attention="cosine")
