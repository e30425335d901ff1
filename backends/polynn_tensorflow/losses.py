"""TensorFlow losses: value(spec, y, p) -> per-sample l, as polynn.losses; the tape differentiates it.

Reduction and sample weights are applied by the runtime. Clipping uses tf.clip_by_value, whose
gradient is zero where the clip is active (bounds included as inside), as the NumPy reference.
"""

from __future__ import annotations

import tensorflow as tf

from polynn.losses import EPSILON

from . import custom
from .special import log_softmax, neg_abs, softplus


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


def _mape(spec, y, p):
    return 100 * tf.math.reduce_mean(tf.math.abs((y - p) / tf.math.maximum(tf.math.abs(y), EPSILON)), axis=-1)


def _msle(spec, y, p):
    # A select on p > EPSILON (not tf.maximum, which passes the gradient at the tie) as the reference.
    shifted = tf.where(p > EPSILON, p, tf.fill(tf.shape(p), tf.constant(EPSILON, p.dtype))) + 1
    d = tf.math.log(shifted) - tf.math.log(tf.math.maximum(y, EPSILON) + 1)
    return tf.math.reduce_mean(d * d, axis=-1)


def _huber(spec, y, p):
    d = p - y
    a = tf.math.abs(d)
    return tf.math.reduce_mean(tf.where(a <= spec.delta, 0.5 * d * d, spec.delta * a - 0.5 * spec.delta ** 2), axis=-1)


def _log_cosh(spec, y, p):
    d = p - y
    return tf.math.reduce_mean(d + softplus(-2 * d) - tf.math.log(tf.constant(2.0, p.dtype)), axis=-1)


def hinge_labels(y):
    """0/1 labels become -1/1 when every label of the batch is 0 or 1; others pass unchanged."""
    binary = tf.math.reduce_all(tf.math.logical_or(tf.math.equal(y, 0), tf.math.equal(y, 1)))
    return tf.where(binary, 2 * y - 1, y)


def _hinge(spec, y, p):
    return tf.math.reduce_mean(tf.nn.relu(1 - hinge_labels(y) * p), axis=-1)


def _squared_hinge(spec, y, p):
    m = tf.nn.relu(1 - hinge_labels(y) * p)
    return tf.math.reduce_mean(m * m, axis=-1)


def _categorical_hinge(spec, y, p):
    # reduce_max's gradient shares ties evenly, as the reference.
    pos = tf.math.reduce_sum(y * p, axis=-1)
    neg = tf.math.reduce_max((1 - y) * p, axis=-1)
    return tf.nn.relu(neg - pos + 1)


def _kl(spec, y, p):
    t = tf.clip_by_value(y, EPSILON, 1.0)
    return tf.math.reduce_sum(t * tf.math.log(t / tf.clip_by_value(p, EPSILON, 1.0)), axis=-1)


def _poisson(spec, y, p):
    return tf.math.reduce_mean(p - y * tf.math.log(p + EPSILON), axis=-1)


def _unit(x, axis):
    squares = tf.math.reduce_sum(x * x, axis=axis, keepdims=True)
    large = tf.math.sqrt(tf.stop_gradient(squares)) > EPSILON
    # The root only where the norm is used, so a zero vector gets the reference's x / EPSILON
    # gradient instead of 0 * inf.
    norm = tf.math.sqrt(tf.where(large, squares, tf.ones_like(squares)))
    return x / tf.where(large, norm, tf.fill(tf.shape(norm), tf.constant(EPSILON, x.dtype)))


def _cosine(spec, y, p):
    return -tf.math.reduce_sum(_unit(y, spec.axis) * _unit(p, spec.axis), axis=spec.axis)


IMPLEMENTATIONS = {
    "mean_squared_error": _mse,
    "mean_absolute_error": _mae,
    "binary_crossentropy": _bce,
    "categorical_crossentropy": _cce,
    "sparse_categorical_crossentropy": _scce,
    "mean_absolute_percentage_error": _mape,
    "mean_squared_logarithmic_error": _msle,
    "huber": _huber,
    "log_cosh": _log_cosh,
    "hinge": _hinge,
    "squared_hinge": _squared_hinge,
    "categorical_hinge": _categorical_hinge,
    "kl_divergence": _kl,
    "poisson": _poisson,
    "cosine_similarity": _cosine,
    "custom_loss": custom.loss,
}
