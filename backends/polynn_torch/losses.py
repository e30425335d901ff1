"""Torch losses: value(spec, y, p) -> per-sample l, the formulas of polynn.losses; autograd gives dl/dp.

Reduction and sample weights are applied by the runtime. Where a formula has a kink that the
true function does not (from-logits crossentropy at x == 0), it is written so autograd's
one-sided derivatives add up to the true one.
"""

from __future__ import annotations

import torch

from polynn.losses import EPSILON


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


IMPLEMENTATIONS = {
    "mean_squared_error": _mse,
    "mean_absolute_error": _mae,
    "binary_crossentropy": _bce,
    "categorical_crossentropy": _cce,
    "sparse_categorical_crossentropy": _scce,
}
