"""TensorFlow's measured override of a shared activation: relu as one TF op."""

from __future__ import annotations

import tensorflow as tf

from polynn import ops as polynn_ops

from . import ops


def _relu(spec, x):
    if spec.plain:  # tf.nn.relu passes no gradient at 0, as the spec; other options: the shared formula
        return tf.nn.relu(x)
    with polynn_ops.using(ops), ops.floats(x.dtype):
        return spec.call(x)


# One op in every traced step where the shared call has a select, a comparison and a fill
# (docs/performance.md#tensorflow-and-torch-activations).
IMPLEMENTATIONS = {"relu": _relu}
