"""JAX losses: value(spec, y, p) -> per-sample l, differentiable in p with the reference's dl/dp.

Each loss is its value formula (polynn.losses) and its vector-Jacobian product, joined by
jax.custom_vjp: the clips, kinks and ties then get the documented gradient (zero where a clip is
active, shared evenly between tied maxima), which autodiff of the formulas' pieces would not
always give. Reduction and sample weights are applied by `reduce`, differentiated by JAX.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from polynn.losses import EPSILON

from . import custom
from .special import as_float, log_softmax, sigmoid, softmax, softplus, tanh


def reduce(spec, values, w):
    """The reduced loss of per-sample `values` with sample weights `w` (None: all 1), as
    polynn.losses documents; an all-zero weight sum gives a zero loss (Keras divides "no nan")."""
    if w is None:
        total = jnp.sum(values)
        weight_sum = values.size
    else:
        weights = jnp.broadcast_to(w.reshape(w.shape + (1,) * (values.ndim - 1)), values.shape).astype(values.dtype)
        total = jnp.sum(values * weights)
        weight_sum = jnp.sum(weights)
    if spec.reduction == "sum":
        return total
    if spec.reduction == "mean_with_sample_weight" and w is not None:
        nonzero = weight_sum != 0
        return jnp.where(nonzero, total / jnp.where(nonzero, weight_sum, 1), total * 0)
    return total / values.size if values.size else total * 0


def _mean_over(g, p, axis):
    """Spread the per-sample gradient g back over the reduced axis as a mean."""
    return jnp.expand_dims(g, axis) / p.shape[axis]


def _mse(spec, y, p):
    d = p - y
    return jnp.mean(d * d, axis=-1)


def _mse_vjp(spec, y, p, g):
    return _mean_over(g, p, -1) * (2 * (p - y))


def _mae(spec, y, p):
    return jnp.mean(jnp.abs(p - y), axis=-1)


def _mae_vjp(spec, y, p, g):
    return _mean_over(g, p, -1) * jnp.sign(p - y)


def _smooth_binary(spec, y):
    if spec.label_smoothing:
        return y * (1 - spec.label_smoothing) + 0.5 * spec.label_smoothing
    return y


def _clip_inside(p, low, high):
    return as_float((p >= low) & (p <= high), p)


def _bce(spec, y, p):
    y = _smooth_binary(spec, y)
    if spec.from_logits:
        elem = jnp.maximum(p, 0) - p * y + jnp.log1p(jnp.exp(-jnp.abs(p)))
    else:
        q = jnp.clip(p, EPSILON, 1 - EPSILON)
        elem = -(y * jnp.log(q) + (1 - y) * jnp.log(1 - q))
    return jnp.mean(elem, axis=spec.axis)


def _bce_vjp(spec, y, p, g):
    y = _smooth_binary(spec, y)
    if spec.from_logits:
        d = sigmoid(p) - y
    else:
        q = jnp.clip(p, EPSILON, 1 - EPSILON)
        d = (-(y / q) + (1 - y) / (1 - q)) * _clip_inside(p, EPSILON, 1 - EPSILON)
    return _mean_over(g, p, spec.axis) * d


def _smooth_categorical(spec, y, axis):
    if spec.label_smoothing:
        return y * (1 - spec.label_smoothing) + spec.label_smoothing / y.shape[axis]
    return y


def _normalized(p, axis):
    total = jnp.sum(p, axis=axis, keepdims=True)
    return p / total, total


def _normalized_vjp(q, total, dq, axis):
    """Gradient through q = p / sum(p): dp = (dq - sum(dq * q)) / sum(p)."""
    return (dq - jnp.sum(dq * q, axis=axis, keepdims=True)) / total


def _cce(spec, y, p):
    y = _smooth_categorical(spec, y, spec.axis)
    if spec.from_logits:
        return -jnp.sum(y * log_softmax(p, spec.axis), axis=spec.axis)
    q, _ = _normalized(p, spec.axis)
    return -jnp.sum(y * jnp.log(jnp.clip(q, EPSILON, 1 - EPSILON)), axis=spec.axis)


def _cce_vjp(spec, y, p, g):
    y = _smooth_categorical(spec, y, spec.axis)
    g = jnp.expand_dims(g, spec.axis)
    if spec.from_logits:
        return g * (softmax(p, spec.axis) * jnp.sum(y, axis=spec.axis, keepdims=True) - y)
    q, total = _normalized(p, spec.axis)
    qc = jnp.clip(q, EPSILON, 1 - EPSILON)
    dq = -g * y / qc * _clip_inside(q, EPSILON, 1 - EPSILON)
    return _normalized_vjp(q, total, dq, spec.axis)


def sparse_labels(y, p, axis):
    """Integer labels shaped like p with a size-1 class axis (a trailing axis of 1 in y is dropped)."""
    if y.ndim == p.ndim and y.shape[-1] == 1:
        y = y[..., 0]
    return jnp.expand_dims(y.astype(jnp.int64), axis)


def _one_hot(labels, p, axis):
    """1 where the class index along `axis` equals the label, in p's dtype."""
    axis = axis % p.ndim
    classes = jnp.arange(p.shape[axis]).reshape([p.shape[axis] if d == axis else 1 for d in range(p.ndim)])
    return as_float(labels == classes, p)


def _log_q(spec, p):
    if spec.from_logits:
        return log_softmax(p, spec.axis)
    q, _ = _normalized(p, spec.axis)
    return jnp.log(jnp.clip(q, EPSILON, 1 - EPSILON))


def _scce(spec, y, p):
    labels = sparse_labels(y, p, spec.axis)
    return -jnp.squeeze(jnp.take_along_axis(_log_q(spec, p), labels, axis=spec.axis), axis=spec.axis)


def _scce_vjp(spec, y, p, g):
    onehot = _one_hot(sparse_labels(y, p, spec.axis), p, spec.axis)
    g = jnp.expand_dims(g, spec.axis)
    if spec.from_logits:
        return g * (softmax(p, spec.axis) - onehot)
    q, total = _normalized(p, spec.axis)
    qc = jnp.clip(q, EPSILON, 1 - EPSILON)
    dq = -g * onehot / qc * _clip_inside(q, EPSILON, 1 - EPSILON)
    return _normalized_vjp(q, total, dq, spec.axis)


def _mape(spec, y, p):
    return 100 * jnp.mean(jnp.abs((y - p) / jnp.maximum(jnp.abs(y), EPSILON)), axis=-1)


def _mape_vjp(spec, y, p, g):
    return _mean_over(g, p, -1) * (100 * jnp.sign(p - y) / jnp.maximum(jnp.abs(y), EPSILON))


def _msle_parts(y, p):
    shifted = jnp.maximum(p, EPSILON) + 1
    return jnp.log(shifted) - jnp.log(jnp.maximum(y, EPSILON) + 1), shifted


def _msle(spec, y, p):
    d, _ = _msle_parts(y, p)
    return jnp.mean(d * d, axis=-1)


def _msle_vjp(spec, y, p, g):
    d, shifted = _msle_parts(y, p)
    return _mean_over(g, p, -1) * (2 * d / shifted * as_float(p > EPSILON, p))


def _huber(spec, y, p):
    d = p - y
    a = jnp.abs(d)
    return jnp.mean(jnp.where(a <= spec.delta, 0.5 * d * d, spec.delta * a - 0.5 * spec.delta ** 2), axis=-1)


def _huber_vjp(spec, y, p, g):
    d = p - y
    return _mean_over(g, p, -1) * jnp.where(jnp.abs(d) <= spec.delta, d, spec.delta * jnp.sign(d))


def _log_cosh(spec, y, p):
    d = p - y
    return jnp.mean(d + softplus(-2 * d) - math.log(2.0), axis=-1)


def _log_cosh_vjp(spec, y, p, g):
    return _mean_over(g, p, -1) * tanh(p - y)


def hinge_labels(y):
    """0/1 labels become -1/1 when every label of the batch is 0 or 1; others pass unchanged."""
    return jnp.where(jnp.all((y == 0) | (y == 1)), 2 * y - 1, y)


def _hinge(spec, y, p):
    return jnp.mean(jnp.maximum(1 - hinge_labels(y) * p, 0), axis=-1)


def _hinge_vjp(spec, y, p, g):
    y = hinge_labels(y)
    return _mean_over(g, p, -1) * (-y * as_float(1 - y * p > 0, p))


def _squared_hinge(spec, y, p):
    m = jnp.maximum(1 - hinge_labels(y) * p, 0)
    return jnp.mean(m * m, axis=-1)


def _squared_hinge_vjp(spec, y, p, g):
    y = hinge_labels(y)
    return _mean_over(g, p, -1) * (-2 * y * jnp.maximum(1 - y * p, 0))


def _categorical_hinge(spec, y, p):
    pos = jnp.sum(y * p, axis=-1)
    neg = jnp.max((1 - y) * p, axis=-1)
    return jnp.maximum(neg - pos + 1, 0)


def _categorical_hinge_vjp(spec, y, p, g):
    v = (1 - y) * p
    top = as_float(v == jnp.max(v, axis=-1, keepdims=True), p)
    # Ties share the gradient of the max evenly, as the engines' reduce-max gradients do.
    share = top / jnp.sum(top, axis=-1, keepdims=True)
    active = as_float(_categorical_hinge(spec, y, p) > 0, p)[..., None]
    return g[..., None] * active * (share * (1 - y) - y)


def _kl(spec, y, p):
    t = jnp.clip(y, EPSILON, 1)
    return jnp.sum(t * jnp.log(t / jnp.clip(p, EPSILON, 1)), axis=-1)


def _kl_vjp(spec, y, p, g):
    t = jnp.clip(y, EPSILON, 1)
    return g[..., None] * (-t / jnp.clip(p, EPSILON, 1) * _clip_inside(p, EPSILON, 1))


def _poisson(spec, y, p):
    return jnp.mean(p - y * jnp.log(p + EPSILON), axis=-1)


def _poisson_vjp(spec, y, p, g):
    return _mean_over(g, p, -1) * (1 - y / (p + EPSILON))


def _unit(x, axis):
    norm = jnp.sqrt(jnp.sum(x * x, axis=axis, keepdims=True))
    return x / jnp.maximum(norm, EPSILON), norm


def _cosine(spec, y, p):
    t, _ = _unit(y, spec.axis)
    q, _ = _unit(p, spec.axis)
    return -jnp.sum(t * q, axis=spec.axis)


def _cosine_vjp(spec, y, p, g):
    t, _ = _unit(y, spec.axis)
    q, norm = _unit(p, spec.axis)
    g = jnp.expand_dims(g, spec.axis)
    through_norm = (t - q * jnp.sum(t * q, axis=spec.axis, keepdims=True)) / jnp.maximum(norm, EPSILON)
    return -g * jnp.where(norm > EPSILON, through_norm, t / EPSILON)


def _with_vjp(value, vjp):
    """loss(spec, y, p): value's per-sample losses, whose gradient in p is vjp's (none in y)."""

    def loss(spec, y, p):
        @jax.custom_vjp
        def f(y, p):
            return value(spec, y, p)

        def forward(y, p):
            return value(spec, y, p), (y, p)

        def backward(saved, g):
            y, p = saved
            return jnp.zeros_like(y), vjp(spec, y, p, g).astype(p.dtype)

        f.defvjp(forward, backward)
        return f(y, p)

    return loss


# name -> (value, vjp); the metrics of the same name reuse the values.
FORMULAS = {
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

IMPLEMENTATIONS = {
    **{name: _with_vjp(value, vjp) for name, (value, vjp) in FORMULAS.items()},
    # A user function is differentiated by JAX itself.
    "custom_loss": custom.loss,
}
