"""The user functions of the op cases: for each polynn.ops op, a function written with polynn.ops.

Most are activations f(x) of a (samples, UNITS) batch; one_hot and take_along_axis, which need
labels, are per-sample losses f(y_true, y_pred) with one-hot y_true. The sliding-window ops (conv,
max_pool, average_pool) have one function per configuration (`label`, in the case's name), each
reading the batch as a small image or sequence. An op without a gradient
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
    label: str = ""


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


def _unstack(x: Tensor) -> Tensor:
    # Columns (axis -1) reordered, column 2 used twice and column 4 not at all (its slice's gradient
    # is 0); and x as a sequence batch (batch, steps, 1) by steps (axis 1), two of them broadcast
    # over the units, as a recurrent layer reads its time steps. The batch's length is not static.
    columns = ops.unstack(x, axis=-1)
    steps = ops.unstack(ops.reshape(x, (-1, UNITS, 1)), axis=1)
    picked = ops.stack([columns[3], columns[0], columns[2] * columns[2], columns[1], columns[2]], axis=1)
    return picked * ops.convert_to_tensor(RAMP) + 0.25 * steps[4] - 0.5 * steps[1] + x


_ACTIVATIONS["unstack"] = (_unstack, "real")

# ---- the sliding-window ops ----------------------------------------------------------------
# Each function reads the (6, 5) batch as an image or sequence batch, and returns its result's
# elements followed by the batch's remaining ones, as (6, 5): every output is checked as it is,
# with an upstream gradient of its own. A conv's kernel is made from the batch too (a constant
# of eighths plus half of some of its elements), so the kernel's gradient is checked as well.
# Products of the inputs (1/128) and kernels (1/256) and their short sums are exact in float32.

_SAMPLES = 6


def _eighths_drawn(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.RandomState(seed).randint(-4, 5, shape) / 8.0


def _kernel(x: Tensor, shape: tuple[int, ...], seed: int) -> Tensor:
    size = int(np.prod(shape))
    picked = np.random.RandomState(seed).choice(_SAMPLES * UNITS, size, replace=size > _SAMPLES * UNITS)
    from_x = ops.take(ops.reshape(x, (-1,)), picked, axis=0)
    return ops.reshape(from_x, shape) * 0.5 + ops.convert_to_tensor(_eighths_drawn(shape, seed))


def _with_rest(out: Tensor, x: Tensor) -> Tensor:
    """out's elements, then x's from the same flat position on, as (samples, UNITS)."""
    flat = ops.reshape(out, (1, -1))
    used = int(np.prod(cast("tuple[int, ...]", ops.shape(flat))))
    rest = ops.take(ops.reshape(x, (1, -1)), np.arange(used, _SAMPLES * UNITS), axis=1)
    return ops.reshape(ops.concatenate([flat, rest], axis=1), (-1, UNITS))


def _conv(image: tuple[int, ...], kernel: tuple[int, ...], seed: int, **options: Any) -> Callable[[Tensor], Tensor]:
    def function(x: Tensor) -> Tensor:
        return _with_rest(ops.conv(ops.reshape(x, image), _kernel(x, kernel, seed), **options), x)

    return function


def _pool(op: Callable[..., Tensor], image: tuple[int, ...], shift: float = 0.0,
          **options: Any) -> Callable[[Tensor], Tensor]:
    # A shift below the inputs' range (-3) makes every window's elements negative: a max_pool that
    # pads with zeros, not -inf, shows in the values.
    def function(x: Tensor) -> Tensor:
        return _with_rest(op(ops.reshape(x, image) + shift, **options) - shift, x)

    return function


def _max_pool_ties(x: Tensor) -> Tensor:
    # Each window holds an element of x and its constant copy: equal values. The first takes all of
    # the gradient: x's in the first pooling, the copy's in the second; splitting or taking the last
    # gives x another gradient.
    x_first = ops.reshape(ops.stack([x, ops.stop_gradient(x)], axis=-1), (3, 20, 1))
    copy_first = ops.reshape(ops.stack([ops.stop_gradient(x), x], axis=-1), (3, 20, 1))
    pooled = (ops.reshape(ops.max_pool(x_first, 2), (-1, UNITS))
              + ops.reshape(ops.max_pool(copy_first, 2), (-1, UNITS)) * ops.convert_to_tensor(RAMP))
    return pooled


# (label, function) per op. The "real" grid's HELD ties at the top (row 5, columns 0 and 2) fall in
# common windows of the 2D max_pool cases, so their gradient goes to the first in row-major order.
_WINDOW_OPS: dict[str, list[tuple[str, Callable[[Tensor], Tensor]]]] = {
    "conv": [
        ("", _conv((1, 6, 5, 1), (3, 3, 1, 2), 31)),
        ("(1d, strides=2, padding=same)", _conv((2, 5, 3), (4, 3, 2), 32, strides=2, padding="same")),
        ("(2d, padding=same, dilation_rate=(2, 3))",
         _conv((1, 3, 5, 2), (2, 2, 2, 2), 33, padding="same", dilation_rate=(2, 3))),
        ("(1d, padding=((2, 0),), dilation_rate=2)",  # Conv1D's causal padding
         _conv((6, 5, 1), (2, 1, 1), 34, padding=((2, 0),), dilation_rate=2)),
        ("(2d, strides=(2, 1), padding=((1, 0), (0, 2)))",
         _conv((1, 6, 5, 1), (2, 3, 1, 2), 35, strides=(2, 1), padding=((1, 0), (0, 2)))),
        ("(2d, strides=2, padding=same, dilation_rate=2)",
         _conv((1, 6, 5, 1), (2, 2, 1, 2), 36, strides=2, padding="same", dilation_rate=2)),
        ("(3d, strides=(2, 1, 1), padding=same)",
         _conv((1, 3, 2, 5, 1), (2, 2, 3, 1, 1), 37, strides=(2, 1, 1), padding="same")),
    ],
    "max_pool": [
        ("", _pool(ops.max_pool, (1, 6, 5, 1), pool_size=(2, 3), strides=2)),
        ("(1d, ties)", _max_pool_ties),
        ("(2d, pool_size=3, strides=1, padding=same)",
         _pool(ops.max_pool, (1, 6, 5, 1), -3.0, pool_size=3, strides=1, padding="same")),
        ("(1d, pool_size=2, padding=same)", _pool(ops.max_pool, (6, 5, 1), -3.0, pool_size=2, padding="same")),
        ("(3d, pool_size=2, padding=same)", _pool(ops.max_pool, (1, 3, 2, 5, 1), -3.0, pool_size=2, padding="same")),
    ],
    "average_pool": [
        ("", _pool(ops.average_pool, (1, 6, 5, 1), pool_size=2)),
        ("(2d, pool_size=3, strides=2, padding=same)",
         _pool(ops.average_pool, (1, 6, 5, 1), pool_size=3, strides=2, padding="same")),
        ("(1d, pool_size=2, strides=1, padding=same)",
         _pool(ops.average_pool, (2, 5, 3), pool_size=2, strides=1, padding="same")),
        ("(3d, pool_size=2, padding=same)", _pool(ops.average_pool, (1, 3, 2, 5, 1), pool_size=2, padding="same")),
    ],
}

_LOSSES = {
    "one_hot": _one_hot_loss,
    "take_along_axis": _take_along_axis_loss,
}


def functions() -> list[OpFunction]:
    """The OpFunctions of each name in polynn.ops.OP_NAMES, then EXTRA_OP_NAMES, in that order: one
    per name, several (labelled) for a sliding-window op."""
    found = []
    for name in (*ops.OP_NAMES, *ops.EXTRA_OP_NAMES):
        if name in _LOSSES:
            entries = [OpFunction(name, "loss", _LOSSES[name], "probabilities")]
        elif name in _WINDOW_OPS:
            entries = [OpFunction(name, "activation", function, label=label) for label, function in _WINDOW_OPS[name]]
        else:
            entries = [OpFunction(name, "activation", *_ACTIVATIONS[name])]
        for entry in entries:
            # Error messages and summaries show the function's name: say which op it is about.
            entry.function.__name__ = f"conformance_op_{name}"
            found.append(entry)
    return found
