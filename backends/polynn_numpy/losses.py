"""NumPy losses: value(spec, y, p) -> per-sample l, and vjp(spec, y, p, g) -> dl/dp given g = upstream dl.

The formulas are those of polynn.losses; reduction and sample weights are applied by the runtime.
"""

from __future__ import annotations

import numpy as np

from polynn.losses import EPSILON, LOG_2, reduce  # noqa: F401 (reduce: the runtime's, and outside plugins')

from .special import clip, log_softmax, mean, sigmoid, softmax, softplus


def _mean_over(g, p, axis):
    """Spread the per-sample gradient g back over the reduced axis as a mean."""
    return (g[..., None] if axis == -1 else np.expand_dims(g, axis)) / p.shape[axis]


def _mse(spec, y, p):
    d = p - y
    return mean(d * d, -1)


def _mse_vjp(spec, y, p, g):
    return _mean_over(g, p, -1) * (2 * (p - y))


def _mae(spec, y, p):
    return mean(np.abs(p - y), -1)


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
        q = clip(p, EPSILON, 1 - EPSILON)
        elem = -(y * np.log(q) + (1 - y) * np.log(1 - q))
    return mean(elem, spec.axis)


def _bce_vjp(spec, y, p, g):
    y = _smooth_binary(spec, y)
    if spec.from_logits:
        d = sigmoid(p) - y
    else:
        q = clip(p, EPSILON, 1 - EPSILON)
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
    return -np.sum(y * np.log(clip(q, EPSILON, 1 - EPSILON)), axis=spec.axis)


def _cce_vjp(spec, y, p, g):
    y = _smooth_categorical(spec, y, spec.axis)
    g = np.expand_dims(g, spec.axis)
    if spec.from_logits:
        return g * (softmax(p, spec.axis) * np.sum(y, axis=spec.axis, keepdims=True) - y)
    q, total = _normalized(p, spec.axis)
    qc = clip(q, EPSILON, 1 - EPSILON)
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
        logq = np.log(clip(q, EPSILON, 1 - EPSILON))
    return -np.squeeze(np.take_along_axis(logq, labels, axis=spec.axis), axis=spec.axis)


def _scce_vjp(spec, y, p, g):
    labels = sparse_labels(y, p, spec.axis)
    g = np.expand_dims(g, spec.axis)
    onehot = np.zeros_like(p)
    np.put_along_axis(onehot, labels, 1.0, axis=spec.axis)
    if spec.from_logits:
        return g * (softmax(p, spec.axis) - onehot)
    q, total = _normalized(p, spec.axis)
    qc = clip(q, EPSILON, 1 - EPSILON)
    dq = -g * onehot / qc * ((q >= EPSILON) & (q <= 1 - EPSILON))
    return _normalized_vjp(q, total, dq, spec.axis)


def _mape(spec, y, p):
    return 100 * mean(np.abs((y - p) / np.maximum(np.abs(y), EPSILON)), -1)


def _mape_vjp(spec, y, p, g):
    return _mean_over(g, p, -1) * (100 * np.sign(p - y) / np.maximum(np.abs(y), EPSILON))


def _msle_parts(y, p):
    shifted = np.maximum(p, EPSILON) + 1
    return np.log(shifted) - np.log(np.maximum(y, EPSILON) + 1), shifted


def _msle(spec, y, p):
    d, _ = _msle_parts(y, p)
    return mean(d * d, -1)


def _msle_vjp(spec, y, p, g):
    d, shifted = _msle_parts(y, p)
    return _mean_over(g, p, -1) * (2 * d / shifted * (p > EPSILON))


def _huber(spec, y, p):
    d = p - y
    a = np.abs(d)
    return mean(np.where(a <= spec.delta, 0.5 * d * d, spec.delta * a - 0.5 * spec.delta ** 2), -1)


def _huber_vjp(spec, y, p, g):
    d = p - y
    return _mean_over(g, p, -1) * np.where(np.abs(d) <= spec.delta, d, spec.delta * np.sign(d))


def _log_cosh(spec, y, p):
    d = p - y
    return mean(d + softplus(-2 * d) - LOG_2, -1)


def _log_cosh_vjp(spec, y, p, g):
    return _mean_over(g, p, -1) * np.tanh(p - y)


def hinge_labels(y):
    """0/1 labels become -1/1 when every label of the batch is 0 or 1; others pass unchanged."""
    return 2 * y - 1 if np.all((y == 0) | (y == 1)) else y


def _hinge(spec, y, p):
    return mean(np.maximum(1 - hinge_labels(y) * p, 0), -1)


def _hinge_vjp(spec, y, p, g):
    y = hinge_labels(y)
    return _mean_over(g, p, -1) * (-y * (1 - y * p > 0))


def _squared_hinge(spec, y, p):
    m = np.maximum(1 - hinge_labels(y) * p, 0)
    return mean(m * m, -1)


def _squared_hinge_vjp(spec, y, p, g):
    y = hinge_labels(y)
    return _mean_over(g, p, -1) * (-2 * y * np.maximum(1 - y * p, 0))


def _categorical_hinge(spec, y, p):
    pos = np.sum(y * p, axis=-1)
    neg = np.max((1 - y) * p, axis=-1)
    return np.maximum(neg - pos + 1, 0)


def _categorical_hinge_vjp(spec, y, p, g):
    v = (1 - y) * p
    top = v == np.max(v, axis=-1, keepdims=True)
    # Ties share the gradient of the max evenly, as the engines' reduce-max gradients do.
    share = top / np.sum(top, axis=-1, keepdims=True)
    active = (_categorical_hinge(spec, y, p) > 0)[..., None]
    return g[..., None] * active * (share * (1 - y) - y)


def _kl(spec, y, p):
    t = clip(y, EPSILON, 1)
    return np.sum(t * np.log(t / clip(p, EPSILON, 1)), axis=-1)


def _kl_vjp(spec, y, p, g):
    t = clip(y, EPSILON, 1)
    return g[..., None] * (-t / clip(p, EPSILON, 1) * ((p >= EPSILON) & (p <= 1)))


def _poisson(spec, y, p):
    return mean(p - y * np.log(p + EPSILON), -1)


def _poisson_vjp(spec, y, p, g):
    return _mean_over(g, p, -1) * (1 - y / (p + EPSILON))


def _unit(x, axis):
    norm = np.sqrt(np.sum(x * x, axis=axis, keepdims=True))
    return x / np.maximum(norm, EPSILON), norm


def _cosine(spec, y, p):
    t, _ = _unit(y, spec.axis)
    q, _ = _unit(p, spec.axis)
    return -np.sum(t * q, axis=spec.axis)


def _cosine_vjp(spec, y, p, g):
    t, _ = _unit(y, spec.axis)
    q, norm = _unit(p, spec.axis)
    g = np.expand_dims(g, spec.axis)
    through_norm = (t - q * np.sum(t * q, axis=spec.axis, keepdims=True)) / np.maximum(norm, EPSILON)
    return -g * np.where(norm > EPSILON, through_norm, t / EPSILON)


IMPLEMENTATIONS = {
    "mean_squared_error": (_mse, _mse_vjp),
    "mean_absolute_error": (_mae, _mae_vjp),
    "binary_crossentropy": (_bce, _bce_vjp),
    "categorical_crossentropy": (_cce, _cce_vjp),
    "sparse_categorical_crossentropy": (_scce, _scce_vjp),
    "mean_absolute_percentage_error": (_mape, _mape_vjp),
    "mean_squared_logarithmic_error": (_msle, _msle_vjp),
    "huber": (_huber, _huber_vjp),
    "log_cosh": (_log_cosh, _log_cosh_vjp),
    "hinge": (_hinge, _hinge_vjp),
    "squared_hinge": (_squared_hinge, _squared_hinge_vjp),
    "categorical_hinge": (_categorical_hinge, _categorical_hinge_vjp),
    "kl_divergence": (_kl, _kl_vjp),
    "poisson": (_poisson, _poisson_vjp),
    "cosine_similarity": (_cosine, _cosine_vjp),
}
