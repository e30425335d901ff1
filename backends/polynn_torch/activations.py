"""Torch's measured overrides of shared activations: the blog model's relu, sigmoid and tanh as one native call each."""

from __future__ import annotations

import torch

from polynn import ops as polynn_ops

from . import ops


def _relu(spec, x):
    if spec.plain:  # torch.relu's slope at 0 is 0, the spec's; other options take the shared formula
        return torch.relu(x)
    with polynn_ops.using(ops), ops.floats(x.dtype, x.device):
        return spec.call(x)


# One native kernel and autograd node each, where the shared calls build the same values from
# selects and comparisons (docs/performance.md#torch-activations).
IMPLEMENTATIONS = {
    "relu": _relu,
    "sigmoid": lambda spec, x: torch.sigmoid(x),
    "tanh": lambda spec, x: torch.tanh(x),
}
