"""Every model: gradients reach every parameter, step decoding equals the fast path, padding is harmless."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from nmt.config import MODEL_SCHEMAS, LSTMAttnConfig, RNNConfig
from nmt.models import MODELS, build_model
from nmt.training.loss import sequence_loss
from tests.conftest import build_tiny, padded_batch

PAD = 0

# Each model with each of its structural switches.
VARIANTS = [
    ("lstm_attn", {"attention": "dot"}),
    ("lstm_attn", {"attention": "general", "encoder_layers": 2, "decoder_layers": 3}),
    ("lstm_attn", {"attention": "bahdanau", "bidirectional": False}),
    ("rnn", {"cell": "rnn", "context": "every_step"}),
    ("rnn", {"cell": "gru", "context": "initial", "encoder_layers": 2, "decoder_layers": 2}),
    ("rnn", {"cell": "lstm", "context": "initial", "encoder_layers": 2, "decoder_layers": 3}),
    ("rnn", {"cell": "lstm", "context": "every_step", "bidirectional": False}),
    ("transformer", {"norm": "pre", "positions": "sinusoidal"}),
    ("transformer", {"norm": "pre", "positions": "learned"}),
    ("transformer", {"norm": "post", "positions": "sinusoidal"}),
    ("transformer", {"norm": "post", "positions": "learned"}),
    # One turn from an empty memory (the dialogue behaviour has its own tests in test_memory.py).
    ("memory_lstm", {"backbone": "transformer"}),
    ("memory_lstm", {"backbone": "lstm_attn"}),
]
IDS = [f"{name}-" + "-".join(str(v) for v in options.values()) for name, options in VARIANTS]


def test_every_registered_model_is_tested():
    assert {name for name, _ in VARIANTS} == set(MODELS) == set(MODEL_SCHEMAS)


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=IDS)
def test_every_parameter_receives_a_gradient(name, options):
    model = build_tiny(name, **options)
    src, lengths, tgt = padded_batch()
    sequence_loss(model(src, lengths, tgt), tgt, PAD, 0.1).loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing}"


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=IDS)
def test_step_by_step_decoding_equals_the_whole_sequence_pass(name, options):
    model = build_tiny(name, **options).eval()
    src, lengths, tgt = padded_batch()
    full = torch.log_softmax(model(src, lengths, tgt), dim=-1)
    enc = model.encode(src, lengths)
    state = model.init_state(enc)
    for t in range(tgt.size(1)):
        log_probs, state, attn = model.decode_step(tgt[:, t], state, enc, need_weights=True)
        torch.testing.assert_close(log_probs, full[:, t], rtol=1e-5, atol=1e-5)
        if attn is not None:
            assert torch.allclose(attn.sum(-1), torch.ones(4))
            assert (attn[1, 6:] == 0).all(), "attention must not look at padding"


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=IDS)
def test_an_all_padding_row_gives_finite_loss_and_gradients(name, options):
    model = build_tiny(name, **options)
    src, lengths, tgt = padded_batch()
    src[0] = PAD
    lengths[0] = 0
    out = sequence_loss(model(src, lengths, tgt), tgt, PAD, 0.1)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_loss_of_a_batch_of_only_padding_is_zero_not_nan():
    logits = torch.randn(2, 3, 40, requires_grad=True)
    out = sequence_loss(logits.clone(), torch.full((2, 3), PAD), PAD, 0.1)
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
    flat_logits, flat_target = logits.reshape(-1, 40), target.reshape(-1)
    reference = (
        torch.nn.functional.cross_entropy(
            flat_logits, flat_target, ignore_index=PAD, label_smoothing=eps, reduction="sum"
        )
        / (target != PAD).sum()
    )
    (grad,) = torch.autograd.grad(out.loss, logits)
    (expected,) = torch.autograd.grad(reference, logits)
    torch.testing.assert_close(out.loss, reference)
    torch.testing.assert_close(grad, expected)
    nll = torch.nn.functional.cross_entropy(flat_logits, flat_target, ignore_index=PAD, reduction="sum")
    torch.testing.assert_close(out.nll_sum, nll.detach())
    assert int(out.n_correct) == int(((logits.argmax(-1) == target) & (target != PAD)).sum())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_loss_leaves_the_logits_as_they_were_for_any_producer(dtype):
    """exp saves its output for its backward: the loss must not touch it, so the gradient stays right."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 40, dtype=dtype, requires_grad=True)
    target = torch.randint(1, 40, (2, 3))
    logits = torch.exp(x)
    before = logits.detach().clone()
    sequence_loss(logits, target, PAD, 0.1).loss.backward()
    assert torch.equal(logits.detach(), before)
    reference = x.detach().clone().requires_grad_()
    logits = torch.exp(reference).float().view(-1, 40)
    torch.nn.functional.cross_entropy(logits, target.view(-1), label_smoothing=0.1).backward()
    torch.testing.assert_close(x.grad, reference.grad)


def test_loss_ignores_padding_positions():
    logits = torch.randn(1, 4, 40)
    target = torch.tensor([[5, 6, PAD, PAD]])
    changed = logits.clone()
    changed[0, 2:] = torch.randn(2, 40)
    assert sequence_loss(logits, target, PAD, 0.1).loss == sequence_loss(changed, target, PAD, 0.1).loss


@pytest.mark.parametrize(
    "cfg", [LSTMAttnConfig(hidden_size=64, forget_bias=1.0), RNNConfig(cell="lstm", hidden_size=64)]
)
def test_xavier_init_sets_forget_gate_bias_and_zero_padding_embedding(cfg):
    model = build_model(OmegaConf.structured(cfg), 30, 40, PAD)
    hidden = model.decoder.hidden_size
    bias = model.decoder.bias_ih_l0
    assert torch.all(bias[hidden : 2 * hidden] == 1.0)
    assert torch.all(bias[:hidden] == 0.0) and torch.all(model.decoder.bias_hh_l0 == 0.0)
    assert torch.all(model.tgt_embed.weight[PAD] == 0)
    # The tanh candidate gate is initialised with tanh's gain (5/3): a wider spread than the sigmoid gates'.
    w = model.decoder.weight_hh_l0
    assert w[2 * hidden : 3 * hidden].std() > 1.3 * w[:hidden].std()


def test_gru_gates_get_their_own_gains():
    model = build_model(OmegaConf.structured(RNNConfig(cell="gru", hidden_size=64)), 30, 40, PAD)
    w = model.decoder.weight_hh_l0  # reset, update (sigmoid), new (tanh)
    assert w[128:].std() > 1.3 * w[:64].std()


@pytest.mark.parametrize(("name", "kwargs"), [("lstm_attn", {"attention": "cosine"}), ("rnn", {"cell": "lstm2"})])
def test_unknown_options_are_errors(name, kwargs):
    with pytest.raises(ValueError, match="expected one of"):
        build_tiny(name, **kwargs)
