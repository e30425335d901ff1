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

import contextvars
import math
import typing
from collections.abc import Sequence
from typing import Any

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
    "EXTRA_OP_NAMES", "expm1", "erf", "softmax", "log_softmax", "dtype", "take",
    "CAST_DTYPES", "check_dtype",
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
EXTRA_OP_NAMES = ("expm1", "erf", "softmax", "log_softmax", "dtype", "take")

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
