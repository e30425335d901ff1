"""The JAX backend's polynn.ops: jax.numpy, with the contract's gradients at ties, clips and kinks.

Every name in polynn.ops.OP_NAMES is here, as polynn.ops documents it: maximum and minimum send a
tie's gradient to x, clip passes the gradient on [x_min, x_max] ends included, abs has slope 0 at
0, and a reduced max or min shares its gradient evenly between ties (as jnp.max already does);
the extra ops (polynn.ops.EXTRA_OP_NAMES) are JAX's own (conv, max_pool and average_pool on
jax.lax's convolution and reduce_window). Floats made from Python values take the
float dtype of the model running (`floats`). The backend calls these ops in JAX's x64 mode.
"""

from __future__ import annotations

import contextlib
import contextvars

import jax
import jax.numpy as jnp
import jax.scipy.special
import numpy as np

from polynn import ops as polynn_ops
from polynn.errors import InvalidArgumentError

_DTYPES = {"float32": jnp.float32, "float64": jnp.float64, "int32": jnp.int32, "int64": jnp.int64,
           "bool": jnp.bool_}
_float_dtype = contextvars.ContextVar("polynn_jax_float_dtype", default=jnp.float32)


@contextlib.contextmanager
def floats(dtype):
    """Make `dtype` the float dtype of values that user functions convert from Python or NumPy."""
    token = _float_dtype.set(dtype)
    try:
        yield
    finally:
        _float_dtype.reset(token)


def _with_derivative(value, derivative):
    """value(x) as an element-wise function whose derivative is derivative(x, value(x)): autodiff of
    a formula's pieces can pick another slope at a kink than the contract's (jnp.abs has slope 1 at 0)."""

    @jax.custom_jvp
    def f(x):
        return value(x)

    @f.defjvp
    def jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        y = value(x)
        return y, derivative(x, y) * t

    return f


def _sigmoid(x):
    # exp of -|x| only, so no overflow: 1 / (1 + e^-x) for x >= 0 and e^x / (1 + e^x) below.
    e = jnp.exp(-jnp.abs(x))
    return jnp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


abs = _with_derivative(jnp.abs, lambda x, y: jnp.sign(x))  # noqa: A001
sigmoid = _with_derivative(_sigmoid, lambda x, y: y * (1 - y))
softplus = _with_derivative(lambda x: jnp.maximum(x, 0) + jnp.log1p(jnp.exp(-jnp.abs(x))),
                            lambda x, y: _sigmoid(x))


square = jnp.square
sqrt = jnp.sqrt
exp = jnp.exp
log = jnp.log
log1p = jnp.log1p
tanh = jnp.tanh
negative = jnp.negative
sign = jnp.sign
matmul = jnp.matmul


@jax.custom_jvp
def power(x, y):
    return jnp.power(x, y)


@power.defjvp
def _power_jvp(primals, tangents):
    (x, y), (dx, dy) = primals, tangents
    out = jnp.power(x, y)
    slope = y * jnp.power(x, y - 1) * dx
    if not jnp.issubdtype(jnp.result_type(y), jnp.floating):
        return out, slope  # an integer exponent has no gradient
    # x**y log(x) where x > 0 and 0 elsewhere, as polynn.ops.power says: jnp.power's is NaN at x <= 0.
    return out, slope + out * jnp.log(jnp.where(x > 0, x, 1)) * dy


def _like(value, x):
    """A NumPy float (array or scalar) at x's float dtype, as the other engines take it: in x64 mode
    np.float64(0.5) would otherwise turn a float32 model's values into float64."""
    if isinstance(value, jax.Array):
        return value
    array = np.asarray(value)
    dtype = jnp.result_type(x)
    if isinstance(value, np.ndarray | np.floating) and np.issubdtype(array.dtype, np.floating) \
            and jnp.issubdtype(dtype, jnp.floating):
        return jnp.asarray(array, dtype=dtype)
    return value


def where(condition, x, y):
    return jnp.where(condition, x, y)


def maximum(x, y):
    # Ties send the gradient to x, as the reference (jnp.maximum would split it).
    return jnp.where(jnp.asarray(x) >= jnp.asarray(y), x, y)


def minimum(x, y):
    return jnp.where(jnp.asarray(x) <= jnp.asarray(y), x, y)


def clip(x, x_min, x_max):
    x = jnp.asarray(x)
    x_min, x_max = _like(x_min, x), _like(x_max, x)
    inside = (x >= x_min) & (x <= x_max)
    # Outside the bounds the value is the bound, a constant; inside it is x itself.
    return jnp.where(inside, x, jnp.clip(jax.lax.stop_gradient(x), x_min, x_max))


equal = jnp.equal
not_equal = jnp.not_equal
greater = jnp.greater
greater_equal = jnp.greater_equal
less = jnp.less
less_equal = jnp.less_equal
logical_and = jnp.logical_and
logical_or = jnp.logical_or
logical_not = jnp.logical_not


def _dtype(dtype):
    try:
        return _DTYPES[str(dtype)]
    except KeyError:
        raise InvalidArgumentError("dtype", dtype, ", ".join(_DTYPES), owner="polynn.ops.cast") from None


def cast(x, dtype):
    return jnp.asarray(x).astype(_dtype(dtype))


def sum(x, axis=None, keepdims=False):  # noqa: A001
    return jnp.sum(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    return jnp.mean(x, axis=axis, keepdims=keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001
    return jnp.max(x, axis=axis, keepdims=keepdims)


def min(x, axis=None, keepdims=False):  # noqa: A001
    return jnp.min(x, axis=axis, keepdims=keepdims)


def prod(x, axis=None, keepdims=False):
    return jnp.prod(x, axis=axis, keepdims=keepdims)


def argmax(x, axis=None):
    return jnp.argmax(x, axis=axis)


def reshape(x, shape):
    return jnp.reshape(x, shape)


def expand_dims(x, axis):
    return jnp.expand_dims(x, axis)


def squeeze(x, axis=None):
    return jnp.squeeze(x, axis=axis)


def concatenate(xs, axis=0):
    return jnp.concatenate([convert_to_tensor(x) for x in xs], axis=axis)


def stack(xs, axis=0):
    return jnp.stack(list(xs), axis=axis)


def one_hot(indices, num_classes):
    labels = jnp.asarray(indices).astype(jnp.int64)
    return (labels[..., None] == jnp.arange(num_classes)).astype(_float_dtype.get())


def take_along_axis(x, indices, axis):
    return jnp.take_along_axis(x, jnp.asarray(indices).astype(jnp.int64), axis=axis)


def cumsum(x, axis=None):
    return jnp.cumsum(x, axis=axis)


def sort(x, axis=-1):
    return jnp.sort(x, axis=axis)


def stop_gradient(x):
    return jax.lax.stop_gradient(x)


def shape(x):
    return tuple(jnp.shape(x))


def zeros_like(x):
    return jnp.zeros_like(x)


def ones_like(x):
    return jnp.ones_like(x)


def convert_to_tensor(x, dtype=None):
    if dtype is not None:
        return cast(x, dtype)
    if isinstance(x, jax.Array):
        return x
    array = np.asarray(x)
    if np.issubdtype(array.dtype, np.floating):
        return jnp.asarray(array, dtype=_float_dtype.get())
    return jnp.asarray(array)


# ---- ops beyond OP_NAMES (polynn.ops.EXTRA_OP_NAMES), native here --------------------------

expm1 = jnp.expm1
erf = jax.scipy.special.erf


def softmax(x, axis=-1):
    # exp(x - max) / sum(...), the max held constant; its gradient is s * (dy - sum(dy * s)).
    return jax.nn.softmax(x, axis=axis)


def log_softmax(x, axis=-1):
    return jax.nn.log_softmax(x, axis=axis)


def dtype(x):
    return jnp.asarray(x).dtype.name


def take(x, indices, axis=0):
    # Its gradient adds up at repeated indices, as the contract.
    return jnp.take(x, jnp.asarray(indices).astype(jnp.int64), axis=axis)


def unstack(x, axis=0):
    return jnp.unstack(jnp.asarray(x), axis=axis)


# ---- the sliding-window ops: polynn.ops passes them normalized arguments (tuples, padding names or pairs) ----

_LAYOUTS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC"), 3: ("NDHWC", "DHWIO", "NDHWC")}


def _window_pads(padding, x, window, strides, dilation=None):
    return list(polynn_ops.window_padding(padding, x.shape[1:-1], window, strides, dilation))


def conv(x, kernel, strides, padding, dilation_rate):
    x = jnp.asarray(x)
    kernel = _like(kernel, x)
    window = jnp.shape(kernel)[:-2]
    return jax.lax.conv_general_dilated(x, kernel, strides, _window_pads(padding, x, window, strides, dilation_rate),
                                        rhs_dilation=dilation_rate, dimension_numbers=_LAYOUTS[len(window)])


def _reduce_window(x, init, reducer, pool_size, strides, pads):
    return jax.lax.reduce_window(x, init, reducer, (1, *pool_size, 1), (1, *strides, 1), [(0, 0), *pads, (0, 0)])


def max_pool(x, pool_size, strides, padding):
    x = jnp.asarray(x)
    # The padding takes no part (-inf); reduce_window max's gradient goes to each window's first
    # largest element.
    return _reduce_window(x, -jnp.inf, jax.lax.max, pool_size, strides, _window_pads(padding, x, pool_size, strides))


def average_pool(x, pool_size, strides, padding):
    x = jnp.asarray(x)
    pads = _window_pads(padding, x, pool_size, strides)
    sums = _reduce_window(x, 0.0, jax.lax.add, pool_size, strides, pads)
    # Each window's real elements: the same sums over ones, a constant.
    counts = _reduce_window(jnp.ones((1, *x.shape[1:-1], 1), x.dtype), 0.0, jax.lax.add, pool_size, strides, pads)
    return sums / counts
