"""JAX layers: forward(params, x, mask) -> y; JAX differentiates it.

IMPLEMENTATIONS maps each layer name to a class built as cls(backend, spec); layers with an activity
regularizer (`activity` not None) report its penalty of their output through `penalty(y)`.
"""

from __future__ import annotations


class Dense:
    """y = activation(x @ kernel + bias) on the last axis of x, whatever its rank."""

    def __init__(self, backend, spec):
        self.spec = spec
        self.act_forward = backend.implementation("activation", spec.activation.name)
        self.activity = None
        if spec.activity_regularizer is not None:
            self.activity = backend.implementation("regularizer", spec.activity_regularizer.name)

    def forward(self, params, x, mask=None):
        z = x @ params[0]
        if self.spec.use_bias:
            z = z + params[1]
        return self.act_forward(self.spec.activation, z)

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
        self.act_forward = backend.implementation("activation", spec.activation.name)

    def forward(self, params, x, mask=None):
        return self.act_forward(self.spec.activation, x)


class Input:
    """The identity: an Input layer only declares the shape."""

    def __init__(self, backend, spec):
        self.spec = spec
        self.activity = None

    def forward(self, params, x, mask=None):
        return x


IMPLEMENTATIONS = {"dense": Dense, "dropout": Dropout, "activation": Activation, "input": Input}
