"""Torch losses: value(spec, y, p) -> per-sample l, the formulas of polynn.losses; autograd gives dl/dp.

Reduction and sample weights are applied by the runtime. Where a formula has a kink that the
true function does not (from-logits crossentropy at x == 0), it is written so autograd's
one-sided derivatives add up to the true one; at the true kinks and clip boundaries each loss
takes the NumPy reference's gradient (each place says which).
"""

from __future__ import annotations

import math

import torch

from polynn.losses import EPSILON

from . import custom
from .special import softplus


def _mse(spec, y, p):
    d = p - y
    return torch.mean(d * d, dim=-1)


def _mae(spec, y, p):
    # abs backward is sign(d), 0 at d == 0, as the spec says.
    return torch.mean(torch.abs(p - y), dim=-1)


def _smooth_binary(spec, y):
    if spec.label_smoothing:
        return y * (1 - spec.label_smoothing) + 0.5 * spec.label_smoothing
    return y


def _bce(spec, y, p):
    y = _smooth_binary(spec, y)
    if spec.from_logits:
        # max(x, 0) and |x| both take the x >= 0 branch at 0, so the derivative there is
        # 1 - y - 1/2 = sigmoid(0) - y, the true one (torch's relu and abs would give -y).
        positive = p >= 0
        elem = torch.where(positive, p, 0.0) - p * y + torch.log1p(torch.exp(-torch.where(positive, p, -p)))
    else:
        # clamp backward is zero outside [EPSILON, 1 - EPSILON], as the spec says.
        q = torch.clamp(p, EPSILON, 1 - EPSILON)
        elem = -(y * torch.log(q) + (1 - y) * torch.log(1 - q))
    return torch.mean(elem, dim=spec.axis)


def _smooth_categorical(spec, y, axis):
    if spec.label_smoothing:
        return y * (1 - spec.label_smoothing) + spec.label_smoothing / y.shape[axis]
    return y


def _log_probabilities(spec, p):
    if spec.from_logits:
        return torch.log_softmax(p, dim=spec.axis)
    q = p / torch.sum(p, dim=spec.axis, keepdim=True)
    return torch.log(torch.clamp(q, EPSILON, 1 - EPSILON))


def _cce(spec, y, p):
    y = _smooth_categorical(spec, y, spec.axis)
    return -torch.sum(y * _log_probabilities(spec, p), dim=spec.axis)


def sparse_labels(y, p, axis):
    """Integer labels shaped like p without its class axis (a trailing axis of 1 is dropped)."""
    if y.dim() == p.dim() and y.shape[-1] == 1:
        y = y[..., 0]
    return torch.unsqueeze(y.long(), axis)


def _scce(spec, y, p):
    labels = sparse_labels(y, p, spec.axis)
    return -torch.squeeze(torch.gather(_log_probabilities(spec, p), spec.axis, labels), dim=spec.axis)


def _mape(spec, y, p):
    # abs backward is sign: 100 sign(p - y) / max(|y|, EPSILON), 0 at p == y, as the reference.
    return 100 * torch.mean(torch.abs((y - p) / torch.clamp(torch.abs(y), min=EPSILON)), dim=-1)


def _msle(spec, y, p):
    # where(p > EPSILON, p, EPSILON) is max(p, EPSILON) with the gradient only where p > EPSILON,
    # as the reference (clamp would also pass it at p == EPSILON).
    d = torch.log(torch.where(p > EPSILON, p, EPSILON) + 1) - torch.log(torch.clamp(y, min=EPSILON) + 1)
    return torch.mean(d * d, dim=-1)


def _huber(spec, y, p):
    d = p - y
    a = torch.abs(d)
    return torch.mean(torch.where(a <= spec.delta, 0.5 * d * d, spec.delta * a - 0.5 * spec.delta ** 2), dim=-1)


def _log_cosh(spec, y, p):
    d = p - y
    return torch.mean(d + softplus(-2 * d) - math.log(2.0), dim=-1)


def hinge_labels(y):
    """0/1 labels become -1/1 when every label of the batch is 0 or 1; others pass unchanged.
    The test stays on the device (where, not if), so no step waits for the host."""
    return torch.where(torch.all((y == 0) | (y == 1)), 2 * y - 1, y)


def _hinge(spec, y, p):
    # relu's gradient is 0 at the kink 1 - y p == 0, as the reference.
    return torch.mean(torch.relu(1 - hinge_labels(y) * p), dim=-1)


def _squared_hinge(spec, y, p):
    m = torch.relu(1 - hinge_labels(y) * p)
    return torch.mean(m * m, dim=-1)


def _categorical_hinge(spec, y, p):
    pos = torch.sum(y * p, dim=-1)
    # amax shares the gradient evenly among ties, and relu gives 0 at the kink, as the reference.
    neg = torch.amax((1 - y) * p, dim=-1)
    return torch.relu(neg - pos + 1)


def _kl(spec, y, p):
    # clamp passes the gradient on [EPSILON, 1], ends included, as the reference.
    t = torch.clamp(y, EPSILON, 1)
    return torch.sum(t * torch.log(t / torch.clamp(p, EPSILON, 1)), dim=-1)


def _poisson(spec, y, p):
    return torch.mean(p - y * torch.log(p + EPSILON), dim=-1)


def _unit(x, axis):
    """x / max(||x||, EPSILON) along axis; below EPSILON the divisor is a constant, so the gradient
    is 1 / EPSILON there, as the reference."""
    squares = torch.sum(x * x, dim=axis, keepdim=True)
    nonzero = squares > 0
    # sqrt of a zero would send 0 * inf = NaN back through the unused branch.
    norm = torch.where(nonzero, torch.sqrt(torch.where(nonzero, squares, 1.0)), 0.0)
    return x / torch.where(norm > EPSILON, norm, EPSILON)


def _cosine(spec, y, p):
    return -torch.sum(_unit(y, spec.axis) * _unit(p, spec.axis), dim=spec.axis)


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
