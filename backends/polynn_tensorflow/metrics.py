"""The mean state the TensorFlow runtime accumulates; every metric is its spec's call() (per-sample
values) or increment() (state increment) on polynn.ops."""

from __future__ import annotations

import tensorflow as tf


def mean_state(values, weights):
    """[sum(w * v), sum(w)] in float64, w broadcast over v's trailing axes (1 when no weights)."""
    if weights is None:
        count = tf.cast(tf.size(values), tf.float64)
        return tf.stack([tf.math.reduce_sum(tf.cast(values, tf.float64)), count])
    w = tf.reshape(weights, tf.concat([tf.shape(weights), tf.ones([values.shape.rank - 1], tf.int32)], 0))
    w = tf.broadcast_to(w, tf.shape(values))
    return tf.stack([tf.math.reduce_sum(tf.cast(w * values, tf.float64)),
                     tf.math.reduce_sum(tf.cast(w, tf.float64))])
