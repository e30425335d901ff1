"""NumPy metrics: per_sample(spec, y, p) -> v, the value a mean metric accumulates (see polynn.metrics)."""

from __future__ import annotations

import numpy as np

from .losses import sparse_labels


def _sparse_accuracy(spec, y, p):
    labels = sparse_labels(y, p, -1)[..., 0]
    return (labels == np.argmax(p, axis=-1)).astype(p.dtype)


IMPLEMENTATIONS = {
    "exact_accuracy": lambda spec, y, p: np.mean(y == p, axis=-1, dtype=p.dtype),
    "binary_accuracy": lambda spec, y, p: np.mean(y == (p > spec.threshold), axis=-1, dtype=p.dtype),
    "categorical_accuracy": lambda spec, y, p: (np.argmax(y, -1) == np.argmax(p, -1)).astype(p.dtype),
    "sparse_categorical_accuracy": _sparse_accuracy,
    "mean_squared_error": lambda spec, y, p: np.mean((p - y) ** 2, axis=-1),
    "mean_absolute_error": lambda spec, y, p: np.mean(np.abs(p - y), axis=-1),
}


def mean_state(values: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """[sum(w * v), sum(w)] with w broadcast over v's trailing axes (1 when no weights)."""
    if weights is None:
        return np.array([np.sum(values, dtype=np.float64), values.size], dtype=np.float64)
    w = np.broadcast_to(weights.reshape(weights.shape + (1,) * (values.ndim - 1)), values.shape)
    return np.array([np.sum(w * values, dtype=np.float64), np.sum(w, dtype=np.float64)])
