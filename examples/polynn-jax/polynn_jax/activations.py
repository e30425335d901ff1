"""JAX activations: forward(spec, x) -> y, as the spec docstrings; each derivative is the spec's.

Element-wise activations state their derivative (special.with_derivative), so the slope at a
kink is the documented one; softmax and log_softmax are differentiated by JAX.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax.scipy.special import erf

from polynn.activations import SELU_ALPHA, SELU_SCALE

from . import custom
from .special import as_float, log_softmax, sigmoid, softmax, softplus, tanh, with_derivative


def _relu(spec, x):
    if spec.threshold != 0:
        y = x * as_float(x > spec.threshold, x)
    else:
        y = jnp.maximum(x, 0)
    if spec.max_value is not None:
        y = jnp.clip(y, 0, spec.max_value)
    if spec.negative_slope != 0:
        y = y - spec.negative_slope * jnp.maximum(spec.threshold - x, 0)
    return y


def _relu_slope(spec, x, y):
    slope = x > spec.threshold
    if spec.max_value is not None:
        # The clip passes the gradient on [0, max_value], ends included, as the engines' clip.
        slope = slope & (x <= spec.max_value) & (x >= 0)
    slope = as_float(slope, x)
    if spec.negative_slope != 0:
        slope = slope + spec.negative_slope * as_float(x < spec.threshold, x)
    return slope


def _elu(alpha, x):
    return jnp.where(x > 0, x, alpha * jnp.expm1(jnp.minimum(x, 0)))


def _elu_slope(alpha, x):
    return jnp.where(x > 0, 1.0, alpha * jnp.exp(jnp.minimum(x, 0))).astype(x.dtype)


_GELU_C = math.sqrt(2 / math.pi)


def _gelu(spec, x):
    if spec.approximate:
        return 0.5 * x * (1 + tanh(_GELU_C * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


def _gelu_slope(spec, x, y):
    if spec.approximate:
        t = tanh(_GELU_C * (x + 0.044715 * x ** 3))
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _GELU_C * (1 + 3 * 0.044715 * x * x)
    return 0.5 * (1 + erf(x / math.sqrt(2))) + x * jnp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _relu6(x):
    return jnp.minimum(jnp.maximum(x, 0), 6)


def _inside(x, low, high):
    """1 on the open interval (low, high), else 0."""
    return as_float((x > low) & (x < high), x)


def _mish_slope(spec, x, y):
    t = tanh(softplus(x))
    return t + x * (1 - t * t) * sigmoid(x)


def _silu_slope(spec, x, y):
    s = sigmoid(x)
    return s + x * s * (1 - s)


# name -> (value(spec, x), derivative(spec, x, y)), the formulas of polynn.activations.
_ELEMENTWISE = {
    "linear": (lambda spec, x: x, lambda spec, x, y: jnp.ones_like(x)),
    "relu": (_relu, _relu_slope),
    "sigmoid": (lambda spec, x: sigmoid(x), lambda spec, x, y: y * (1 - y)),
    "tanh": (lambda spec, x: tanh(x), lambda spec, x, y: 1 - y * y),
    "elu": (lambda spec, x: _elu(spec.alpha, x), lambda spec, x, y: _elu_slope(spec.alpha, x)),
    "selu": (lambda spec, x: SELU_SCALE * _elu(SELU_ALPHA, x),
             lambda spec, x, y: SELU_SCALE * _elu_slope(SELU_ALPHA, x)),
    "softplus": (lambda spec, x: softplus(x), lambda spec, x, y: sigmoid(x)),
    "softsign": (lambda spec, x: x / (1 + jnp.abs(x)), lambda spec, x, y: 1 / (1 + jnp.abs(x)) ** 2),
    "gelu": (_gelu, _gelu_slope),
    "silu": (lambda spec, x: x * sigmoid(x), _silu_slope),
    "leaky_relu": (lambda spec, x: jnp.where(x >= 0, x, spec.negative_slope * x),
                   lambda spec, x, y: jnp.where(x > 0, 1.0, spec.negative_slope).astype(x.dtype)),
    "relu6": (lambda spec, x: _relu6(x), lambda spec, x, y: _inside(x, 0, 6)),
    "exponential": (lambda spec, x: jnp.exp(x), lambda spec, x, y: y),
    "hard_sigmoid": (lambda spec, x: _relu6(x + 3) / 6, lambda spec, x, y: _inside(x, -3, 3) / 6),
    "hard_silu": (lambda spec, x: x * _relu6(x + 3) / 6,
                  lambda spec, x, y: _relu6(x + 3) / 6 + x * _inside(x, -3, 3) / 6),
    "mish": (lambda spec, x: x * tanh(softplus(x)), _mish_slope),
}


def _elementwise(value, derivative):
    def forward(spec, x):
        return with_derivative(lambda x: value(spec, x), lambda x, y: derivative(spec, x, y))(x)

    return forward


IMPLEMENTATIONS = {
    **{name: _elementwise(value, derivative) for name, (value, derivative) in _ELEMENTWISE.items()},
    "softmax": lambda spec, x: softmax(x, spec.axis),
    "log_softmax": lambda spec, x: log_softmax(x, spec.axis),
    "custom_activation": custom.activation,
}
