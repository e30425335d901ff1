"""NumPy losses: value(spec, y, p) -> per-sample l, and vjp(spec, y, p, g) -> dl/dp given g = upstream dl.

The formulas are those of polynn.losses; reduction and sample weights are applied by the runtime.
"""

from __future__ import annotations

import numpy as np

from polynn.losses import EPSILON

from .activations import log_softmax, sigmoid, softmax


def _mean_over(g, p, axis):
    """Spread the per-sample gradient g back over the reduced axis as a mean."""
    return np.expand_dims(g, axis) / p.shape[axis]


def _mse(spec, y, p):
    d = p - y
    return np.mean(d * d, axis=-1)


def _mse_vjp(spec, y, p, g):
    return _mean_over(g, p, -1) * (2 * (p - y))


def _mae(spec, y, p):
    return np.mean(np.abs(p - y), axis=-1)


def _mae_vjp(spec, y, p, g):
    return _mean_over(g, p, -1) * np.sign(p - y)


def _smooth_binary(spec, y):
    if spec.label_smoothing:
        return y * (1 - spec.label_smoothing) + 0.5 * spec.label_smoothing
    return y


def _bce(spec, y, p):
    y = _smooth_binary(spec, y)
    if spec.from_logits:
        elem = np.maximum(p, 0) - p * y + np.log1p(np.exp(-np.abs(p)))
    else:
        q = np.clip(p, EPSILON, 1 - EPSILON)
        elem = -(y * np.log(q) + (1 - y) * np.log(1 - q))
    return np.mean(elem, axis=spec.axis)


def _bce_vjp(spec, y, p, g):
    y = _smooth_binary(spec, y)
    if spec.from_logits:
        d = sigmoid(p) - y
    else:
        q = np.clip(p, EPSILON, 1 - EPSILON)
        inside = (p >= EPSILON) & (p <= 1 - EPSILON)
        d = (-(y / q) + (1 - y) / (1 - q)) * inside
    return _mean_over(g, p, spec.axis) * d


def _smooth_categorical(spec, y, axis):
    if spec.label_smoothing:
        return y * (1 - spec.label_smoothing) + spec.label_smoothing / y.shape[axis]
    return y


def _normalized(p, axis):
    total = np.sum(p, axis=axis, keepdims=True)
    return p / total, total


def _normalized_vjp(q, total, dq, axis):
    """Gradient through q = p / sum(p): dp = (dq - sum(dq * q)) / sum(p)."""
    return (dq - np.sum(dq * q, axis=axis, keepdims=True)) / total


def _cce(spec, y, p):
    y = _smooth_categorical(spec, y, spec.axis)
    if spec.from_logits:
        return -np.sum(y * log_softmax(p, spec.axis), axis=spec.axis)
    q, _ = _normalized(p, spec.axis)
    return -np.sum(y * np.log(np.clip(q, EPSILON, 1 - EPSILON)), axis=spec.axis)


def _cce_vjp(spec, y, p, g):
    y = _smooth_categorical(spec, y, spec.axis)
    g = np.expand_dims(g, spec.axis)
    if spec.from_logits:
        return g * (softmax(p, spec.axis) * np.sum(y, axis=spec.axis, keepdims=True) - y)
    q, total = _normalized(p, spec.axis)
    qc = np.clip(q, EPSILON, 1 - EPSILON)
    dq = -g * y / qc * ((q >= EPSILON) & (q <= 1 - EPSILON))
    return _normalized_vjp(q, total, dq, spec.axis)


def sparse_labels(y, p, axis):
    """Integer labels shaped like p without its class axis (a trailing axis of 1 is dropped)."""
    if y.ndim == p.ndim and y.shape[-1] == 1:
        y = y[..., 0]
    return np.expand_dims(y.astype(np.int64), axis)


def _scce(spec, y, p):
    labels = sparse_labels(y, p, spec.axis)
    if spec.from_logits:
        logq = log_softmax(p, spec.axis)
    else:
        q, _ = _normalized(p, spec.axis)
        logq = np.log(np.clip(q, EPSILON, 1 - EPSILON))
    return -np.squeeze(np.take_along_axis(logq, labels, axis=spec.axis), axis=spec.axis)


def _scce_vjp(spec, y, p, g):
    labels = sparse_labels(y, p, spec.axis)
    g = np.expand_dims(g, spec.axis)
    onehot = np.zeros_like(p)
    np.put_along_axis(onehot, labels, 1.0, axis=spec.axis)
    if spec.from_logits:
        return g * (softmax(p, spec.axis) - onehot)
    q, total = _normalized(p, spec.axis)
    qc = np.clip(q, EPSILON, 1 - EPSILON)
    dq = -g * onehot / qc * ((q >= EPSILON) & (q <= 1 - EPSILON))
    return _normalized_vjp(q, total, dq, spec.axis)


IMPLEMENTATIONS = {
    "mean_squared_error": (_mse, _mse_vjp),
    "mean_absolute_error": (_mae, _mae_vjp),
    "binary_crossentropy": (_bce, _bce_vjp),
    "categorical_crossentropy": (_cce, _cce_vjp),
    "sparse_categorical_crossentropy": (_scce, _scce_vjp),
}
