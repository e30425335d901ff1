"""NumPy activations: forward(spec, x) -> y and backward(spec, x, y, dy) -> dx, as the spec docstrings.

An implementation may also take `out=`, an array of the result's shape to write into (layers give
one while training, from their workspace); `writes_into` tells whether it does.
"""

from __future__ import annotations

import inspect
import math

import numpy as np

from polynn.activations import (
    GELU_ERF_SCALE,
    GELU_TANH_COEFFICIENT,
    GELU_TANH_SCALE,
    SELU_ALPHA,
    SELU_SCALE,
)

from .special import erf, log_softmax, sigmoid, softmax, softplus


def writes_into(function) -> bool:
    """Whether an activation implementation takes `out=`."""
    return "out" in inspect.signature(function).parameters


# From this many elements relu takes the maximum against an array of zeros instead of the scalar 0:
# NumPy (2.4) runs maximum's vector loop only when both operands have unit stride, so against a
# scalar it is slower (measured: docs/performance.md#numpy-relu-against-zeros). The bits are the
# same, NaN, -0.0 and infinities included. Below this size the lookup costs more than it saves.
ZEROS_FROM = 1 << 13

_zero_blocks: dict[np.dtype, np.ndarray] = {}


def _zeros_like(x):
    """A read-only array of zeros of x's shape and dtype: a view of one zero block per dtype, grown
    as needed. The block is never written, so its pages stay the kernel's shared zero page: reading
    it costs no resident memory, and it is read from cache."""
    block = _zero_blocks.get(x.dtype)
    if block is None or block.size < x.size:
        block = np.zeros(x.size, x.dtype)
        block.flags.writeable = False
        _zero_blocks[x.dtype] = block
    return block[:x.size].reshape(x.shape)


def _relu(spec, x, out=None):
    if spec.threshold != 0:
        y = np.multiply(x, x > spec.threshold, out=out)
    else:
        y = np.maximum(x, _zeros_like(x) if x.size >= ZEROS_FROM else 0, out=out)
    # y is this call's own array from here on, so the remaining steps may update it in place.
    if spec.max_value is not None:
        np.clip(y, 0, spec.max_value, out=y)
    if spec.negative_slope != 0:
        y -= spec.negative_slope * np.maximum(spec.threshold - x, 0)
    return y


def _relu_backward(spec, x, y, dy, out=None):
    slope = x > spec.threshold
    if spec.max_value is not None:
        # The clip passes the gradient on [0, max_value], ends included, as the engines' clip.
        slope &= (x <= spec.max_value) & (x >= 0)
    g = np.multiply(dy, slope, out=out)
    if spec.negative_slope != 0:
        g += dy * (spec.negative_slope * (x < spec.threshold))
    return g


def _tanh_backward(spec, x, y, dy, out=None):
    g = np.multiply(y, y, out=out)
    np.subtract(1, g, out=g)
    g *= dy
    return g


def _elu(alpha, x):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def _elu_backward(alpha, x, dy):
    return dy * np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0)))


def _gelu(spec, x):
    if spec.approximate:
        return 0.5 * x * (1 + np.tanh(GELU_TANH_SCALE * (x + GELU_TANH_COEFFICIENT * x ** 3)))
    return 0.5 * x * (1 + erf(x * GELU_ERF_SCALE))


def _gelu_backward(spec, x, y, dy):
    if spec.approximate:
        t = np.tanh(GELU_TANH_SCALE * (x + GELU_TANH_COEFFICIENT * x ** 3))
        return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_TANH_SCALE * (1 + 3 * GELU_TANH_COEFFICIENT * x * x))
    # d/dx erf(c x) = c 2 / sqrt(pi) exp(-(c x)**2)
    u = x * GELU_ERF_SCALE
    return dy * (0.5 * (1 + erf(u)) + x * GELU_ERF_SCALE * np.exp(-u * u) / math.sqrt(math.pi))


def _silu_backward(spec, x, y, dy):
    s = sigmoid(x)
    return dy * (s + x * s * (1 - s))


def _relu6(x):
    return np.minimum(np.maximum(x, 0), 6)


def _mish(spec, x):
    return x * np.tanh(softplus(x))


def _mish_backward(spec, x, y, dy):
    t = np.tanh(softplus(x))
    return dy * (t + x * (1 - t * t) * sigmoid(x))


IMPLEMENTATIONS = {
    "linear": (lambda spec, x: x, lambda spec, x, y, dy: dy),
    "relu": (_relu, _relu_backward),
    "sigmoid": (lambda spec, x: sigmoid(x), lambda spec, x, y, dy: dy * y * (1 - y)),
    "tanh": (lambda spec, x, out=None: np.tanh(x, out=out), _tanh_backward),
    "softmax": (
        lambda spec, x: softmax(x, spec.axis),
        lambda spec, x, y, dy: y * (dy - np.sum(dy * y, axis=spec.axis, keepdims=True)),
    ),
    "log_softmax": (
        lambda spec, x: log_softmax(x, spec.axis),
        lambda spec, x, y, dy: dy - np.exp(y) * np.sum(dy, axis=spec.axis, keepdims=True),
    ),
    "elu": (lambda spec, x: _elu(spec.alpha, x), lambda spec, x, y, dy: _elu_backward(spec.alpha, x, dy)),
    "selu": (
        lambda spec, x: SELU_SCALE * _elu(SELU_ALPHA, x),
        lambda spec, x, y, dy: SELU_SCALE * _elu_backward(SELU_ALPHA, x, dy),
    ),
    "softplus": (lambda spec, x: softplus(x), lambda spec, x, y, dy: dy * sigmoid(x)),
    "softsign": (lambda spec, x: x / (1 + np.abs(x)), lambda spec, x, y, dy: dy / (1 + np.abs(x)) ** 2),
    "gelu": (_gelu, _gelu_backward),
    "silu": (lambda spec, x: x * sigmoid(x), _silu_backward),
    "leaky_relu": (
        lambda spec, x: np.where(x >= 0, x, spec.effective_slope * x),
        lambda spec, x, y, dy: dy * np.where(x > 0, 1.0, spec.effective_slope),
    ),
    "relu6": (lambda spec, x: _relu6(x), lambda spec, x, y, dy: dy * ((x > 0) & (x < 6))),
    "exponential": (lambda spec, x: np.exp(x), lambda spec, x, y, dy: dy * y),
    "hard_sigmoid": (lambda spec, x: _relu6(x + 3) / 6, lambda spec, x, y, dy: dy * (((x > -3) & (x < 3)) / 6)),
    "hard_silu": (
        lambda spec, x: x * _relu6(x + 3) / 6,
        lambda spec, x, y, dy: dy * (_relu6(x + 3) / 6 + x * (((x > -3) & (x < 3)) / 6)),
    ),
    "mish": (_mish, _mish_backward),
}
