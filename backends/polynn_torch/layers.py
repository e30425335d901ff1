"""Torch layers: forward(params, x, mask) -> y; autograd gives the gradients.

IMPLEMENTATIONS maps each layer name to a class built as cls(backend, spec); a layer with an activity
regularizer reports its penalty of y through `penalty(y)`, which joins the training loss.
"""

from __future__ import annotations

import torch


class Dense:
    """y = activation(x @ kernel + bias) on the last axis."""

    def __init__(self, backend, spec):
        self.spec = spec
        self.activation = backend.implementation("activation", spec.activation.name)
        self.activity = None
        if spec.activity_regularizer is not None:
            self.activity = backend.implementation("regularizer", spec.activity_regularizer.name)

    def forward(self, params, x, mask=None):
        if not self.spec.use_bias:
            z = torch.matmul(x, params[0])
        elif x.dim() == 2:
            # One fused call for the common case; the same sum as x @ kernel + bias.
            z = torch.addmm(params[1], x, params[0])
        else:
            z = torch.matmul(x, params[0]) + params[1]
        return self.activation(self.spec.activation, z)

    def penalty(self, y):
        return self.activity(self.spec.activity_regularizer, y) / y.shape[0]


class Dropout:
    """y = x * mask, mask the scaled keep mask the core drew; the identity in inference."""

    def __init__(self, backend, spec):
        self.spec = spec
        self.activity = None

    def forward(self, params, x, mask=None):
        return x if mask is None else x * mask


class Activation:
    """y = activation(x)."""

    def __init__(self, backend, spec):
        self.spec = spec
        self.activity = None
        self.activation = backend.implementation("activation", spec.activation.name)

    def forward(self, params, x, mask=None):
        return self.activation(self.spec.activation, x)


class Input:
    """The identity: an Input layer only declares the shape."""

    def __init__(self, backend, spec):
        self.spec = spec
        self.activity = None

    def forward(self, params, x, mask=None):
        return x


IMPLEMENTATIONS = {"dense": Dense, "dropout": Dropout, "activation": Activation, "input": Input}
