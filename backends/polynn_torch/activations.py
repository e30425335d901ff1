"""Torch activations: forward(spec, x) -> y, as the spec docstrings; autograd gives the gradients."""

from __future__ import annotations

import torch

IMPLEMENTATIONS = {
    "linear": lambda spec, x: x,
    "relu": lambda spec, x: torch.relu(x),
    "sigmoid": lambda spec, x: torch.sigmoid(x),
    "tanh": lambda spec, x: torch.tanh(x),
    # torch's softmax is exp(x - max) / sum(...), and its backward is s * (dy - sum(dy * s)).
    "softmax": lambda spec, x: torch.softmax(x, dim=spec.axis),
}
