"""Xavier initialisation with the gain of each layer's nonlinearity, shared by every model."""

from __future__ import annotations

from torch import nn

# PyTorch's recurrent weights stack the gates row-wise; the candidate gate goes through tanh, the rest sigmoid.
GATE_NONLINEARITIES = {
    "LSTM": ("sigmoid", "sigmoid", "tanh", "sigmoid"),  # input, forget, cell, output
    "GRU": ("sigmoid", "sigmoid", "tanh"),  # reset, update, new
    "RNN_TANH": ("tanh",),
    "RNN_RELU": ("relu",),
}


def tanh_layer_names(model: nn.Module) -> set[str]:
    """Full names of the Linear layers whose output goes through tanh, from each module's `tanh_layers` (names
    relative to the module that declares them, so a backbone inside a bigger model keeps its own list)."""
    return {
        f"{prefix}.{name}" if prefix else name
        for prefix, module in model.named_modules()
        for name in getattr(module, "tanh_layers", ())
    }


def xavier_init(model: nn.Module, forget_bias: float = 1.0) -> None:
    """Initialise every Linear, Embedding and recurrent layer of `model` in place.

    Linear layers named in a module's `tanh_layers` get tanh's gain, the others gain 1; recurrent weight matrices are
    initialised gate by gate with the gain of that gate's nonlinearity; biases start at zero except the LSTM
    forget gate's, which starts at `forget_bias` so that early gradients flow through the cell.
    A model with its own embedding recipe (the Transformer's scaled embeddings) applies it in its reset_embeddings().
    """
    tanh_layers = tanh_layer_names(model)
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            gain = nn.init.calculate_gain("tanh") if name in tanh_layers else 1.0
            nn.init.xavier_uniform_(module.weight, gain=gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.xavier_uniform_(module.weight)
            if module.padding_idx is not None:
                nn.init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.RNNBase):
            _init_recurrent(module, forget_bias)
    for module in model.modules():
        if hasattr(module, "reset_embeddings"):
            module.reset_embeddings()


def _init_recurrent(rnn: nn.RNNBase, forget_bias: float) -> None:
    gates = GATE_NONLINEARITIES[rnn.mode]
    for name, param in rnn.named_parameters():
        chunks = param.data.chunk(len(gates), dim=0)
        if name.startswith("weight"):
            for chunk, nonlinearity in zip(chunks, gates, strict=True):
                nn.init.xavier_uniform_(chunk, gain=nn.init.calculate_gain(nonlinearity))
        else:
            nn.init.zeros_(param)
            if rnn.mode == "LSTM" and name.startswith("bias_ih"):
                nn.init.constant_(chunks[1], forget_bias)
