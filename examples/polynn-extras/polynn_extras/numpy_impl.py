"""NumPy implementations, forward and backward, in the shapes polynn's NumPy backend uses."""

from __future__ import annotations

import numpy as np


class LayerNormalization:
    def __init__(self, backend, spec):
        self.spec = spec
        self.activity = None

    def forward(self, params, x, mask=None):
        spec = self.spec
        m = np.mean(x, axis=-1, keepdims=True)
        centered = x - m
        r = 1 / np.sqrt(np.mean(centered * centered, axis=-1, keepdims=True) + spec.epsilon)
        x_hat = centered * r
        y = x_hat
        k = 0
        if spec.scale:
            y = params[k] * y
            k += 1
        if spec.center:
            y = y + params[k]
        return y, (x_hat, r)

    def backward(self, params, cache, dy, need_dx=True):
        spec = self.spec
        x_hat, r = cache
        rows = dy.reshape(-1, dy.shape[-1])
        grads = []
        d_hat = dy
        if spec.scale:
            grads.append(np.sum(rows * x_hat.reshape(rows.shape), axis=0))
            d_hat = dy * params[0]
        if spec.center:
            grads.append(np.sum(rows, axis=0))
        dx = None
        if need_dx:
            dx = r * (d_hat - np.mean(d_hat, axis=-1, keepdims=True)
                      - x_hat * np.mean(d_hat * x_hat, axis=-1, keepdims=True))
        return dx, grads


def _squareplus(spec, x):
    return (x + np.sqrt(x * x + spec.b)) / 2


def _squareplus_backward(spec, x, y, dy):
    return dy * (1 + x / np.sqrt(x * x + spec.b)) / 2


SQUAREPLUS = (_squareplus, _squareplus_backward)
