"""JAX metrics: per_sample(spec, y, p) -> v for mean metrics, update(spec, y, p, w) -> state increment for others.

Increments are float64 (the runtime runs in JAX's scoped x64 mode), as the core sums them.
"""

from __future__ import annotations

import jax.numpy as jnp

from . import custom, losses
from .losses import sparse_labels
from .special import as_float, sigmoid


def _sparse_accuracy(spec, y, p):
    labels = sparse_labels(y, p, -1)[..., 0]
    return as_float(labels == jnp.argmax(p, axis=-1), p)


def _in_top_k(labels, p, k):
    """1 where fewer than k classes score strictly above the labelled class."""
    true_score = jnp.take_along_axis(p, labels[..., None], axis=-1)
    return as_float(jnp.sum(p > true_score, axis=-1) < k, p)


def _broadcast_weights(w, p):
    if w is None:
        return jnp.ones(p.shape, dtype=jnp.float64)
    return jnp.broadcast_to(w.reshape(w.shape + (1,) * (p.ndim - 1)), p.shape).astype(jnp.float64)


def _confusion_inputs(spec, y, p, w):
    if spec.class_id is not None:
        y, p = y[..., spec.class_id], p[..., spec.class_id]
    return p > spec.thresholds, y != 0, _broadcast_weights(w, p)


def _precision(spec, y, p, w):
    predicted, actual, weights = _confusion_inputs(spec, y, p, w)
    return jnp.stack([jnp.sum(weights * (predicted & actual)), jnp.sum(weights * (predicted & ~actual))])


def _recall(spec, y, p, w):
    predicted, actual, weights = _confusion_inputs(spec, y, p, w)
    return jnp.stack([jnp.sum(weights * (predicted & actual)), jnp.sum(weights * (~predicted & actual))])


def _auc(spec, y, p, w):
    if spec.from_logits:
        p = sigmoid(p)
    thresholds = jnp.asarray(spec.thresholds(), dtype=p.dtype)
    scores = p.reshape(-1)
    actual = (y != 0).reshape(-1)
    weights = _broadcast_weights(w, p).reshape(-1)
    above = (scores[None, :] > thresholds[:, None]).astype(jnp.float64)  # (T, elements)
    pos, neg = weights * actual, weights * ~actual
    tp = above @ pos
    fp = above @ neg
    return jnp.concatenate([tp, fp, jnp.sum(neg) - fp, jnp.sum(pos) - tp])


def _value(name):
    return losses.FORMULAS[name][0]


IMPLEMENTATIONS = {
    "exact_accuracy": lambda spec, y, p: jnp.mean(as_float(y == p, p), axis=-1),
    "binary_accuracy": lambda spec, y, p: jnp.mean(as_float(y == as_float(p > spec.threshold, y), p), axis=-1),
    # jnp.argmax returns the first maximal index, as the spec's ties rule.
    "categorical_accuracy": lambda spec, y, p: as_float(jnp.argmax(y, -1) == jnp.argmax(p, -1), p),
    "sparse_categorical_accuracy": _sparse_accuracy,
    "top_k_categorical_accuracy": lambda spec, y, p: _in_top_k(jnp.argmax(y, -1), p, spec.k),
    "sparse_top_k_categorical_accuracy": lambda spec, y, p: _in_top_k(sparse_labels(y, p, -1)[..., 0], p, spec.k),
    "mean_squared_error": lambda spec, y, p: jnp.mean((p - y) ** 2, axis=-1),
    "mean_absolute_error": lambda spec, y, p: jnp.mean(jnp.abs(p - y), axis=-1),
    "root_mean_squared_error": lambda spec, y, p: (p - y) ** 2,
    "mean_absolute_percentage_error": _value("mean_absolute_percentage_error"),
    # The cross-entropy metrics carry the loss's options, so the loss's value function reads them.
    "binary_crossentropy": _value("binary_crossentropy"),
    "categorical_crossentropy": _value("categorical_crossentropy"),
    "sparse_categorical_crossentropy": _value("sparse_categorical_crossentropy"),
    "precision": _precision,
    "recall": _recall,
    "auc": _auc,
    "custom_metric": custom.metric,
}


def mean_state(values, weights):
    """[sum(w * v), sum(w)] in float64, w broadcast over v's trailing axes (1 when no weights)."""
    if weights is None:
        return jnp.stack([jnp.sum(values.astype(jnp.float64)), jnp.asarray(values.size, jnp.float64)])
    w = jnp.broadcast_to(weights.reshape(weights.shape + (1,) * (values.ndim - 1)), values.shape)
    return jnp.stack([jnp.sum((w * values).astype(jnp.float64)), jnp.sum(w.astype(jnp.float64))])
