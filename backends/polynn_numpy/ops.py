"""The NumPy backend's polynn.ops: plain NumPy on arrays, and differentiable on autodiff Tensors."""

from __future__ import annotations

import contextvars

import numpy as np

from polynn import ops as polynn_ops

from . import autodiff as ad
from . import windows
from .autodiff import Tensor, traced, unary, value_of
from .special import erf as _erf
from .special import log_softmax as _log_softmax
from .special import sigmoid as _sigmoid
from .special import softmax as _softmax
from .special import softplus as _softplus

_TWO_OVER_SQRT_PI = 2 / np.sqrt(np.pi)
_DTYPES = {"float32": np.float32, "float64": np.float64, "int32": np.int32, "int64": np.int64, "bool": np.bool_}


def _elementwise(function, derivative):
    """An op f(x) with d f/dx = derivative(x, f(x))."""

    def op(x):
        if not traced(x):
            return function(x)
        a = x.value
        out = function(a)
        return unary(x, out, derivative(a, out))

    op.__name__ = function.__name__
    return op


abs = _elementwise(np.abs, lambda a, out: np.sign(a))  # noqa: A001
square = _elementwise(np.square, lambda a, out: 2 * a)
sqrt = _elementwise(np.sqrt, lambda a, out: 0.5 / out)
exp = _elementwise(np.exp, lambda a, out: out)
log = _elementwise(np.log, lambda a, out: 1 / a)
log1p = _elementwise(np.log1p, lambda a, out: 1 / (1 + a))
tanh = _elementwise(np.tanh, lambda a, out: 1 - out * out)
sigmoid = _elementwise(_sigmoid, lambda a, out: out * (1 - out))
softplus = _elementwise(_softplus, lambda a, out: _sigmoid(a))
sign = _elementwise(np.sign, lambda a, out: np.zeros_like(a))


def negative(x):
    return ad.multiply(x, -1.0) if traced(x) else np.negative(x)


power = ad.power
matmul = ad.matmul


def _select(condition, x, y):
    """where(condition, x, y) with gradients routed to the chosen side."""
    c = np.asarray(value_of(condition), dtype=bool)
    a, b = value_of(x), value_of(y)
    out = np.where(c, a, b)
    if not traced(x, y):
        return out
    return ad._binary(x, y, out, lambda g: np.where(c, g, 0), lambda g: np.where(c, 0, g))


def where(condition, x, y):
    return _select(condition, x, y)


def maximum(x, y):
    # Ties send the gradient to x, as TensorFlow; torch splits it (a tie is a measure-zero event).
    return _select(value_of(x) >= value_of(y), x, y)


def minimum(x, y):
    return _select(value_of(x) <= value_of(y), x, y)


def clip(x, x_min, x_max):
    if not traced(x):
        return np.clip(x, x_min, x_max)
    a = x.value
    inside = (a >= x_min) & (a <= x_max)
    return unary(x, np.clip(a, x_min, x_max), inside.astype(a.dtype))


def _compare(function):
    def op(x, y):
        return function(value_of(x), value_of(y))

    op.__name__ = function.__name__
    return op


# On the values: comparisons and logical ops take no gradient.
equal, not_equal, greater, greater_equal, less, less_equal, logical_and, logical_or = map(_compare, (
    np.equal, np.not_equal, np.greater, np.greater_equal, np.less, np.less_equal, np.logical_and, np.logical_or))


def logical_not(x):
    return np.logical_not(value_of(x))


def cast(x, dtype):
    target = _DTYPES[polynn_ops.check_dtype(dtype)]
    if not traced(x):
        return np.asarray(x).astype(target)
    out = x.value.astype(target)
    if not np.issubdtype(target, np.floating):
        return out
    return unary(x, out, lambda g: g.astype(x.dtype))


def _expand_reduced(g, shape, axis, keepdims):
    if axis is None:
        return np.broadcast_to(np.reshape(g, (1,) * len(shape)), shape)
    if not keepdims:
        g = np.expand_dims(g, axis)
    return np.broadcast_to(g, shape)


def sum(x, axis=None, keepdims=False):  # noqa: A001
    if not traced(x):
        return np.sum(x, axis=axis, keepdims=keepdims)
    a = x.value
    return unary(x, np.sum(a, axis=axis, keepdims=keepdims), lambda g: _expand_reduced(g, a.shape, axis, keepdims))


def mean(x, axis=None, keepdims=False):
    if not traced(x):
        return np.mean(x, axis=axis, keepdims=keepdims)
    a = x.value
    count = a.size if axis is None else int(np.prod([a.shape[k] for k in np.atleast_1d(axis)]))
    return unary(x, np.mean(a, axis=axis, keepdims=keepdims),
                 lambda g: _expand_reduced(g, a.shape, axis, keepdims) / count)


def _extreme(function):
    def op(x, axis=None, keepdims=False):
        if not traced(x):
            return function(x, axis=axis, keepdims=keepdims)
        a = x.value
        out = function(a, axis=axis, keepdims=keepdims)
        top = a == (out if keepdims or axis is None else np.expand_dims(out, axis))
        # Ties share the gradient evenly, as the engines' reduce-max gradients do.
        share = top / np.sum(top, axis=axis, keepdims=True)
        return unary(x, out, lambda g: _expand_reduced(g, a.shape, axis, keepdims) * share)

    op.__name__ = function.__name__
    return op


max = _extreme(np.max)  # noqa: A001
min = _extreme(np.min)  # noqa: A001


def prod(x, axis=None, keepdims=False):
    if not traced(x):
        return np.prod(x, axis=axis, keepdims=keepdims)
    a = x.value
    out = np.prod(a, axis=axis, keepdims=keepdims)
    full = out if keepdims or axis is None else np.expand_dims(out, axis)
    # d prod / d a_i = prod of the others; written as prod / a_i where a_i != 0.
    others = np.where(a != 0, full / np.where(a != 0, a, 1), 0.0)
    zeros = np.sum(a == 0, axis=axis, keepdims=True)
    if np.any(zeros == 1):
        single = np.prod(np.where(a == 0, 1, a), axis=axis, keepdims=True)
        others = np.where((a == 0) & (zeros == 1), single, others)
    return unary(x, out, lambda g: _expand_reduced(g, a.shape, axis, keepdims) * others)


def argmax(x, axis=None):
    return np.argmax(value_of(x), axis=axis)


def reshape(x, shape):
    if not traced(x):
        return np.reshape(x, shape)
    a = x.value
    return unary(x, np.reshape(a, shape), lambda g: np.reshape(g, a.shape))


def expand_dims(x, axis):
    if not traced(x):
        return np.expand_dims(x, axis)
    a = x.value
    return unary(x, np.expand_dims(a, axis), lambda g: np.reshape(g, a.shape))


def squeeze(x, axis=None):
    if not traced(x):
        return np.squeeze(x, axis=axis)
    a = x.value
    return unary(x, np.squeeze(a, axis=axis), lambda g: np.reshape(g, a.shape))


def _join(function, split):
    def op(xs, axis=0):
        xs = list(xs)
        if not traced(*xs):
            return function(xs, axis=axis)
        values = [value_of(x) for x in xs]
        return ad.node(function(values, axis=axis), xs, lambda g: split(g, values, axis))

    op.__name__ = function.__name__
    return op


def _split_concatenate(g, values, axis):
    if axis is None:  # the inputs were flattened first
        bounds = np.cumsum([np.size(v) for v in values])[:-1]
        return [piece.reshape(np.shape(v)) for piece, v in zip(np.split(g, bounds), values)]
    bounds = np.cumsum([v.shape[axis] for v in values])[:-1]
    return np.split(g, bounds, axis=axis)


def _split_stack(g, values, axis):
    return [np.take(g, k, axis=axis) for k in range(len(values))]


concatenate = _join(np.concatenate, _split_concatenate)
stack = _join(np.stack, _split_stack)


# The float dtype of the model running user code (float32, Keras's floatx, outside a model): ops
# that make floats from nothing, as one_hot, make them in it, as the other backends do.
_FLOAT = contextvars.ContextVar("polynn_numpy_float", default=np.float32)


class float_dtype:  # noqa: N801
    """Make `dtype` the float dtype of the floats ops make from nothing (one_hot)."""

    # A class, entered around every shared component call (see polynn.ops.using).
    __slots__ = ("dtype", "_token")

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype).type

    def __enter__(self):
        self._token = _FLOAT.set(self.dtype)

    def __exit__(self, *exc):
        _FLOAT.reset(self._token)


def one_hot(indices, num_classes):
    labels = np.asarray(value_of(indices)).astype(np.int64)
    return (labels[..., None] == np.arange(num_classes)).astype(_FLOAT.get())


def take_along_axis(x, indices, axis):
    idx = np.asarray(value_of(indices)).astype(np.int64)
    if not traced(x):
        return np.take_along_axis(x, idx, axis=axis)
    a = x.value

    value = np.take_along_axis(a, idx, axis=axis)
    # Indices may broadcast against x on the other axes: scatter over the result's full shape.
    full = np.broadcast_to(idx, value.shape)

    def vjp(g):
        out = np.zeros_like(a)
        grid = list(np.indices(full.shape, sparse=True))
        grid[axis % a.ndim] = full
        np.add.at(out, tuple(grid), np.broadcast_to(g, full.shape))
        return (out,)

    return ad.node(value, (x,), vjp)


def cumsum(x, axis=None):
    if not traced(x):
        return np.cumsum(x, axis=axis)
    a = x.value
    if axis is None:
        return unary(x, np.cumsum(a), lambda g: np.reshape(np.flip(np.cumsum(np.flip(g))), a.shape))
    return unary(x, np.cumsum(a, axis=axis), lambda g: np.flip(np.cumsum(np.flip(g, axis), axis=axis), axis))


def sort(x, axis=-1):
    if not traced(x):
        return np.sort(x, axis=axis)
    a = x.value
    order = np.argsort(a, axis=axis, kind="stable")

    def vjp(g):
        out = np.zeros_like(a)
        np.put_along_axis(out, order, g, axis=axis)
        return (out,)

    return ad.node(np.take_along_axis(a, order, axis=axis), (x,), vjp)


def stop_gradient(x):
    return np.array(value_of(x))


def shape(x):
    return tuple(np.shape(value_of(x)))


def zeros_like(x):
    return np.zeros_like(value_of(x))


def ones_like(x):
    return np.ones_like(value_of(x))


def convert_to_tensor(x, dtype=None):
    if isinstance(x, Tensor):
        return x if dtype is None else cast(x, dtype)
    array = np.asarray(x)
    return array if dtype is None else array.astype(_DTYPES[polynn_ops.check_dtype(dtype)])



# ---- ops beyond OP_NAMES (polynn.ops.EXTRA_OP_NAMES), native here --------------------------

expm1 = _elementwise(np.expm1, lambda a, out: out + 1)
erf = _elementwise(_erf, lambda a, out: _TWO_OVER_SQRT_PI * np.exp(-a * a))


def softmax(x, axis=-1):
    if not traced(x):
        return _softmax(x, axis)
    out = _softmax(x.value, axis)
    return unary(x, out, lambda g: out * (g - np.sum(g * out, axis=axis, keepdims=True)))


def log_softmax(x, axis=-1):
    if not traced(x):
        return _log_softmax(x, axis)
    out = _log_softmax(x.value, axis)
    return unary(x, out, lambda g: g - np.exp(out) * np.sum(g, axis=axis, keepdims=True))


def take(x, indices, axis=0):
    idx = np.asarray(value_of(indices)).astype(np.int64, copy=False)
    if not traced(x):
        return np.take(x, idx, axis=axis)
    a = x.value
    axis = axis % a.ndim

    def vjp(g):
        out = np.zeros_like(a)
        # Repeated indices add their gradients, as the reference's take_along_axis.
        np.add.at(np.moveaxis(out, axis, 0), idx.reshape(-1),
                  np.moveaxis(np.reshape(g, a.shape[:axis] + (idx.size,) + a.shape[axis + 1:]), axis, 0))
        return (out,)

    return ad.node(np.take(a, idx, axis=axis), (x,), vjp)


def unstack(x, axis=0):
    return ad.unstack(x, axis)


# ---- the sliding-window ops: polynn.ops passes them normalized arguments (tuples, padding names or pairs) ----


def _window_axes(dims):
    return tuple(range(1 + dims, 1 + 2 * dims))


def conv(x, kernel, strides, padding, dilation_rate):
    a, w = value_of(x), value_of(kernel)
    window, dims = w.shape[:-2], w.ndim - 2
    pads = polynn_ops.window_padding(padding, a.shape[1:-1], window, strides, dilation_rate)
    padded = windows.pad(a, pads, 0)
    # im2col: each output position's window in a row (a copy), then one matrix product with the kernel.
    patches = windows.view(padded, window, strides, dilation_rate)
    out_shape = patches.shape[:1 + dims]
    columns = patches.reshape(-1, w.size // w.shape[-1])
    matrix = w.reshape(-1, w.shape[-1])
    out = (columns @ matrix).reshape(*out_shape, w.shape[-1])
    if not traced(x, kernel):
        return out

    def vjp(g):
        rows = g.reshape(-1, w.shape[-1])
        # d kernel: each window times g, summed over positions; d x: each window's g @ kernel^T, folded back.
        d_kernel = (columns.T @ rows).reshape(w.shape) if traced(kernel) else None
        d_x = None
        if traced(x):
            d_patches = (rows @ matrix.T).reshape(patches.shape)
            at = (slice(None),) * (1 + dims)
            d_x = windows.fold(lambda j, offset: d_patches[at + offset], padded.shape, window, strides,
                               dilation_rate, d_patches.dtype)
            d_x = windows.unpad(d_x, pads)
        return d_x, d_kernel

    return ad.node(out, (x, kernel), vjp)


def max_pool(x, pool_size, strides, padding):
    a, dims = value_of(x), len(pool_size)
    ones = (1,) * dims
    pads = polynn_ops.window_padding(padding, a.shape[1:-1], pool_size, strides)
    padded = windows.pad(a, pads, -np.inf)
    patches = windows.view(padded, pool_size, strides, ones)
    out = np.max(patches, axis=_window_axes(dims))
    if not traced(x):
        return out
    # The first largest element's offset in each window (row-major): later offsets first, so the
    # earliest match is written last. One comparison per offset, not an argmax over a short axis.
    at, offsets = (slice(None),) * (1 + dims), windows.offsets(pool_size)
    first = np.full(out.shape, len(offsets), dtype=np.min_scalar_type(len(offsets)))
    for j in range(len(offsets) - 1, -1, -1):
        first = np.where(patches[at + offsets[j]] == out, first.dtype.type(j), first)

    def vjp(g):
        d_padded = windows.fold(lambda j, offset: np.where(first == j, g, 0), padded.shape, pool_size, strides,
                                ones, g.dtype)
        return (windows.unpad(d_padded, pads),)

    return ad.node(out, (x,), vjp)


def average_pool(x, pool_size, strides, padding):
    a, dims = value_of(x), len(pool_size)
    ones = (1,) * dims
    pads = polynn_ops.window_padding(padding, a.shape[1:-1], pool_size, strides)
    padded = windows.pad(a, pads, 0)
    patches = windows.view(padded, pool_size, strides, ones)
    # The real elements of each window: the same windows of a mask, 1 inside x and 0 in the padding.
    mask = windows.pad(np.ones((1, *a.shape[1:-1], 1), dtype=a.dtype), pads, 0)
    counts = np.sum(windows.view(mask, pool_size, strides, ones), axis=_window_axes(dims))
    out = np.sum(patches, axis=_window_axes(dims)) / counts
    if not traced(x):
        return out

    def vjp(g):
        share = g / counts
        d_padded = windows.fold(lambda j, offset: share, padded.shape, pool_size, strides, ones, share.dtype)
        return (windows.unpad(d_padded, pads),)

    return ad.node(out, (x,), vjp)
