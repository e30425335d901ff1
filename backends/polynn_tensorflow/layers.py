"""TensorFlow layers: forward(params, x, mask) -> y; the tape differentiates it.

IMPLEMENTATIONS maps each layer name to a class built as cls(backend, spec); layers with an activity
regularizer (`activity` not None) report its penalty of their output through `penalty(y)`.
"""

from __future__ import annotations

import tensorflow as tf


class Dense:
    """y = activation(x @ kernel + bias) on the last axis of x, whatever its rank."""

    def __init__(self, backend, spec):
        self.spec = spec
        self.act_forward = backend.implementation("activation", spec.activation.name)
        self.activity = None
        if spec.activity_regularizer is not None:
            self.activity = backend.implementation("regularizer", spec.activity_regularizer.name)

    def forward(self, params, x, mask=None):
        kernel = params[0]
        if x.shape.rank == 2:
            z = tf.linalg.matmul(x, kernel)
        else:
            # Fold the leading axes into rows: one 2-D product, as numpy's batched matmul per row.
            rows = tf.reshape(x, [-1, kernel.shape[0]])
            z = tf.reshape(tf.linalg.matmul(rows, kernel), tf.concat([tf.shape(x)[:-1], [kernel.shape[1]]], 0))
        if self.spec.use_bias:
            z = z + params[1]
        return self.act_forward(self.spec.activation, z)

    def penalty(self, y):
        batch = tf.cast(tf.shape(y)[0], y.dtype)
        return self.activity(self.spec.activity_regularizer, y) / batch


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
