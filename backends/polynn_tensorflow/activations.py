"""TensorFlow activations: forward(spec, x) -> y, written as the NumPy reference's expressions."""

from __future__ import annotations

import math

import tensorflow as tf

from polynn.activations import SELU_ALPHA, SELU_SCALE

from . import custom
from .special import log_softmax, sigmoid, softmax, softplus


def _relu(spec, x):
    # Each piece's gradient convention at its kink follows the reference's backward:
    # tf.nn.relu passes nothing at 0; the clip passes its ends; the slope term stops at threshold.
    if spec.threshold != 0:
        y = x * tf.cast(x > spec.threshold, x.dtype)
    else:
        y = tf.nn.relu(x)
    if spec.max_value is not None:
        y = tf.clip_by_value(y, 0.0, spec.max_value)
    if spec.negative_slope != 0:
        y = y - spec.negative_slope * tf.nn.relu(spec.threshold - x)
    return y


def _elu(alpha, x):
    return tf.where(x > 0, x, alpha * tf.math.expm1(tf.math.minimum(x, 0.0)))


_GELU_C = math.sqrt(2 / math.pi)


def _gelu(spec, x):
    if spec.approximate:
        return 0.5 * x * (1 + tf.math.tanh(_GELU_C * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + tf.math.erf(x / math.sqrt(2)))


IMPLEMENTATIONS = {
    "linear": lambda spec, x: x,
    "relu": _relu,
    "sigmoid": lambda spec, x: sigmoid(x),
    "tanh": lambda spec, x: tf.math.tanh(x),
    "softmax": lambda spec, x: softmax(x, spec.axis),
    "log_softmax": lambda spec, x: log_softmax(x, spec.axis),
    "elu": lambda spec, x: _elu(spec.alpha, x),
    "selu": lambda spec, x: SELU_SCALE * _elu(SELU_ALPHA, x),
    "softplus": lambda spec, x: softplus(x),
    "softsign": lambda spec, x: x / (1 + tf.math.abs(x)),
    "gelu": _gelu,
    "silu": lambda spec, x: x * sigmoid(x),
    # x > 0 (not >=) so the gradient at 0 is the slope, as the reference.
    "leaky_relu": lambda spec, x: tf.where(x > 0, x, spec.negative_slope * x),
    # tf.nn.relu6 passes the gradient on (0, 6) only, ends excluded, as the reference.
    "relu6": lambda spec, x: tf.nn.relu6(x),
    "exponential": lambda spec, x: tf.math.exp(x),
    "hard_sigmoid": lambda spec, x: tf.nn.relu6(x + 3) / 6,
    "hard_silu": lambda spec, x: x * tf.nn.relu6(x + 3) / 6,
    "mish": lambda spec, x: x * tf.math.tanh(softplus(x)),
    "custom_activation": custom.activation,
}
