"""NumPy activations: forward(spec, x) -> y and backward(spec, x, y, dy) -> dx, as the spec docstrings."""

from __future__ import annotations

import numpy as np


def sigmoid(x):
    # exp of -|x| only, so no overflow: 1 / (1 + e^-x) for x >= 0 and e^x / (1 + e^x) below.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


IMPLEMENTATIONS = {
    "linear": (lambda spec, x: x, lambda spec, x, y, dy: dy),
    "relu": (lambda spec, x: np.maximum(x, 0), lambda spec, x, y, dy: dy * (x > 0)),
    "sigmoid": (lambda spec, x: sigmoid(x), lambda spec, x, y, dy: dy * y * (1 - y)),
    "tanh": (lambda spec, x: np.tanh(x), lambda spec, x, y, dy: dy * (1 - y * y)),
    "softmax": (
        lambda spec, x: softmax(x, spec.axis),
        lambda spec, x, y, dy: y * (dy - np.sum(dy * y, axis=spec.axis, keepdims=True)),
    ),
}
