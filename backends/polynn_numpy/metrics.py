"""NumPy metrics: per_sample(spec, y, p) -> v for mean metrics, update(spec, y, p, w) -> state increment for others."""

from __future__ import annotations

import numpy as np

from polynn.metrics import mean_state  # noqa: F401 (the runtime's, and outside plugins')

from . import losses
from .losses import sparse_labels
from .special import sigmoid


def _sparse_accuracy(spec, y, p):
    labels = sparse_labels(y, p, -1)[..., 0]
    return (labels == np.argmax(p, axis=-1)).astype(p.dtype)


def _fraction(matches, dtype):
    """mean(matches, axis=-1) in `dtype` (np.mean's result, without its Python overhead)."""
    return np.add.reduce(matches, axis=-1, dtype=dtype) / matches.shape[-1]


def _in_top_k(labels, p, k):
    """1 where fewer than k classes score strictly above the labelled class."""
    true_score = np.take_along_axis(p, labels[..., None], axis=-1)
    return (np.sum(p > true_score, axis=-1) < k).astype(p.dtype)


def _confusion_inputs(spec, y, p, w):
    if spec.class_id is not None:
        y, p = y[..., spec.class_id], p[..., spec.class_id]
    predicted = p > spec.thresholds
    actual = y != 0
    weights = np.ones(p.shape, dtype=p.dtype) if w is None else np.broadcast_to(
        w.reshape(w.shape + (1,) * (p.ndim - 1)), p.shape)
    return predicted, actual, weights


def _precision(spec, y, p, w):
    predicted, actual, weights = _confusion_inputs(spec, y, p, w)
    return np.array([np.sum(weights * (predicted & actual)), np.sum(weights * (predicted & ~actual))], dtype=np.float64)


def _recall(spec, y, p, w):
    predicted, actual, weights = _confusion_inputs(spec, y, p, w)
    return np.array([np.sum(weights * (predicted & actual)), np.sum(weights * (~predicted & actual))], dtype=np.float64)


def _auc(spec, y, p, w):
    if spec.from_logits:
        p = sigmoid(p)
    thresholds = spec.thresholds().astype(p.dtype)
    scores = p.reshape(-1)
    actual = (y != 0).reshape(-1)
    weights = np.ones_like(scores) if w is None else np.broadcast_to(
        w.reshape(w.shape + (1,) * (p.ndim - 1)), p.shape).reshape(-1)
    above = scores[None, :] > thresholds[:, None]  # (T, elements)
    pos, neg = weights * actual, weights * ~actual
    tp = above @ pos
    fp = above @ neg
    return np.concatenate([tp, fp, np.sum(neg) - fp, np.sum(pos) - tp]).astype(np.float64)


IMPLEMENTATIONS = {
    "exact_accuracy": lambda spec, y, p: _fraction(y == p, p.dtype),
    "binary_accuracy": lambda spec, y, p: _fraction(y == (p > spec.threshold), p.dtype),
    "categorical_accuracy": lambda spec, y, p: (np.argmax(y, -1) == np.argmax(p, -1)).astype(p.dtype),
    "sparse_categorical_accuracy": _sparse_accuracy,
    "top_k_categorical_accuracy": lambda spec, y, p: _in_top_k(np.argmax(y, -1), p, spec.k),
    "sparse_top_k_categorical_accuracy": lambda spec, y, p: _in_top_k(sparse_labels(y, p, -1)[..., 0], p, spec.k),
    "mean_squared_error": lambda spec, y, p: np.mean((p - y) ** 2, axis=-1),
    "mean_absolute_error": lambda spec, y, p: np.mean(np.abs(p - y), axis=-1),
    "root_mean_squared_error": lambda spec, y, p: (p - y) ** 2,
    "mean_absolute_percentage_error": losses.IMPLEMENTATIONS["mean_absolute_percentage_error"][0],
    # The cross-entropy metrics carry the loss's options, so the loss's value function reads them.
    "binary_crossentropy": losses.IMPLEMENTATIONS["binary_crossentropy"][0],
    "categorical_crossentropy": losses.IMPLEMENTATIONS["categorical_crossentropy"][0],
    "sparse_categorical_crossentropy": losses.IMPLEMENTATIONS["sparse_categorical_crossentropy"][0],
    "precision": _precision,
    "recall": _recall,
    "auc": _auc,
}
