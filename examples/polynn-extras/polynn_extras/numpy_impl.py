"""NumPy implementations, forward and backward, in the shapes polynn's NumPy backend uses."""

from __future__ import annotations

import numpy as np


class RMSNormalization:
    def __init__(self, backend, spec):
        self.spec = spec
        self.activity = None

    def forward(self, params, x, mask=None):
        axis = self.spec.normalized_axis(x.ndim)
        r = 1 / np.sqrt(np.mean(x * x, axis=axis, keepdims=True) + self.spec.epsilon)
        x_hat = x * r
        scale = params[0].reshape(self.spec.scale_shape(x.ndim))
        return x_hat * scale, (x_hat, r, scale)

    def backward(self, params, cache, dy, need_dx=True):
        x_hat, r, scale = cache
        axis = self.spec.normalized_axis(dy.ndim)
        others = tuple(a for a in range(dy.ndim) if a != axis)
        grads = [np.sum(dy * x_hat, axis=others)]
        dx = None
        if need_dx:
            g = dy * scale
            dx = r * (g - x_hat * np.mean(g * x_hat, axis=axis, keepdims=True))
        return dx, grads


def _squareplus(spec, x):
    return (x + np.sqrt(x * x + spec.b)) / 2


def _squareplus_backward(spec, x, y, dy):
    return dy * (1 + x / np.sqrt(x * x + spec.b)) / 2


SQUAREPLUS = (_squareplus, _squareplus_backward)
