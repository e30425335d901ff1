"""TensorFlow metrics: per_sample(spec, y, p) -> v, the value a mean metric accumulates (see polynn.metrics)."""

from __future__ import annotations

import tensorflow as tf

from .losses import sparse_labels


def _mean_equal(a, b, dtype):
    return tf.math.reduce_mean(tf.cast(tf.math.equal(a, b), dtype), axis=-1)


def _argmax_equal(a, b, dtype):
    return tf.cast(tf.math.equal(a, tf.math.argmax(b, axis=-1)), dtype)


def _mse(spec, y, p):
    d = p - y
    return tf.math.reduce_mean(d * d, axis=-1)


IMPLEMENTATIONS = {
    "exact_accuracy": lambda spec, y, p: _mean_equal(y, p, p.dtype),
    "binary_accuracy": lambda spec, y, p: _mean_equal(y, tf.cast(p > spec.threshold, p.dtype), p.dtype),
    "categorical_accuracy": lambda spec, y, p: _argmax_equal(tf.math.argmax(y, axis=-1), p, p.dtype),
    "sparse_categorical_accuracy": lambda spec, y, p: _argmax_equal(sparse_labels(y, p), p, p.dtype),
    "mean_squared_error": _mse,
    "mean_absolute_error": lambda spec, y, p: tf.math.reduce_mean(tf.math.abs(p - y), axis=-1),
}


def mean_state(values, weights):
    """[sum(w * v), sum(w)] in float64, w broadcast over v's trailing axes (1 when no weights)."""
    if weights is None:
        count = tf.cast(tf.size(values), tf.float64)
        return tf.stack([tf.math.reduce_sum(tf.cast(values, tf.float64)), count])
    w = tf.reshape(weights, tf.concat([tf.shape(weights), tf.ones([values.shape.rank - 1], tf.int32)], 0))
    w = tf.broadcast_to(w, tf.shape(values))
    return tf.stack([tf.math.reduce_sum(tf.cast(w * values, tf.float64)),
                     tf.math.reduce_sum(tf.cast(w, tf.float64))])
