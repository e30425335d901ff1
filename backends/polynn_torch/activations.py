"""Torch activations: forward(spec, x) -> y, as the spec docstrings; autograd gives the gradients.

Where the spec's gradient at a kink differs from what autograd would take from a formula's pieces
(softplus at 0, leaky_relu and relu6 at their corners), the forward is written so the pieces'
derivatives add up to the spec's value; the forward values are unchanged.
"""

from __future__ import annotations

import torch

from polynn.activations import SELU_ALPHA, SELU_SCALE

from . import custom
from .special import softplus


def _relu(spec, x):
    if spec.threshold != 0:
        # The mask is a constant, so the gradient is 1 where x > threshold, as the spec.
        y = x * (x > spec.threshold)
    else:
        y = torch.relu(x)
    if spec.max_value is not None:
        # clamp passes the gradient on [0, max_value], ends included, as the spec.
        y = torch.clamp(y, 0, spec.max_value)
    if spec.negative_slope != 0:
        y = y - spec.negative_slope * torch.relu(spec.threshold - x)
    return y


def _elu(alpha, x):
    return torch.where(x > 0, x, alpha * torch.expm1(torch.clamp(x, max=0)))


def _relu6(x):
    # relu's gradient is 0 at 0 and the constant branch's is 0 at 6: the spec's open interval.
    return torch.where(x < 6, torch.relu(x), 6.0)


def _gelu(spec, x):
    return torch.nn.functional.gelu(x, approximate="tanh" if spec.approximate else "none")


IMPLEMENTATIONS = {
    "linear": lambda spec, x: x,
    "relu": _relu,
    "sigmoid": lambda spec, x: torch.sigmoid(x),
    "tanh": lambda spec, x: torch.tanh(x),
    # torch's softmax is exp(x - max) / sum(...), and its backward is s * (dy - sum(dy * s)).
    "softmax": lambda spec, x: torch.softmax(x, dim=spec.axis),
    "log_softmax": lambda spec, x: torch.log_softmax(x, dim=spec.axis),
    "elu": lambda spec, x: _elu(spec.alpha, x),
    "selu": lambda spec, x: SELU_SCALE * _elu(SELU_ALPHA, x),
    "softplus": lambda spec, x: softplus(x),
    "softsign": lambda spec, x: x / (1 + torch.abs(x)),
    "gelu": _gelu,
    "silu": lambda spec, x: x * torch.sigmoid(x),
    "leaky_relu": lambda spec, x: torch.where(x > 0, x, spec.negative_slope * x),
    "relu6": lambda spec, x: _relu6(x),
    "exponential": lambda spec, x: torch.exp(x),
    "hard_sigmoid": lambda spec, x: _relu6(x + 3) / 6,
    "hard_silu": lambda spec, x: x * _relu6(x + 3) / 6,
    "mish": lambda spec, x: x * torch.tanh(softplus(x)),
    "custom_activation": custom.activation,
}
