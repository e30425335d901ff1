"""polynn.ops: one array namespace, in NumPy's spelling, for every component and user function.

A function written with these ops runs on every backend: each op dispatches to the ops of the
backend that is running the model (a backend enters `using(its_ops)` around component code), and
outside any model to the NumPy backend's ops on plain arrays (found through the plugin manager, so
POLYNN_DISABLE_PLUGINS=numpy leaves none). Arithmetic operators (+ - * / ** and unary -) work on
the backend's tensors directly. On the NumPy backend the same functions are differentiated by a
small reverse-mode autodiff, so a custom loss trains there too.

A backend implements the op set as a namespace (module or object) with one attribute per name in
OP_NAMES, taking and returning its own tensors; see docs/plugins.md. Each op's docstring below is
its contract: the value, and the gradient, at kinks and ties too.
"""

from __future__ import annotations

import builtins
import contextvars
import math
import numbers
import typing
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import plugins
from ._typing import Axis, Tensor
from .errors import InvalidArgumentError

__all__ = [
    "OP_NAMES", "using", "current", "epsilon", "pi",
    "abs", "square", "sqrt", "exp", "log", "log1p", "tanh", "sigmoid", "softplus", "negative", "sign", "power",
    "maximum", "minimum", "clip", "where", "equal", "not_equal", "greater", "greater_equal", "less", "less_equal",
    "logical_and", "logical_or", "logical_not", "cast", "sum", "mean", "max", "min", "prod", "argmax", "matmul",
    "reshape", "expand_dims", "squeeze", "concatenate", "stack", "one_hot", "take_along_axis", "cumsum", "sort",
    "stop_gradient", "shape", "zeros_like", "ones_like", "convert_to_tensor",
    "EXTRA_OP_NAMES", "expm1", "erf", "softmax", "log_softmax", "dtype", "take", "unstack", "conv", "max_pool",
    "average_pool", "CAST_DTYPES", "check_dtype", "window_padding",
]

epsilon = 1e-7  # Keras's backend epsilon
pi = math.pi

OP_NAMES = (
    "abs", "square", "sqrt", "exp", "log", "log1p", "tanh", "sigmoid", "softplus", "negative", "sign", "power",
    "maximum", "minimum", "clip", "where", "equal", "not_equal", "greater", "greater_equal", "less", "less_equal",
    "logical_and", "logical_or", "logical_not", "cast", "sum", "mean", "max", "min", "prod", "argmax", "matmul",
    "reshape", "expand_dims", "squeeze", "concatenate", "stack", "one_hot", "take_along_axis", "cumsum", "sort",
    "stop_gradient", "shape", "zeros_like", "ones_like", "convert_to_tensor",
)

# Ops a backend may implement natively (faster, or more exact); polynn composes them from OP_NAMES
# for a namespace without them, so a backend written against OP_NAMES alone runs every component.
EXTRA_OP_NAMES = ("expm1", "erf", "softmax", "log_softmax", "dtype", "take", "unstack", "conv", "max_pool",
                  "average_pool")

# The dtype names cast and convert_to_tensor take, and dtype returns.
CAST_DTYPES = ("float32", "float64", "int32", "int64", "bool")

_current: contextvars.ContextVar[Any] = contextvars.ContextVar("polynn_ops", default=None)


def current() -> Any:
    """The ops namespace in force: the running backend's, else the NumPy backend's (its `ops`)."""
    namespace = _current.get()
    return namespace if namespace is not None else plugins.get_backend("numpy").ops


class using:  # noqa: N801 (a function to its callers: `with polynn.ops.using(namespace):`)
    """Make `namespace` (a backend's ops) the target of every polynn.ops call in this context."""

    # A class, not a generator context manager: backends enter it around every component call, and
    # this costs a fraction of contextlib's overhead (docs/performance.md#entering-the-ops-context).
    __slots__ = ("namespace", "_token")

    def __init__(self, namespace: Any) -> None:
        self.namespace = namespace

    def __enter__(self) -> Any:
        self._token = _current.set(self.namespace)
        return self.namespace

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._token)


def check_dtype(dtype: Any) -> str:
    """dtype's name, one of CAST_DTYPES (a name, or anything whose str() is one, as a NumPy dtype);
    else an InvalidArgumentError. A backend's cast and convert_to_tensor check their dtype with it,
    then map the name to their engine's dtype."""
    name = str(dtype)
    if name not in CAST_DTYPES:
        raise InvalidArgumentError("dtype", dtype, ", ".join(CAST_DTYPES), owner="polynn.ops.cast")
    return name


# The contract of the arithmetic: each op's docstring gives its value (NumPy's namesake unless it
# says otherwise) and its gradient, including the slope every backend gives at a kink or a tie,
# where the math has none. In short: abs and sign have slope 0 at 0; maximum and minimum send a
# tie's gradient to their first argument (so maximum(x, 0.0) has slope 1 at 0, where the relu
# activation has 0); clip passes it on the closed interval [x_min, x_max]; max and min reductions
# share it evenly among tied elements; sort is stable; argmax picks the first of tied elements.
# The conformance kit's op cases hold inputs on each of these points (conformance/op_functions.py).


def abs(x: Tensor) -> Tensor:  # noqa: A001
    """|x|. Gradient: sign(x): -1, 1, and 0 at x == 0."""
    return current().abs(x)


def square(x: Tensor) -> Tensor:
    """x**2. Gradient: 2 x."""
    return current().square(x)


def sqrt(x: Tensor) -> Tensor:
    """The square root of x >= 0. Gradient: 0.5 / sqrt(x) (inf at 0)."""
    return current().sqrt(x)


def exp(x: Tensor) -> Tensor:
    """e**x. Gradient: exp(x)."""
    return current().exp(x)


def log(x: Tensor) -> Tensor:
    """The natural logarithm of x > 0. Gradient: 1 / x."""
    return current().log(x)


def log1p(x: Tensor) -> Tensor:
    """log(1 + x), accurate near 0. Gradient: 1 / (1 + x)."""
    return current().log1p(x)


def tanh(x: Tensor) -> Tensor:
    """The hyperbolic tangent. Gradient: 1 - tanh(x)**2."""
    return current().tanh(x)


def negative(x: Tensor) -> Tensor:
    """-x. Gradient: -1."""
    return current().negative(x)


def sign(x: Tensor) -> Tensor:
    """-1, 0 or 1 as x < 0, x == 0 or x > 0. Gradient: 0 everywhere, at 0 too."""
    return current().sign(x)


def power(x: Tensor, y: Tensor) -> Tensor:
    """x**y, either a tensor or a number. Gradients: y x**(y - 1) for x; x**y log(x) for y where
    x > 0, and 0 where x <= 0 (not NaN)."""
    return current().power(x, y)


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + exp(-x)), without overflow. Gradient: s (1 - s), s = sigmoid(x); 0.25 at 0, where
    implementations switch formulas."""
    return current().sigmoid(x)


def softplus(x: Tensor) -> Tensor:
    """log(1 + exp(x)), computed as max(x, 0) + log1p(exp(-|x|)). Gradient: sigmoid(x), 0.5 at 0
    (the formula's max and |x| have kinks there; their slopes cancel)."""
    return current().softplus(x)


def maximum(x: Tensor, y: Tensor) -> Tensor:
    """The element-wise larger of x and y (broadcast). Gradient: to x where x >= y, to y where
    x < y: a tie sends all of it to the first argument (TensorFlow's rule; torch.maximum would
    split it), so maximum(x, 0.0) has slope 1 at x == 0."""
    return current().maximum(x, y)


def minimum(x: Tensor, y: Tensor) -> Tensor:
    """The element-wise smaller of x and y. Gradient: to x where x <= y, to y where x > y; a tie
    sends all of it to the first argument."""
    return current().minimum(x, y)


def clip(x: Tensor, x_min: float, x_max: float) -> Tensor:
    """x limited to [x_min, x_max] (numbers). Gradient: 1 on the closed interval x_min <= x <=
    x_max, the bounds included, and 0 outside; the bounds take none."""
    return current().clip(x, x_min, x_max)


def where(condition: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """x where condition holds, else y. Gradient: to x where condition holds, to y elsewhere; the
    condition takes none."""
    return current().where(condition, x, y)


def equal(x: Tensor, y: Tensor) -> Tensor:
    """x == y, element-wise, as booleans; like every comparison and logical op, no gradient."""
    return current().equal(x, y)


def not_equal(x: Tensor, y: Tensor) -> Tensor:
    """x != y, element-wise, as booleans."""
    return current().not_equal(x, y)


def greater(x: Tensor, y: Tensor) -> Tensor:
    """x > y, element-wise, as booleans (False on a tie)."""
    return current().greater(x, y)


def greater_equal(x: Tensor, y: Tensor) -> Tensor:
    """x >= y, element-wise, as booleans (True on a tie)."""
    return current().greater_equal(x, y)


def less(x: Tensor, y: Tensor) -> Tensor:
    """x < y, element-wise, as booleans (False on a tie)."""
    return current().less(x, y)


def less_equal(x: Tensor, y: Tensor) -> Tensor:
    """x <= y, element-wise, as booleans (True on a tie)."""
    return current().less_equal(x, y)


def logical_and(x: Tensor, y: Tensor) -> Tensor:
    """x and y, element-wise, on booleans."""
    return current().logical_and(x, y)


def logical_or(x: Tensor, y: Tensor) -> Tensor:
    """x or y, element-wise, on booleans."""
    return current().logical_or(x, y)


def logical_not(x: Tensor) -> Tensor:
    """not x, element-wise, on booleans."""
    return current().logical_not(x)


def cast(x: Tensor, dtype: str) -> Tensor:
    """x converted to dtype: "float32", "float64", "int32", "int64" or "bool"; floats to integers
    truncate toward 0. Gradient: passed back (in x's dtype) between float dtypes; none through an
    integer or boolean result."""
    return current().cast(x, dtype)


def sum(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """The sum over axis (all axes when None). Gradient: 1 for every element summed."""
    return current().sum(x, axis=axis, keepdims=keepdims)


def mean(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """The mean over axis (all axes when None). Gradient: 1 / n for each of the n elements."""
    return current().mean(x, axis=axis, keepdims=keepdims)


def max(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """The largest element over axis (all axes when None). Gradient: to the largest element; k tied
    largest elements get 1 / k of it each."""
    return current().max(x, axis=axis, keepdims=keepdims)


def min(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """The smallest element over axis. Gradient: to the smallest element; k tied smallest elements
    get 1 / k of it each."""
    return current().min(x, axis=axis, keepdims=keepdims)


def prod(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """The product over axis (all axes when None). Gradient: the product of the other elements,
    exact where x holds zeros (not prod / x)."""
    return current().prod(x, axis=axis, keepdims=keepdims)


def argmax(x: Tensor, axis: int | None = None) -> Tensor:
    """The index of the largest element over axis (of the flattened x when None), an integer
    tensor; the first of tied elements. No gradient."""
    return current().argmax(x, axis=axis)


def matmul(x: Tensor, y: Tensor) -> Tensor:
    """The matrix product, NumPy's matmul (batched over leading axes, vectors promoted). Gradients:
    g @ y^T for x and x^T @ g for y."""
    return current().matmul(x, y)


def reshape(x: Tensor, shape: Sequence[int]) -> Tensor:
    """x with a new shape of as many elements (one dimension may be -1). Gradient: reshaped back."""
    return current().reshape(x, shape)


def expand_dims(x: Tensor, axis: int) -> Tensor:
    """x with a new axis of length 1 at axis. Gradient: reshaped back."""
    return current().expand_dims(x, axis)


def squeeze(x: Tensor, axis: Axis = None) -> Tensor:
    """x without its axes of length 1 (only axis when given). Gradient: reshaped back."""
    return current().squeeze(x, axis=axis)


def concatenate(xs: Sequence[Tensor], axis: int = 0) -> Tensor:
    """The tensors xs joined along an existing axis. Gradient: split back to each input."""
    return current().concatenate(xs, axis=axis)


def stack(xs: Sequence[Tensor], axis: int = 0) -> Tensor:
    """The tensors xs (of one shape) joined along a new axis. Gradient: split back to each input."""
    return current().stack(xs, axis=axis)


def one_hot(indices: Tensor, num_classes: int) -> Tensor:
    """An array of the model's float dtype with a new last axis of num_classes, 1 at each index.
    No gradient."""
    return current().one_hot(indices, num_classes)


def take_along_axis(x: Tensor, indices: Tensor, axis: int) -> Tensor:
    """NumPy's take_along_axis: the elements of x at integer indices along axis (indices broadcast
    on the other axes). Gradient: added back at the positions taken (twice for an index taken
    twice); the indices take none."""
    return current().take_along_axis(x, indices, axis)


def cumsum(x: Tensor, axis: int | None = None) -> Tensor:
    """The running sum along axis (of the flattened x when None). Gradient: the reversed running
    sum of the upstream gradient."""
    return current().cumsum(x, axis=axis)


def sort(x: Tensor, axis: int = -1) -> Tensor:
    """x sorted ascending along axis, stably: tied elements keep their order. Gradient: each
    sorted position's goes back to the element sorted there, so among ties the first in x gets
    the first tied position's."""
    return current().sort(x, axis=axis)


def stop_gradient(x: Tensor) -> Tensor:
    """x, treated as a constant by differentiation: gradient 0."""
    return current().stop_gradient(x)


def shape(x: Tensor) -> tuple[int | None, ...]:
    """The static shape of x as a tuple (None for a dimension only known at run time)."""
    return current().shape(x)


def zeros_like(x: Tensor) -> Tensor:
    """Zeros of x's shape and dtype; a constant (no gradient to x)."""
    return current().zeros_like(x)


def ones_like(x: Tensor) -> Tensor:
    """Ones of x's shape and dtype; a constant (no gradient to x)."""
    return current().ones_like(x)


def convert_to_tensor(x: Any, dtype: str | None = None) -> Tensor:
    """x as the backend's tensor (of dtype when given; the model's float dtype for floats). A
    tensor passes unchanged, its gradient too."""
    return current().convert_to_tensor(x, dtype)


# ---- ops beyond OP_NAMES: native where the namespace has them, composed otherwise ----------


def _native(name: str) -> Any:
    return getattr(current(), name, None)


def expm1(x: Tensor) -> Tensor:
    """exp(x) - 1, exact near 0. Gradient: exp(x)."""
    native = _native("expm1")
    if native is not None:
        return native(x)
    # exp(x) - 1 loses digits near 0; there the series x + x^2/2 + x^3/6 + x^4/24 is exact to
    # rounding for |x| < 1e-3 (the next term is below 2**-52 relative).
    small = less(abs(x), 1e-3)
    safe = where(small, x, zeros_like(x))
    series = safe * (1 + safe * (0.5 + safe * (1 / 6 + safe / 24)))
    return where(small, series, exp(x) - 1)


_ERF_SWITCH = 3.0
_ERF_TERMS = 90


def erf(x: Tensor) -> Tensor:
    """The error function 2/sqrt(pi) * integral_0^x exp(-t^2) dt. Gradient: 2/sqrt(pi) exp(-x^2)."""
    native = _native("erf")
    if native is not None:
        return native(x)
    # The NumPy reference's algorithm, in float64 as there (90 float32 terms would lose 3 digits):
    # a series below |x| = 3, the continued fraction of erfc above. Each branch sees only inputs
    # where it is finite, so the other branch's gradient stays 0.
    given = dtype(x)
    x = cast(x, "float64")
    small = less(abs(x), _ERF_SWITCH)
    xs = where(small, x, zeros_like(x))
    two_x2 = 2 * xs * xs
    term = ones_like(xs)
    total = ones_like(xs)
    for n in range(1, _ERF_TERMS):
        term = term * two_x2 / (2 * n + 1)
        total = total + term
    series = 2 / math.sqrt(math.pi) * xs * exp(-xs * xs) * total
    xl = where(small, ones_like(x) * _ERF_SWITCH, abs(x))
    f = xl
    for k in range(_ERF_TERMS, 0, -1):
        f = xl + (k / 2) / f
    tail = sign(x) * (1 - exp(-xl * xl) / math.sqrt(math.pi) / f)
    return cast(where(small, series, tail), given)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(x - max(x)) / sum(exp(x - max(x))) along axis.
    Gradient (vector-Jacobian product): dx = s * (dy - sum(dy * s, axis))."""
    native = _native("softmax")
    if native is not None:
        return native(x, axis=axis)
    # The shift changes no value of softmax, so it is held constant (and ties in max are moot).
    e = exp(x - stop_gradient(max(x, axis=axis, keepdims=True)))
    return e / sum(e, axis=axis, keepdims=True)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """x - max(x) - log(sum(exp(x - max(x)))) along axis.
    Gradient: dx = dy - softmax(x) * sum(dy, axis)."""
    native = _native("log_softmax")
    if native is not None:
        return native(x, axis=axis)
    shifted = x - stop_gradient(max(x, axis=axis, keepdims=True))
    return shifted - log(sum(exp(shifted), axis=axis, keepdims=True))


def dtype(x: Tensor) -> str:
    """x's dtype as polynn spells it: "float32", "float64", "int32", "int64" or "bool"."""
    native = _native("dtype")
    if native is not None:
        return native(x)
    # Every engine's tensors carry a dtype whose name (or text) ends with NumPy's spelling:
    # float32, torch.float32, tf.float32's "float32", jax's numpy dtype.
    spelled = getattr(x, "dtype", None)
    if spelled is None:
        spelled = type(x).__name__ if isinstance(x, (bool, int, float)) else "float64"
        return {"bool": "bool", "int": "int64", "float": "float64"}.get(spelled, spelled)
    return (getattr(spelled, "name", None) or str(spelled)).rsplit(".", 1)[-1]


def take(x: Tensor, indices: Tensor, axis: int = 0) -> Tensor:
    """x's entries at integer `indices` along `axis` (NumPy's take; indices in [0, x.shape[axis])):
    shape x.shape[:axis] + indices.shape + x.shape[axis + 1:]. Gradient: dy added back at each index.
    A runtime gathers a batch's rows with it."""
    native = _native("take")
    if native is not None:
        return native(x, indices, axis=axis)
    # take_along_axis with the indices on `axis` and length 1 elsewhere, broadcast over x's other axes.
    rank = len(shape(x))
    axis = axis % rank
    index_shape = shape(indices)
    flat = reshape(indices, [1] * axis + [-1] + [1] * (rank - axis - 1))
    out = take_along_axis(x, flat, axis)
    if len(index_shape) == 1:
        return out
    # reshape takes ints: this composition needs static shapes.
    x_shape = typing.cast("tuple[int, ...]", shape(x))
    return reshape(out, (*x_shape[:axis], *typing.cast("tuple[int, ...]", index_shape), *x_shape[axis + 1:]))


def unstack(x: Tensor, axis: int = 0) -> list[Tensor]:
    """x split along `axis` into its x.shape[axis] slices, each of x's shape without that axis, in
    order (NumPy's and Keras's unstack; a list); the length must be static. Gradient: each slice's
    put back at its place, zeros for a slice left unused, in one op where the engine has one (the
    recurrent layers read their time steps and gates with it: a `take` per slice would send back
    an x-sized gradient per slice)."""
    x_shape = shape(x)
    rank = len(x_shape)
    if rank == 0:
        raise InvalidArgumentError("x.shape", x_shape, "x of rank 1 or more (a scalar has no axis to unstack)",
                                   owner="polynn.ops.unstack")
    if not (isinstance(axis, numbers.Integral) and not isinstance(axis, bool) and -rank <= axis < rank):
        raise InvalidArgumentError("axis", axis, f"an int axis of x, shape {x_shape}: {-rank} to {rank - 1}",
                                   owner="polynn.ops.unstack")
    count = x_shape[axis]
    if count is None:
        raise InvalidArgumentError("x.shape", x_shape, f"a length along axis {axis} known when the op is traced",
                                   owner="polynn.ops.unstack")
    native = _native("unstack")
    if native is not None:
        return list(native(x, axis=axis % rank))
    # A one-element index, then squeeze: take's composed form reshapes a scalar index's result by x's
    # whole shape, which need not be static (the batch's length).
    return [squeeze(take(x, np.array([i]), axis=axis), axis=axis) for i in range(count)]


# ---- sliding-window ops: conv, max_pool, average_pool ------------------------------------------
# Channels last, 1 to 3 spatial dimensions. polynn.ops checks the arguments and passes a native
# implementation them normalized: strides, dilation_rate and pool_size as tuples of ints (one per
# spatial dimension), padding as "valid", "same" or a tuple of (before, after) pairs. A native may
# return NotImplemented for arguments its engine lacks a kernel for; polynn.ops then composes the op.

_PADDINGS = ("valid", "same")


def _spatial_dims(op: str, x_shape: tuple[int | None, ...]) -> int:
    if len(x_shape) not in (3, 4, 5):
        raise InvalidArgumentError("x.shape", x_shape, "(batch, *spatial, channels) with 1 to 3 spatial dimensions",
                                   owner=f"polynn.ops.{op}")
    return len(x_shape) - 2


def _positive_ints(op: str, name: str, value: Any, dims: int) -> tuple[int, ...]:
    """value (an int, or a sequence of `dims` ints), each >= 1, as a tuple of `dims` ints."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * dims
    if len(values) != dims or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and int(v) >= 1
                                      for v in values):
        raise InvalidArgumentError(name, value, f"a positive int, or a tuple of {dims} positive ints (one per "
                                   f"spatial dimension)", owner=f"polynn.ops.{op}")
    return tuple(int(v) for v in values)


def _padding(op: str, padding: Any, dims: int, explicit: bool) -> str | tuple[tuple[int, int], ...]:
    if isinstance(padding, str) and padding.lower() in _PADDINGS:
        return padding.lower()
    pairs = tuple(tuple(p) if isinstance(p, (tuple, list)) else p for p in padding) \
        if explicit and isinstance(padding, (tuple, list)) else None
    if pairs is not None and len(pairs) == dims and all(
            isinstance(p, tuple) and len(p) == 2
            and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and int(v) >= 0 for v in p)
            for p in pairs):
        return tuple((int(before), int(after)) for before, after in pairs)
    accepted = '"valid" or "same"'
    if explicit:
        accepted += f", or {dims} pairs (before, after) of ints >= 0, one per spatial dimension"
    raise InvalidArgumentError("padding", padding, accepted, owner=f"polynn.ops.{op}")


def window_padding(padding: str | Sequence[tuple[int, int]], spatial_shape: Sequence[int],
                   window_shape: Sequence[int], strides: Sequence[int],
                   dilation_rate: Sequence[int] | None = None) -> tuple[tuple[int, int], ...]:
    """The (before, after) padding of each spatial dimension that conv, max_pool and average_pool
    apply (normalized arguments, as they pass a native implementation): none for "valid"; for
    "same" TensorFlow's and Keras's rule, total = max((ceil(n / s) - 1) s + (k - 1) d + 1 - n, 0),
    before = total // 2 and the extra one after; explicit pairs unchanged."""
    dilation_rate = dilation_rate or (1,) * len(window_shape)
    if padding == "valid":
        return ((0, 0),) * len(window_shape)
    if not isinstance(padding, str):
        return tuple((int(before), int(after)) for before, after in padding)
    pairs = []
    for n, k, s, d in zip(spatial_shape, window_shape, strides, dilation_rate):
        total = builtins.max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        pairs.append((total // 2, total - total // 2))
    return tuple(pairs)


def _output_shape(op: str, x_shape: tuple[int | None, ...], window: tuple[int, ...], strides: tuple[int, ...],
                  padding: Any, dilation: tuple[int, ...]) -> None:
    """Refuse a spatial dimension too small for one window; dimensions unknown until run time pass."""
    spatial = x_shape[1:-1]
    if any(n is None for n in spatial):
        return
    pads = window_padding(padding, typing.cast("tuple[int, ...]", spatial), window, strides, dilation)
    for n, k, d, (before, after) in zip(spatial, window, dilation, pads):
        if typing.cast(int, n) + before + after < (k - 1) * d + 1:
            extent = tuple((k - 1) * d + 1 for k, d in zip(window, dilation))
            raise InvalidArgumentError("x.shape", x_shape, f"spatial dimensions, once padded by {pads}, of at least "
                                       f"the window's extent {extent}", owner=f"polynn.ops.{op}")


def conv(x: Tensor, kernel: Tensor, strides: int | Sequence[int] = 1,
         padding: str | Sequence[tuple[int, int]] = "valid", dilation_rate: int | Sequence[int] = 1) -> Tensor:
    """The convolution of Keras and TensorFlow (a cross-correlation: the kernel is not flipped) of
    x (batch, *spatial, in_channels) with kernel (*kernel_size, in_channels, out_channels), channels
    last, 1 to 3 spatial dimensions:

        out[b, o, f] = sum over k, c of xp[b, o * s + k * d, c] kernel[k, c, f]

    per spatial dimension (o, k, s, d: output position, kernel offset, stride, dilation), where xp is
    x padded with zeros. strides and dilation_rate: an int or one per spatial dimension. padding:
    "valid" (none; out = floor((n - (k - 1) d - 1) / s) + 1), "same" (out = ceil(n / s); total
    max((ceil(n / s) - 1) s + (k - 1) d + 1 - n, 0), half of it before, the odd one after: see
    window_padding) or one (before, after) pair per spatial dimension (Conv1D's "causal" is
    ((k - 1) d, 0)). Gradients: for x, each element gets g[b, o, f] kernel[k, c, f] summed over the
    windows (o, k) it falls in (the transposed convolution; padding gets none); for kernel, g[b, o, f]
    xp[b, o * s + k * d, c] summed over b and o."""
    x_shape, k_shape = shape(x), shape(kernel)
    dims = _spatial_dims("conv", x_shape)
    if len(k_shape) != dims + 2 or (x_shape[-1] is not None and k_shape[-2] != x_shape[-1]):
        raise InvalidArgumentError("kernel.shape", k_shape, f"(*kernel_size, in_channels={x_shape[-1]}, "
                                   f"out_channels) with {dims} spatial dimensions, as x {x_shape}",
                                   owner="polynn.ops.conv")
    window = typing.cast("tuple[int, ...]", tuple(k_shape[:dims]))
    strides = _positive_ints("conv", "strides", strides, dims)
    dilation_rate = _positive_ints("conv", "dilation_rate", dilation_rate, dims)
    padding = _padding("conv", padding, dims, explicit=True)
    _output_shape("conv", x_shape, window, strides, padding, dilation_rate)
    native = _native("conv")
    found = NotImplemented if native is None else native(x, kernel, strides=strides, padding=padding,
                                                         dilation_rate=dilation_rate)
    if found is not NotImplemented:
        return found
    # im2col: one gather of every window's elements, then one matrix product with the kernel.
    patches, _ = _windows("conv", x, window, strides, padding, dilation_rate, fill=0.0)
    out_shape = typing.cast("tuple[int, ...]", shape(patches))[1:1 + dims]
    columns = reshape(patches, (-1, math.prod(window) * typing.cast(int, x_shape[-1])))
    out = matmul(columns, reshape(kernel, (-1, typing.cast(int, k_shape[-1]))))
    return reshape(out, (-1, *out_shape, typing.cast(int, k_shape[-1])))


def _pool_arguments(op: str, x: Tensor, pool_size: Any, strides: Any,
                    padding: Any) -> tuple[tuple[int, ...], tuple[int, ...], str]:
    dims = _spatial_dims(op, shape(x))
    window = _positive_ints(op, "pool_size", pool_size, dims)
    strides = window if strides is None else _positive_ints(op, "strides", strides, dims)
    padding = typing.cast(str, _padding(op, padding, dims, explicit=False))
    _output_shape(op, shape(x), window, strides, padding, (1,) * dims)
    return window, strides, padding


def max_pool(x: Tensor, pool_size: int | Sequence[int], strides: int | Sequence[int] | None = None,
             padding: str = "valid") -> Tensor:
    """The largest element of each window of x (batch, *spatial, channels), per channel, channels
    last, 1 to 3 spatial dimensions: windows of pool_size moved by strides (pool_size when None).
    padding: "valid" or "same" (as conv's, with dilation 1), the padding taking no part (as -inf).
    Gradient: all of each window's to its FIRST largest element in row-major order of the window
    (TensorFlow's, torch's and JAX's rule, on ties too), added up where windows overlap."""
    window, strides, padding = _pool_arguments("max_pool", x, pool_size, strides, padding)
    native = _native("max_pool")
    found = NotImplemented if native is None else native(x, pool_size=window, strides=strides, padding=padding)
    if found is not NotImplemented:
        return found
    patches, _ = _windows("max_pool", x, window, strides, padding, (1,) * len(window), fill=-math.inf)
    # take_along_axis at argmax (the first largest) sends the gradient there alone; ops.max would share it.
    first = expand_dims(argmax(patches, axis=-2), -2)
    return squeeze(take_along_axis(patches, first, axis=-2), axis=-2)


def average_pool(x: Tensor, pool_size: int | Sequence[int], strides: int | Sequence[int] | None = None,
                 padding: str = "valid") -> Tensor:
    """The mean of each window of x (batch, *spatial, channels), per channel, channels last, 1 to 3
    spatial dimensions: windows of pool_size moved by strides (pool_size when None). padding:
    "valid" or "same" (as conv's, with dilation 1); a window the padding overlaps averages its real
    elements only (Keras's and TensorFlow's rule). Gradient: g / (the window's real elements) to each
    of them, added up where windows overlap."""
    window, strides, padding = _pool_arguments("average_pool", x, pool_size, strides, padding)
    native = _native("average_pool")
    found = NotImplemented if native is None else native(x, pool_size=window, strides=strides, padding=padding)
    if found is not NotImplemented:
        return found
    patches, counts = _windows("average_pool", x, window, strides, padding, (1,) * len(window), fill=0.0)
    if int(counts.min()) == math.prod(window):
        return mean(patches, axis=-2)
    return sum(patches, axis=-2) / cast(convert_to_tensor(counts[..., None]), dtype(x))


def _windows(op: str, x: Tensor, window: tuple[int, ...], strides: tuple[int, ...], padding: Any,
             dilation: tuple[int, ...], fill: float) -> tuple[Tensor, np.ndarray]:
    """x's windows, (batch, *out_spatial, prod(window), channels), the window's elements in row-major
    order, padding as `fill`; and the count of real elements of each window, (*out_spatial,). One
    gather (take) from x with its spatial dimensions flattened and a `fill` element appended."""
    x_shape = shape(x)
    spatial = x_shape[1:-1]
    if any(n is None for n in spatial):
        raise InvalidArgumentError("x.shape", x_shape, "spatial dimensions known when the op is traced (a namespace "
                                   f"without a native {op} gathers windows by static index)", owner=f"polynn.ops.{op}")
    sizes = typing.cast("tuple[int, ...]", spatial)
    pads = window_padding(padding, sizes, window, strides, dilation)
    # Per dimension: the input position of each (output position, window offset), -1 in the padding.
    positions = []
    for n, k, s, d, (before, after) in zip(sizes, window, strides, dilation, pads):
        count = (n + before + after - (k - 1) * d - 1) // s + 1
        at = np.arange(count)[:, None] * s + np.arange(k)[None, :] * d - before
        positions.append(np.where((at >= 0) & (at < n), at, -1))
    dims = len(sizes)
    # Every (output position, window offset) on a grid (*out_spatial, *window), flattened row-major.
    grids = np.meshgrid(*[np.arange(p.shape[0]) for p in positions], *[np.arange(k) for k in window], indexing="ij")
    per_dim = [positions[i][grids[i], grids[dims + i]] for i in range(dims)]
    real = np.logical_and.reduce([p >= 0 for p in per_dim])
    flat = np.ravel_multi_index(tuple(np.where(real, p, 0) for p in per_dim), sizes)
    channels = typing.cast(int, x_shape[-1])
    source = reshape(x, (-1, math.prod(sizes), channels))
    if not real.all():
        # The fill element, appended after the real ones; a constant (zeros_like passes no gradient).
        filler = zeros_like(take(source, np.zeros(1, dtype=np.int64), axis=1)) + fill
        source = concatenate([source, filler], axis=1)
        flat = np.where(real, flat, math.prod(sizes))
    out_spatial = tuple(p.shape[0] for p in positions)
    taken = take(source, flat.reshape(-1).astype(np.int64), axis=1)
    patches = reshape(taken, (-1, *out_spatial, math.prod(window), channels))
    return patches, real.reshape(*out_spatial, -1).sum(axis=-1)
