"""The TensorFlow backend's polynn.ops: TF core ops in NumPy's spelling, with the reference's gradients.

Every name in polynn.ops.OP_NAMES and EXTRA_OP_NAMES is here, with the value and gradient the
polynn.ops docstrings give: maximum and minimum send a tie's gradient to x, clip passes the gradient on
[x_min, x_max] ends included, abs and sign have slope 0 at 0, a reduced max or min shares its
gradient evenly between ties (as tf.reduce_max already does), sort is stable. Python and NumPy
values take the dtype of the tensor they meet (NumPy's weak scalars), and a float made from
Python or NumPy alone takes the float dtype of the model running the user function (`floats`).
"""

from __future__ import annotations

import builtins
import contextvars

import numpy as np
import tensorflow as tf

from polynn import ops as polynn_ops

from . import special

_DTYPES = {"float32": tf.float32, "float64": tf.float64, "int32": tf.int32, "int64": tf.int64, "bool": tf.bool}
_float_dtype = contextvars.ContextVar("polynn_tensorflow_float_dtype", default=tf.float32)


class floats:  # noqa: N801
    """Make `dtype` the float dtype of values that user functions convert from Python or NumPy."""

    # A class, entered around every component call (see polynn.ops.using).
    __slots__ = ("dtype", "_token")

    def __init__(self, dtype):
        self.dtype = tf.as_dtype(dtype)

    def __enter__(self):
        self._token = _float_dtype.set(self.dtype)

    def __exit__(self, *exc):
        _float_dtype.reset(self._token)


# ---- conversions --------------------------------------------------------------------------


def _constant(value, dtype):
    # Through NumPy, so a Python float reaches float64 exactly (tf.cast of one goes through float32).
    return tf.constant(np.asarray(value).astype(dtype.as_numpy_dtype))


def _tensor(x):
    if tf.is_tensor(x):
        return x
    array = np.asarray(x)
    if np.issubdtype(array.dtype, np.floating):
        return _constant(array, _float_dtype.get())
    return tf.constant(array)


def _rank(dtype):
    return 2 if dtype.is_floating else 1 if dtype.is_integer else 0


def _promote(*xs):
    """The operands as tensors of one dtype: the widest tensor's, Python and NumPy values following
    it; a float value meeting only integer or boolean tensors takes the model's float dtype."""
    tensors = [x for x in xs if tf.is_tensor(x)]
    values = [np.asarray(x) for x in xs if not tf.is_tensor(x)]
    candidates = [t.dtype for t in tensors] or [_tensor(v).dtype for v in values]
    target = builtins.max(candidates, key=lambda d: (_rank(d), d.size))
    if _rank(target) < 2 and any(np.issubdtype(v.dtype, np.floating) for v in values):
        target = _float_dtype.get()
    elif _rank(target) == 0 and any(np.issubdtype(v.dtype, np.integer) for v in values):
        target = tf.int64
    return [tf.cast(x, target) if tf.is_tensor(x) else _constant(x, target) for x in xs]


def _floating(x):
    x = _tensor(x)
    return x if x.dtype.is_floating else tf.cast(x, _float_dtype.get())


def _countable(x):
    """x, with booleans as int64 so they sum and multiply, as NumPy's."""
    x = _tensor(x)
    return tf.cast(x, tf.int64) if x.dtype == tf.bool else x


def _axis(axis):
    return list(axis) if isinstance(axis, (tuple, list)) else axis


# ---- element-wise -------------------------------------------------------------------------


def abs(x):  # noqa: A001 - the polynn.ops name
    return tf.math.abs(_tensor(x))


def square(x):
    return tf.math.square(_tensor(x))


def sqrt(x):
    return tf.math.sqrt(_floating(x))


def exp(x):
    return tf.math.exp(_floating(x))


def log(x):
    return tf.math.log(_floating(x))


def log1p(x):
    return tf.math.log1p(_floating(x))


def tanh(x):
    return tf.math.tanh(_floating(x))


def negative(x):
    return tf.math.negative(_tensor(x))


def sign(x):
    # TensorFlow's gradient of sign is zero, as the reference's.
    return tf.math.sign(_tensor(x))


@tf.custom_gradient
def _softplus(x):
    # The reference's derivative, sigmoid(x), rather than the chain rule through the selects.
    return special.softplus(x), lambda g: g * special.sigmoid(x)


def sigmoid(x):
    # TensorFlow's kernel, close to the reference (docs/performance.md), gradient y (1 - y): one op
    # where the overflow-free formula and a custom gradient took a dozen, and traced slowly.
    return tf.math.sigmoid(_floating(x))


def softplus(x):
    return _softplus(_floating(x))


def power(x, y):
    # tf.pow's gradients are the reference's: y x^(y-1), and x^y log(x) where x > 0, else 0.
    return tf.math.pow(*_promote(x, y))


def matmul(x, y):
    a, b = _promote(x, y)
    if a.shape.rank == 1 and b.shape.rank == 1:
        return tf.reshape(tf.linalg.matmul(a[None, :], b[:, None]), [])
    if a.shape.rank == 1:
        return tf.squeeze(tf.linalg.matmul(a[None, :], b), -2)
    if b.shape.rank == 1:
        return tf.squeeze(tf.linalg.matmul(a, b[:, None]), -1)
    return tf.linalg.matmul(a, b)


def where(condition, x, y):
    condition = _tensor(condition)
    if condition.dtype != tf.bool:
        condition = tf.cast(condition, tf.bool)
    return tf.where(condition, *_promote(x, y))


def maximum(x, y):
    # A select, so a tie sends the gradient to x whatever tf.maximum's gradient does.
    a, b = _promote(x, y)
    return tf.where(a >= b, a, b)


def minimum(x, y):
    a, b = _promote(x, y)
    return tf.where(a <= b, a, b)


def clip(x, x_min, x_max):
    a, low, high = _promote(x, x_min, x_max)
    inside = tf.math.logical_and(a >= low, a <= high)
    # Outside the bounds the value is a bound, a constant; inside it is x itself.
    return tf.where(inside, a, tf.math.minimum(tf.math.maximum(tf.stop_gradient(a), low), high))


def _compare(function, name):
    def op(x, y):
        return function(*_promote(x, y))

    op.__name__ = name
    return op


equal = _compare(tf.math.equal, "equal")
not_equal = _compare(tf.math.not_equal, "not_equal")
greater = _compare(tf.math.greater, "greater")
greater_equal = _compare(tf.math.greater_equal, "greater_equal")
less = _compare(tf.math.less, "less")
less_equal = _compare(tf.math.less_equal, "less_equal")


def _truth(x):
    x = _tensor(x)
    return x if x.dtype == tf.bool else tf.cast(x, tf.bool)


def logical_and(x, y):
    return tf.math.logical_and(_truth(x), _truth(y))


def logical_or(x, y):
    return tf.math.logical_or(_truth(x), _truth(y))


def logical_not(x):
    return tf.math.logical_not(_truth(x))


def cast(x, dtype):
    target = _DTYPES[polynn_ops.check_dtype(dtype)]
    return tf.cast(x, target) if tf.is_tensor(x) else _constant(x, target)


# ---- reductions ---------------------------------------------------------------------------


def sum(x, axis=None, keepdims=False):  # noqa: A001
    return tf.math.reduce_sum(_countable(x), axis=_axis(axis), keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    return tf.math.reduce_mean(_floating(x), axis=_axis(axis), keepdims=keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001
    x = _tensor(x)
    if x.dtype == tf.bool:
        return tf.math.reduce_any(x, axis=_axis(axis), keepdims=keepdims)
    return tf.math.reduce_max(x, axis=_axis(axis), keepdims=keepdims)


def min(x, axis=None, keepdims=False):  # noqa: A001
    x = _tensor(x)
    if x.dtype == tf.bool:
        return tf.math.reduce_all(x, axis=_axis(axis), keepdims=keepdims)
    return tf.math.reduce_min(x, axis=_axis(axis), keepdims=keepdims)


def prod(x, axis=None, keepdims=False):
    # tf.reduce_prod's gradient is the product of the others, exact with zeros, as the reference.
    return tf.math.reduce_prod(_countable(x), axis=_axis(axis), keepdims=keepdims)


def argmax(x, axis=None):
    x = _countable(x)
    if axis is None:
        return tf.math.argmax(tf.reshape(x, [-1]), axis=0)
    return tf.math.argmax(x, axis=axis)


def cumsum(x, axis=None):
    x = _countable(x)
    if axis is None:
        return tf.math.cumsum(tf.reshape(x, [-1]), axis=0)
    return tf.math.cumsum(x, axis=axis)


# ---- shapes and indexing ------------------------------------------------------------------


def reshape(x, shape):
    return tf.reshape(_tensor(x), shape)


def expand_dims(x, axis):
    x = _tensor(x)
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    rank = x.shape.rank + len(axes)
    for a in sorted(a % rank for a in axes):
        x = tf.expand_dims(x, a)
    return x


def squeeze(x, axis=None):
    return tf.squeeze(_tensor(x), axis=_axis(axis))


def concatenate(xs, axis=0):
    xs = _promote(*xs)
    if axis is None:
        return tf.concat([tf.reshape(x, [-1]) for x in xs], axis=0)
    return tf.concat(xs, axis=axis)


def stack(xs, axis=0):
    return tf.stack(_promote(*xs), axis=axis)


def one_hot(indices, num_classes):
    # The model's float dtype, so the result multiplies its tensors (the reference's is float32,
    # which NumPy promotes); out-of-range indices give a row of zeros in both.
    return tf.one_hot(tf.cast(_tensor(indices), tf.int64), num_classes, dtype=_float_dtype.get())


def take_along_axis(x, indices, axis):
    x = _tensor(x)
    idx = tf.cast(_tensor(indices), tf.int64)
    if axis is None:
        x, axis = tf.reshape(x, [-1]), 0
    rank = x.shape.rank
    axis = axis % rank
    # Negative indices count from the end, as NumPy's.
    idx = tf.where(idx < 0, idx + tf.shape(x, out_type=tf.int64)[axis], idx)
    perm = [d for d in range(rank) if d != axis] + [axis]
    moved = perm != list(range(rank))
    if moved:
        x, idx = tf.transpose(x, perm), tf.transpose(idx, perm)
    # The other axes broadcast against each other, then one batched gather along the last. The
    # dynamic broadcast forgets the sizes known statically (1s included); the result gets them back,
    # which a traced graph's later reshapes need.
    known = tf.broadcast_static_shape(x.shape[:-1], idx.shape[:-1]).concatenate(idx.shape[-1:])
    lead = tf.broadcast_dynamic_shape(tf.shape(x)[:-1], tf.shape(idx)[:-1])
    x = tf.broadcast_to(x, tf.concat([lead, tf.shape(x)[-1:]], 0))
    idx = tf.broadcast_to(idx, tf.concat([lead, tf.shape(idx)[-1:]], 0))
    out = tf.gather(x, idx, batch_dims=rank - 1)
    out.set_shape(known)
    return tf.transpose(out, np.argsort(perm)) if moved else out


def sort(x, axis=-1):
    x = _tensor(x)
    if axis is None:
        x, axis = tf.reshape(x, [-1]), 0
    # A stable order, so ties differentiate as the reference's stable argsort.
    return take_along_axis(x, tf.argsort(x, axis=axis, stable=True), axis)


def stop_gradient(x):
    return tf.stop_gradient(_tensor(x))


def shape(x):
    if tf.is_tensor(x):
        return tuple(x.shape)
    return tuple(np.shape(x))


def zeros_like(x):
    return tf.zeros_like(_tensor(x))


def ones_like(x):
    return tf.ones_like(_tensor(x))


def convert_to_tensor(x, dtype=None):
    if dtype is not None:
        return cast(x, dtype)
    return _tensor(x)


# ---- ops beyond OP_NAMES (polynn.ops.EXTRA_OP_NAMES), native here --------------------------


def expm1(x):
    return tf.math.expm1(_floating(x))


def erf(x):
    return tf.math.erf(_floating(x))


def softmax(x, axis=-1):
    return special.softmax(_floating(x), axis)


def log_softmax(x, axis=-1):
    return special.log_softmax(_floating(x), axis)


def take(x, indices, axis=0):
    x = _tensor(x)
    # tf.gather's gradient adds the gradient of repeated indices, as the reference.
    return tf.gather(x, tf.cast(_tensor(indices), tf.int64), axis=axis % x.shape.rank)


def unstack(x, axis=0):
    # One op, whose gradient stacks the slices' gradients back (zeros for unused ones).
    return tf.unstack(_tensor(x), axis=axis)


# ---- the sliding-window ops: polynn.ops passes them normalized arguments (tuples, padding names or pairs) ----
# Three spatial dimensions are composed by polynn.ops (NotImplemented): TensorFlow has no float64
# 3D pooling kernels, and its eager gradients of Conv3D and the 3D pools fail.


def conv(x, kernel, strides, padding, dilation_rate):
    x, kernel = _promote(_floating(x), kernel)
    if len(strides) == 3:
        return NotImplemented
    # TensorFlow refuses strides and dilations both above 1 in one convolution.
    together = all(s == 1 for s in strides) or all(d == 1 for d in dilation_rate)
    if isinstance(padding, str) and together:
        return tf.nn.convolution(x, kernel, strides=strides, padding=padding.upper(), dilations=dilation_rate)
    pairs = polynn_ops.window_padding(padding, tuple(x.shape[1:-1]), tuple(kernel.shape[:-2]), strides,
                                      dilation_rate)
    if any(before or after for before, after in pairs):
        x = tf.pad(x, [(0, 0), *pairs, (0, 0)])
    if together:
        return tf.nn.convolution(x, kernel, strides=strides, padding="VALID", dilations=dilation_rate)
    # The dilated convolution at every position, then every s-th position.
    full = tf.nn.convolution(x, kernel, padding="VALID", dilations=dilation_rate)
    return full[(slice(None), *(slice(None, None, s) for s in strides))]


def max_pool(x, pool_size, strides, padding):
    # The padding takes no part; the gradient goes to each window's first largest element.
    x = _floating(x)
    if len(pool_size) == 3:
        return NotImplemented
    return tf.nn.max_pool(x, pool_size, strides, padding.upper())


def average_pool(x, pool_size, strides, padding):
    # "SAME" averages the real elements of each window only, as polynn.ops.average_pool says.
    x = _floating(x)
    if len(pool_size) == 3:
        return NotImplemented
    return tf.nn.avg_pool(x, pool_size, strides, padding.upper())
