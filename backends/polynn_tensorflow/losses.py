"""TensorFlow losses: value(spec, y, p) -> per-sample l, as polynn.losses; the tape differentiates it.

Reduction and sample weights are applied by the runtime. Clipping uses tf.clip_by_value, whose
gradient is zero where the clip is active (bounds included as inside), as the NumPy reference.
"""

from __future__ import annotations

import tensorflow as tf

from polynn.losses import EPSILON

from .activations import log_softmax, neg_abs


def _mse(spec, y, p):
    d = p - y
    return tf.math.reduce_mean(d * d, axis=-1)


def _mae(spec, y, p):
    return tf.math.reduce_mean(tf.math.abs(p - y), axis=-1)


def _smooth_binary(spec, y):
    if spec.label_smoothing:
        return y * (1 - spec.label_smoothing) + 0.5 * spec.label_smoothing
    return y


def _bce(spec, y, p):
    y = _smooth_binary(spec, y)
    if spec.from_logits:
        # max(p, 0) and -|p| through selects on p >= 0 (as tf.nn.sigmoid_cross_entropy_with_logits),
        # so the gradient at p == 0 is sigmoid(0) - y like the reference.
        relu = tf.where(p >= 0, p, tf.zeros_like(p))
        elem = relu - p * y + tf.math.log1p(tf.math.exp(neg_abs(p)))
    else:
        q = tf.clip_by_value(p, EPSILON, 1 - EPSILON)
        elem = -(y * tf.math.log(q) + (1 - y) * tf.math.log(1 - q))
    return tf.math.reduce_mean(elem, axis=spec.axis)


def _smooth_categorical(spec, y, axis):
    if spec.label_smoothing:
        return y * (1 - spec.label_smoothing) + spec.label_smoothing / y.shape[axis]
    return y


def _log_q(spec, p):
    """log of the class probabilities: log_softmax of logits, else of clipped normalized p."""
    if spec.from_logits:
        return log_softmax(p, spec.axis)
    q = p / tf.math.reduce_sum(p, axis=spec.axis, keepdims=True)
    return tf.math.log(tf.clip_by_value(q, EPSILON, 1 - EPSILON))


def _cce(spec, y, p):
    y = _smooth_categorical(spec, y, spec.axis)
    return -tf.math.reduce_sum(y * _log_q(spec, p), axis=spec.axis)


def sparse_labels(y, p):
    """Integer labels shaped like p without its class axis (a trailing axis of 1 is dropped)."""
    if y.shape.rank == p.shape.rank and y.shape[-1] == 1:
        y = y[..., 0]
    return tf.cast(y, tf.int64)


def _scce(spec, y, p):
    axis = spec.axis % p.shape.rank
    # A one-hot sum picks log q[label] exactly: every other term adds a zero.
    onehot = tf.one_hot(sparse_labels(y, p), p.shape[axis], axis=axis, dtype=p.dtype)
    return -tf.math.reduce_sum(onehot * _log_q(spec, p), axis=axis)


IMPLEMENTATIONS = {
    "mean_squared_error": _mse,
    "mean_absolute_error": _mae,
    "binary_crossentropy": _bce,
    "categorical_crossentropy": _cce,
    "sparse_categorical_crossentropy": _scce,
}
