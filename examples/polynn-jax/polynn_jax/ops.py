"""The JAX backend's polynn.ops: jax.numpy, with the reference's gradients at ties, clips and kinks.

Every name in polynn.ops.OP_NAMES is here, with the semantics of the NumPy backend's ops (see
polynn_numpy.ops): maximum and minimum send a tie's gradient to x, clip passes the gradient on
[x_min, x_max] ends included, abs has slope 0 at 0, and a reduced max or min shares its gradient
evenly between ties (as jnp.max already does). Floats made from Python values take the float
dtype of the model running the user function (`floats`).
"""

from __future__ import annotations

import contextlib
import contextvars

import jax
import jax.numpy as jnp
import numpy as np

from polynn.errors import InvalidArgumentError

from . import special

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


abs = special.abs  # noqa: A001
square = jnp.square
sqrt = jnp.sqrt
exp = jnp.exp
log = jnp.log
log1p = jnp.log1p
tanh = special.tanh
sigmoid = special.sigmoid
softplus = special.softplus
negative = jnp.negative
sign = jnp.sign
power = jnp.power
matmul = jnp.matmul


def where(condition, x, y):
    return jnp.where(condition, x, y)


def maximum(x, y):
    # Ties send the gradient to x, as the reference (jnp.maximum would split it).
    return jnp.where(jnp.asarray(x) >= jnp.asarray(y), x, y)


def minimum(x, y):
    return jnp.where(jnp.asarray(x) <= jnp.asarray(y), x, y)


def clip(x, x_min, x_max):
    x = jnp.asarray(x)
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
    return jnp.concatenate(list(xs), axis=axis)


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
