"""polynn.ops: one array namespace, in NumPy's spelling, for custom losses, metrics and activations.

A function written with these ops runs on every backend: each op dispatches to the ops of the
backend that is running the model (a backend enters `using(its_ops)` around user code), and to
plain NumPy outside any model. Arithmetic operators (+ - * / ** and unary -) work on the
backend's tensors directly. On the NumPy backend the same functions are differentiated by a
small reverse-mode autodiff, so a custom loss trains there too.

A backend implements the op set as a namespace (module or object) with one attribute per name in
OP_NAMES, taking and returning its own tensors; see docs/plugins.md.
"""

from __future__ import annotations

import contextlib
import contextvars
import math

__all__ = [
    "OP_NAMES", "using", "current", "epsilon", "pi",
    "abs", "square", "sqrt", "exp", "log", "log1p", "tanh", "sigmoid", "softplus", "negative", "sign", "power",
    "maximum", "minimum", "clip", "where", "equal", "not_equal", "greater", "greater_equal", "less", "less_equal",
    "logical_and", "logical_or", "logical_not", "cast", "sum", "mean", "max", "min", "prod", "argmax", "matmul",
    "reshape", "expand_dims", "squeeze", "concatenate", "stack", "one_hot", "take_along_axis", "cumsum", "sort",
    "stop_gradient", "shape", "zeros_like", "ones_like", "convert_to_tensor",
    "EXTRA_OP_NAMES", "expm1", "erf", "softmax", "log_softmax", "take",
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
EXTRA_OP_NAMES = ("expm1", "erf", "softmax", "log_softmax", "take")

_current = contextvars.ContextVar("polynn_ops", default=None)


def _numpy_ops():
    from polynn_numpy import ops as numpy_ops

    return numpy_ops


def current():
    """The ops namespace in force: the running backend's, else NumPy's."""
    namespace = _current.get()
    return namespace if namespace is not None else _numpy_ops()


@contextlib.contextmanager
def using(namespace):
    """Make `namespace` (a backend's ops) the target of every polynn.ops call in this context."""
    token = _current.set(namespace)
    try:
        yield namespace
    finally:
        _current.reset(token)


# Each op below is documented by its NumPy namesake unless a line says otherwise. Gradients where
# the math has none, the same on every backend: abs and sign at 0 have slope sign(0) = 0 and 0;
# maximum/minimum send a tie's gradient to their first argument; max/min reductions share it
# evenly among tied elements; clip passes it on the closed interval [x_min, x_max].

def abs(x): return current().abs(x)  # noqa: A001
def square(x): return current().square(x)
def sqrt(x): return current().sqrt(x)
def exp(x): return current().exp(x)
def log(x): return current().log(x)
def log1p(x): return current().log1p(x)
def tanh(x): return current().tanh(x)
def negative(x): return current().negative(x)
def sign(x): return current().sign(x)
def power(x, y): return current().power(x, y)


def sigmoid(x):
    """1 / (1 + exp(-x))."""
    return current().sigmoid(x)


def softplus(x):
    """log(1 + exp(x)), without overflow."""
    return current().softplus(x)


def maximum(x, y): return current().maximum(x, y)
def minimum(x, y): return current().minimum(x, y)
def clip(x, x_min, x_max): return current().clip(x, x_min, x_max)
def where(condition, x, y): return current().where(condition, x, y)
def equal(x, y): return current().equal(x, y)
def not_equal(x, y): return current().not_equal(x, y)
def greater(x, y): return current().greater(x, y)
def greater_equal(x, y): return current().greater_equal(x, y)
def less(x, y): return current().less(x, y)
def less_equal(x, y): return current().less_equal(x, y)
def logical_and(x, y): return current().logical_and(x, y)
def logical_or(x, y): return current().logical_or(x, y)
def logical_not(x): return current().logical_not(x)


def cast(x, dtype):
    """x converted to dtype: "float32", "float64", "int32", "int64" or "bool"."""
    return current().cast(x, dtype)


def sum(x, axis=None, keepdims=False): return current().sum(x, axis=axis, keepdims=keepdims)  # noqa: A001
def mean(x, axis=None, keepdims=False): return current().mean(x, axis=axis, keepdims=keepdims)
def max(x, axis=None, keepdims=False): return current().max(x, axis=axis, keepdims=keepdims)  # noqa: A001
def min(x, axis=None, keepdims=False): return current().min(x, axis=axis, keepdims=keepdims)  # noqa: A001
def prod(x, axis=None, keepdims=False): return current().prod(x, axis=axis, keepdims=keepdims)
def argmax(x, axis=None): return current().argmax(x, axis=axis)
def matmul(x, y): return current().matmul(x, y)
def reshape(x, shape): return current().reshape(x, shape)
def expand_dims(x, axis): return current().expand_dims(x, axis)
def squeeze(x, axis=None): return current().squeeze(x, axis=axis)
def concatenate(xs, axis=0): return current().concatenate(xs, axis=axis)
def stack(xs, axis=0): return current().stack(xs, axis=axis)


def one_hot(indices, num_classes):
    """An array of the model's float dtype with a new last axis of num_classes, 1 at each index."""
    return current().one_hot(indices, num_classes)


def take_along_axis(x, indices, axis): return current().take_along_axis(x, indices, axis)
def cumsum(x, axis=None): return current().cumsum(x, axis=axis)
def sort(x, axis=-1): return current().sort(x, axis=axis)


def stop_gradient(x):
    """x, treated as a constant by differentiation."""
    return current().stop_gradient(x)


def shape(x):
    """The static shape of x as a tuple (None for a dimension only known at run time)."""
    return current().shape(x)


def zeros_like(x): return current().zeros_like(x)
def ones_like(x): return current().ones_like(x)


def convert_to_tensor(x, dtype=None):
    """x as the backend's tensor (of dtype when given; the model's float dtype for floats)."""
    return current().convert_to_tensor(x, dtype)


# ---- ops beyond OP_NAMES: native where the namespace has them, composed otherwise ----------


def _native(name):
    return getattr(current(), name, None)


def expm1(x):
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


def erf(x):
    """The error function 2/sqrt(pi) * integral_0^x exp(-t^2) dt. Gradient: 2/sqrt(pi) exp(-x^2)."""
    native = _native("erf")
    if native is not None:
        return native(x)
    # The NumPy reference's algorithm: a series below |x| = 3, the continued fraction of erfc above.
    # Each branch sees only inputs where it is finite, so the other branch's gradient stays 0.
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
    return where(small, series, tail)


def softmax(x, axis=-1):
    """exp(x - max(x)) / sum(exp(x - max(x))) along axis.
    Gradient (vector-Jacobian product): dx = s * (dy - sum(dy * s, axis))."""
    native = _native("softmax")
    if native is not None:
        return native(x, axis=axis)
    # The shift changes no value of softmax, so it is held constant (and ties in max are moot).
    e = exp(x - stop_gradient(max(x, axis=axis, keepdims=True)))
    return e / sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    """x - max(x) - log(sum(exp(x - max(x)))) along axis.
    Gradient: dx = dy - softmax(x) * sum(dy, axis)."""
    native = _native("log_softmax")
    if native is not None:
        return native(x, axis=axis)
    shifted = x - stop_gradient(max(x, axis=axis, keepdims=True))
    return shifted - log(sum(exp(shifted), axis=axis, keepdims=True))


def take(x, indices, axis=0):
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
    x_shape = shape(x)
    return reshape(out, (*x_shape[:axis], *index_shape, *x_shape[axis + 1:]))
