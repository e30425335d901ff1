"""The user functions of the op cases: for each polynn.ops op, a function written with polynn.ops.

Most are activations f(x) of a (samples, UNITS) batch; one_hot and take_along_axis, which need
labels, are per-sample losses f(y_true, y_pred) with one-hot y_true. An op without a gradient
(comparisons, logical ops, argmax, shape, one_hot, zeros_like, ones_like, stop_gradient) sits
inside a differentiable function, so its case checks its values and that the function around it
still differentiates as the reference does.

Constants are multiples of 1/8 and the inputs (inputs.op_grid) multiples of 1/128, exact in
float32, so a backend that rounds a float64 constant to float32 computes the same numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, cast

import numpy as np

from .. import ops
from .._typing import Tensor

UNITS = 5
# A value the grid holds on purpose: comparisons against it meet a tie, where > and >= differ.
THRESHOLD = 37.5 / 64
# The cells (row, column, value) the "real" grid holds on purpose, each on a kink or a tie of the
# functions below, so a backend's gradient there meets polynn.ops's rule (see its docstring):
HELD = (
    (5, 4, THRESHOLD),
    (0, 0, 0.0),  # abs and sign at 0
    (1, 1, 0.25),  # maximum(x, 0.5 - x), minimum(x, 0.5 - x) and maximum(x, 0.25): x equals the other argument
    (2, 2, -0.25),  # minimum(x, -0.25): a tie too
    (3, 3, -1.0), (4, 4, 1.5),  # clip(x, -1.0, 1.5): both bounds
    (5, 0, 2.5), (5, 2, 2.5),  # max over a row and over the batch, sort and argmax: a tie at the top
    (4, 1, -2.5), (4, 3, -2.5),  # min and sort: a tie at the bottom
)


def _eighths(rows: int, cols: int, offset: int) -> np.ndarray:
    return ((np.arange(rows * cols).reshape(rows, cols) * 5 + offset) % 9 - 4) / 8.0


MIX = _eighths(UNITS, UNITS, 1)
MIX_WIDE = _eighths(2 * UNITS, UNITS, 3)
STACK_WEIGHTS = _eighths(3, UNITS, 2)
RAMP = np.arange(1, UNITS + 1) / 4.0
TAKEN = np.array([4, 0, 0, 2, 1])


@dataclasses.dataclass(frozen=True)
class OpFunction:
    """harness: "activation" (f(x)) or "loss" (f(y_true, y_pred)); domain: the inputs' range
    ("real", "positive", "near_one" for x; "probabilities" for a loss's y_pred)."""

    op: str
    harness: str
    function: Callable[..., Any]
    domain: str = "real"


def _tie_select(condition: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    # The two branches differ everywhere, so a comparison that flips at the tie shows in the values.
    return lambda x: ops.where(condition(x), ops.square(x), ops.negative(x))


def _cast(x: Tensor) -> Tensor:
    # float -> float64 (differentiable), float -> int32 (truncation toward 0; 2x is an integer only
    # at HELD values, where it is exact), bool -> float64; the custom activation casts the float64
    # result to the model's dtype.
    wide = ops.cast(x, "float64")
    return wide * ops.cast(ops.cast(2.0 * x, "int32"), "float64") + ops.cast(ops.greater(x, 0.3), "float64")


def _matmul(x: Tensor) -> Tensor:
    quadratic = ops.matmul(ops.reshape(x, (-1, 1, UNITS)), ops.reshape(x, (-1, UNITS, 1)))
    return ops.matmul(x, MIX) + 0.125 * ops.reshape(quadratic, (-1, 1))


def _one_hot_loss(y_true: Tensor, y_pred: Tensor) -> Tensor:
    # Squared error to smoothed one-hot targets rebuilt from the labels' classes. The reference's
    # one_hot is float32 whatever the model's dtype, so its constants are exact in float32.
    target = ops.one_hot(ops.argmax(y_true, axis=-1), UNITS) * 0.875 + 0.0625
    return ops.sum(ops.square(target - y_pred), axis=-1)


def _take_along_axis_loss(y_true: Tensor, y_pred: Tensor) -> Tensor:
    # The negative log of the probability each sample gives its own class.
    picked = ops.take_along_axis(y_pred, ops.expand_dims(ops.argmax(y_true, axis=-1), -1), axis=-1)
    return ops.negative(ops.log(ops.squeeze(picked, axis=-1)))


_ACTIVATIONS = {
    "abs": (ops.abs, "real"),
    "square": (ops.square, "real"),
    "sqrt": (ops.sqrt, "positive"),
    "exp": (ops.exp, "real"),
    "log": (ops.log, "positive"),
    "log1p": (ops.log1p, "positive"),
    "tanh": (ops.tanh, "real"),
    "sigmoid": (ops.sigmoid, "real"),
    "softplus": (ops.softplus, "real"),
    "negative": (ops.negative, "real"),
    # sign(x) (x**2 + 1): the gradient at 0 is sign's slope there.
    "sign": (lambda x: ops.sign(x) * (ops.square(x) + 1.0), "real"),
    # A number and a tensor exponent: the exponent's gradient x**x log(x) is checked too.
    "power": (lambda x: ops.power(x, 2.5) + ops.power(x, x), "positive"),
    "maximum": (lambda x: ops.maximum(x, 0.5 - x) + ops.maximum(x, 0.25), "real"),
    "minimum": (lambda x: ops.minimum(x, 0.5 - x) + ops.minimum(x, -0.25), "real"),
    "clip": (lambda x: ops.clip(x, -1.0, 1.5), "real"),
    "where": (lambda x: ops.where(ops.greater(x, 0.3), ops.square(x), 2.0 * x), "real"),
    "equal": (_tie_select(lambda x: ops.equal(x, THRESHOLD)), "real"),
    "not_equal": (_tie_select(lambda x: ops.not_equal(x, THRESHOLD)), "real"),
    "greater": (_tie_select(lambda x: ops.greater(x, THRESHOLD)), "real"),
    "greater_equal": (_tie_select(lambda x: ops.greater_equal(x, THRESHOLD)), "real"),
    "less": (_tie_select(lambda x: ops.less(x, THRESHOLD)), "real"),
    "less_equal": (_tie_select(lambda x: ops.less_equal(x, THRESHOLD)), "real"),
    "logical_and": (_tie_select(lambda x: ops.logical_and(ops.greater(x, -1.0), ops.less(x, 1.0))), "real"),
    "logical_or": (_tie_select(lambda x: ops.logical_or(ops.less(x, -1.0), ops.greater(x, 1.0))), "real"),
    "logical_not": (_tie_select(lambda x: ops.logical_not(ops.greater(x, 0.3))), "real"),
    "cast": (_cast, "real"),
    # Each reduction over the last axis (keepdims) and over the whole batch (axis None).
    "sum": (lambda x: x * ops.sum(x, axis=-1, keepdims=True) + 0.125 * ops.sum(x), "real"),
    "mean": (lambda x: ops.square(x - ops.mean(x, axis=-1, keepdims=True)) + ops.mean(x), "real"),
    "max": (lambda x: x * ops.max(x, axis=-1, keepdims=True) + ops.max(x), "real"),
    "min": (lambda x: x * ops.min(x, axis=-1, keepdims=True) + ops.min(x), "real"),
    "prod": (lambda x: x * ops.prod(x, axis=-1, keepdims=True) + 0.125 * ops.prod(x, axis=0), "near_one"),
    "argmax": (lambda x: x * (1.0 + ops.one_hot(ops.argmax(x, axis=-1), UNITS)), "real"),
    "matmul": (_matmul, "real"),
    "reshape": (lambda x: ops.sum(ops.reshape(x, (-1, UNITS, 1)) * ops.convert_to_tensor(MIX), axis=1), "real"),
    "expand_dims": (lambda x: ops.sum(ops.expand_dims(x, 1) * ops.expand_dims(x, -1) * ops.convert_to_tensor(MIX),
                                      axis=1), "real"),
    "squeeze": (lambda x: ops.square(ops.squeeze(ops.reshape(x, (-1, 1, UNITS)), axis=1)) + x, "real"),
    "concatenate": (lambda x: ops.matmul(ops.concatenate([x, ops.square(x)], axis=-1), MIX_WIDE), "real"),
    "stack": (lambda x: ops.sum(ops.stack([x, ops.square(x), ops.tanh(x)], axis=1)
                                * ops.convert_to_tensor(STACK_WEIGHTS), axis=1), "real"),
    "cumsum": (lambda x: ops.cumsum(x, axis=-1) * ops.convert_to_tensor(RAMP)
               + 0.125 * ops.reshape(ops.cumsum(x), (-1, UNITS)), "real"),
    # Along the units and along the batch; the ties of HELD (rows 4 and 5) are sorted stably.
    "sort": (lambda x: ops.sort(x, axis=-1) * ops.convert_to_tensor(RAMP) + 0.25 * ops.sort(x, axis=0), "real"),
    # x * constant(x): the value x**2, the gradient x (not 2x).
    "stop_gradient": (lambda x: x * ops.stop_gradient(x), "real"),
    "shape": (lambda x: x * float(cast(int, ops.shape(x)[-1]) + len(ops.shape(x))), "real"),  # a static shape
    "zeros_like": (lambda x: ops.where(ops.greater(x, 0.3), ops.square(x), ops.zeros_like(x)), "real"),
    "ones_like": (lambda x: ops.ones_like(x) * ops.square(x) + ops.ones_like(x), "real"),
    "convert_to_tensor": (lambda x: ops.convert_to_tensor(x) * ops.convert_to_tensor(RAMP)
                          + ops.convert_to_tensor(0.5), "real"),
}

# The extra ops: native in some backends, composed from OP_NAMES in others; each case checks both.
_EXTRA = {
    "expm1": (lambda x: ops.expm1(x) * ops.convert_to_tensor(RAMP), "real"),
    "erf": (lambda x: ops.erf(x) * ops.convert_to_tensor(RAMP), "real"),
    # Along the units and along the batch, weighted so the gradient is not zero.
    "softmax": (lambda x: ops.softmax(x, axis=-1) * ops.convert_to_tensor(RAMP) + 0.25 * ops.softmax(x, axis=0),
                "real"),
    "log_softmax": (lambda x: ops.log_softmax(x, axis=-1) * ops.convert_to_tensor(RAMP)
                    + 0.25 * ops.log_softmax(x, axis=0), "real"),
    # A cast to the dtype ops.dtype names: a wrong name raises, a wrong dtype changes the values.
    "dtype": (lambda x: ops.cast(ops.greater(x, 0.3), ops.dtype(x)) * x + x, "real"),
    # A repeated index: its gradient is the sum of both uses.
    "take": (lambda x: ops.take(x, TAKEN, axis=1) * ops.convert_to_tensor(RAMP) + x, "real"),
}
_ACTIVATIONS.update(_EXTRA)

_LOSSES = {
    "one_hot": _one_hot_loss,
    "take_along_axis": _take_along_axis_loss,
}


def functions() -> list[OpFunction]:
    """One OpFunction per name in polynn.ops.OP_NAMES, then EXTRA_OP_NAMES, in that order."""
    found = []
    for name in (*ops.OP_NAMES, *ops.EXTRA_OP_NAMES):
        if name in _LOSSES:
            entry = OpFunction(name, "loss", _LOSSES[name], "probabilities")
        else:
            entry = OpFunction(name, "activation", *_ACTIVATIONS[name])
        # Error messages and summaries show the function's name: say which op it is about.
        entry.function.__name__ = f"conformance_op_{name}"
        found.append(entry)
    return found
