"""TensorFlow metrics: per_sample(spec, y, p) -> v for mean metrics, update(spec, y, p, w) -> state
increment for the others (see polynn.metrics), written as the NumPy reference's expressions."""

from __future__ import annotations

import tensorflow as tf

from . import custom
from . import losses
from .losses import sparse_labels
from .special import sigmoid


def _mean_equal(a, b, dtype):
    return tf.math.reduce_mean(tf.cast(tf.math.equal(a, b), dtype), axis=-1)


def _argmax_equal(a, b, dtype):
    return tf.cast(tf.math.equal(a, tf.math.argmax(b, axis=-1)), dtype)


def _mse(spec, y, p):
    d = p - y
    return tf.math.reduce_mean(d * d, axis=-1)


def _in_top_k(labels, p, k):
    """1 where fewer than k classes score strictly above the labelled class."""
    true_score = tf.gather(p, labels[..., None], batch_dims=p.shape.rank - 1)
    above = tf.math.reduce_sum(tf.cast(p > true_score, tf.int32), axis=-1)
    return tf.cast(above < k, p.dtype)


def _weights_like(w, p):
    """Sample weights broadcast over p's elements, in p's dtype (ones without weights)."""
    if w is None:
        return tf.ones_like(p)
    w = tf.reshape(w, tf.concat([tf.shape(w), tf.ones([p.shape.rank - 1], tf.int32)], 0))
    return tf.broadcast_to(w, tf.shape(p))


def _confusion_inputs(spec, y, p, w):
    if spec.class_id is not None:
        y, p = y[..., spec.class_id], p[..., spec.class_id]
    predicted = p > spec.thresholds
    actual = tf.math.not_equal(y, 0)
    return predicted, actual, _weights_like(w, p)


def _weighted_count(weights, condition):
    return tf.math.reduce_sum(weights * tf.cast(condition, weights.dtype))


def _precision(spec, y, p, w):
    predicted, actual, weights = _confusion_inputs(spec, y, p, w)
    return tf.cast(tf.stack([_weighted_count(weights, predicted & actual),
                             _weighted_count(weights, predicted & ~actual)]), tf.float64)


def _recall(spec, y, p, w):
    predicted, actual, weights = _confusion_inputs(spec, y, p, w)
    return tf.cast(tf.stack([_weighted_count(weights, predicted & actual),
                             _weighted_count(weights, ~predicted & actual)]), tf.float64)


def _auc(spec, y, p, w):
    if spec.from_logits:
        p = sigmoid(p)
    # The thresholds rounded once from float64 to the plan's dtype, as on every backend.
    thresholds = tf.constant(spec.thresholds().astype(p.dtype.as_numpy_dtype))
    scores = tf.reshape(p, [-1])
    actual = tf.cast(tf.reshape(tf.math.not_equal(y, 0), [-1]), p.dtype)
    weights = tf.reshape(_weights_like(w, p), [-1])
    above = tf.cast(scores[None, :] > thresholds[:, None], p.dtype)  # (T, elements)
    pos, neg = weights * actual, weights * (1 - actual)
    tp = tf.linalg.matvec(above, pos)
    fp = tf.linalg.matvec(above, neg)
    state = tf.concat([tp, fp, tf.math.reduce_sum(neg) - fp, tf.math.reduce_sum(pos) - tp], 0)
    return tf.cast(state, tf.float64)


IMPLEMENTATIONS = {
    "exact_accuracy": lambda spec, y, p: _mean_equal(y, p, p.dtype),
    "binary_accuracy": lambda spec, y, p: _mean_equal(y, tf.cast(p > spec.threshold, p.dtype), p.dtype),
    "categorical_accuracy": lambda spec, y, p: _argmax_equal(tf.math.argmax(y, axis=-1), p, p.dtype),
    "sparse_categorical_accuracy": lambda spec, y, p: _argmax_equal(sparse_labels(y, p), p, p.dtype),
    "top_k_categorical_accuracy": lambda spec, y, p: _in_top_k(tf.math.argmax(y, axis=-1), p, spec.k),
    "sparse_top_k_categorical_accuracy": lambda spec, y, p: _in_top_k(sparse_labels(y, p), p, spec.k),
    "mean_squared_error": _mse,
    "mean_absolute_error": lambda spec, y, p: tf.math.reduce_mean(tf.math.abs(p - y), axis=-1),
    "root_mean_squared_error": lambda spec, y, p: (p - y) * (p - y),
    "mean_absolute_percentage_error": losses.IMPLEMENTATIONS["mean_absolute_percentage_error"],
    # The cross-entropy metrics carry the loss's options, so the loss's value function reads them.
    "binary_crossentropy": losses.IMPLEMENTATIONS["binary_crossentropy"],
    "categorical_crossentropy": losses.IMPLEMENTATIONS["categorical_crossentropy"],
    "sparse_categorical_crossentropy": losses.IMPLEMENTATIONS["sparse_categorical_crossentropy"],
    "precision": _precision,
    "recall": _recall,
    "auc": _auc,
    "custom_metric": custom.metric,
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
