"""TensorFlow implementations of user functions (custom_loss, custom_metric).

The function runs on TF tensors under polynn.ops.using(this backend's ops) while the step's
tf.function traces, so it becomes part of the graph and GradientTape differentiates it.
"""

from __future__ import annotations

import contextlib

import tensorflow as tf

from polynn import ops as polynn_ops
from polynn.backend import check_values

from . import ops as tf_ops


@contextlib.contextmanager
def _running(like):
    with polynn_ops.using(tf_ops), tf_ops.floats(like.dtype):
        yield


def _result(value, like):
    return tf.cast(tf_ops.convert_to_tensor(value), like.dtype)


def loss(spec, y, p):
    with _running(p):
        return _per_sample(spec, _result(spec.function(y, p), p), p)


def metric(spec, y, p):
    with _running(p):
        return _per_sample(spec, _result(spec.function(y, p), p), p)


def _per_sample(spec, values, p):
    # Static shapes while tracing: the batch axis may be unknown (None) there, and then matches.
    batch = p.shape[0]
    check_values(spec, [batch if d is None else d for d in values.shape], [batch, *p.shape[1:]])
    return values
