"""Numerically careful TensorFlow functions shared by the backend's modules: sigmoid, softplus, softmax."""

from __future__ import annotations

import tensorflow as tf


def neg_abs(x):
    """-|x| through a select on x >= 0: its gradient at 0 is -1, where -abs's would be 0, so the
    functions built on it (sigmoid, softplus) get their true derivative at 0."""
    return tf.where(x >= 0, -x, x)


def positive_part(x):
    """max(x, 0) through a select on x >= 0: gradient 1 at 0, the partner of neg_abs in softplus."""
    return tf.where(x >= 0, x, tf.zeros_like(x))


def sigmoid(x):
    # exp of -|x| only, so no overflow: 1 / (1 + e^-x) for x >= 0 and e^x / (1 + e^x) below.
    e = tf.math.exp(neg_abs(x))
    return tf.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softplus(x):
    return positive_part(x) + tf.math.log1p(tf.math.exp(neg_abs(x)))


def _shifted(x, axis):
    # The shift by the max cancels exactly in softmax, so it carries no gradient.
    return x - tf.stop_gradient(tf.math.reduce_max(x, axis=axis, keepdims=True))


def softmax(x, axis=-1):
    e = tf.math.exp(_shifted(x, axis))
    return e / tf.math.reduce_sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    shifted = _shifted(x, axis)
    return shifted - tf.math.log(tf.math.reduce_sum(tf.math.exp(shifted), axis=axis, keepdims=True))
