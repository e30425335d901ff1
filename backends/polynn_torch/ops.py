"""The torch backend's polynn.ops: torch on tensors, in NumPy's spelling, with the reference's gradients.

Every name in polynn.ops.OP_NAMES and EXTRA_OP_NAMES is here, with the value and gradient the
polynn.ops docstrings give: maximum and minimum send a tie's gradient to x, clip passes the gradient on
[x_min, x_max] ends included, abs and sign have slope 0 at 0, a reduced max or min shares its
gradient evenly between ties, and power's exponent gradient is 0 where the base is not positive.
Python numbers stay Python numbers where torch takes them, so they keep the tensor's dtype; arrays
and numbers made into tensors take the float dtype and device of the model running the user
function (`floats`).
"""

from __future__ import annotations

import contextvars
import math
import numbers

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (torch's spelling)

from polynn import ops as polynn_ops

from . import special

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "int32": torch.int32, "int64": torch.int64,
           "bool": torch.bool}
_floats = contextvars.ContextVar("polynn_torch_floats", default=(torch.float32, torch.device("cpu")))


class floats:  # noqa: N801
    """Make (dtype, device) those of the floats that user functions convert from Python or NumPy."""

    # A class, entered around every component call (see polynn.ops.using).
    __slots__ = ("value", "_token")

    def __init__(self, dtype, device):
        self.value = (dtype, device if isinstance(device, torch.device) else torch.device(device))

    def __enter__(self):
        self._token = _floats.set(self.value)

    def __exit__(self, *exc):
        _floats.reset(self._token)


def _is_number(x) -> bool:
    return isinstance(x, (numbers.Number, np.generic)) and not isinstance(x, np.ndarray)


def _tensor(x, like=None):
    """x as a tensor: floats in the model's dtype, on `like`'s device (else the model's)."""
    if isinstance(x, torch.Tensor):
        return x
    dtype, device = _floats.get()
    if isinstance(like, torch.Tensor):
        device = like.device
        if like.is_floating_point():
            dtype = like.dtype
    array = np.asarray(x)
    if array.ndim == 0 and array.dtype.kind in "biuf":
        # A fill on the device: a host-to-device copy would wait for the queued steps.
        kind = {"b": torch.bool, "f": dtype}.get(array.dtype.kind, torch.int64)
        return torch.full((), array.item(), dtype=kind, device=device)
    if device.type != "cpu" and array.nbytes <= _CONSTANT_BYTES:
        return _device_constant(array, device, dtype)
    if array.dtype.kind == "f":
        return torch.as_tensor(array, device=device).to(dtype)
    return torch.as_tensor(array, device=device)


# Small arrays a component makes every step (AUC's thresholds, a kit case's weights) are copied to an
# accelerator once, not at every step: a host-to-device copy would wait for the queued steps. Keyed
# by content, so an equal array finds its copy; treat what convert_to_tensor returns as read-only.
_CONSTANT_BYTES = 1 << 14
_device_constants: dict = {}


def _device_constant(array, device, dtype):
    key = (array.tobytes(), array.dtype.str, array.shape, device, dtype if array.dtype.kind == "f" else None)
    tensor = _device_constants.get(key)
    if tensor is None:
        if len(_device_constants) >= 256:
            _device_constants.clear()
        tensor = torch.as_tensor(array, device=device)
        tensor = tensor.to(dtype) if array.dtype.kind == "f" else tensor
        _device_constants[key] = tensor
    return tensor


def _pair(x, y):
    """The operands of a binary op: a number beside a tensor stays a number (it keeps the
    tensor's dtype); anything else becomes a tensor."""
    if not isinstance(x, torch.Tensor) and not (isinstance(y, torch.Tensor) and _is_number(x)):
        x = _tensor(x, like=y)
    if not isinstance(y, torch.Tensor) and not _is_number(y):
        y = _tensor(y, like=x)
    # NumPy scalars as Python numbers: torch would make an np.float32 a tensor, which where() refuses.
    return tuple(v.item() if isinstance(v, np.generic) else v for v in (x, y))


def _unary(function):
    def op(x):
        return function(_tensor(x))

    op.__name__ = function.__name__
    return op


abs = _unary(torch.abs)  # noqa: A001  (backward sign(x): 0 at 0)
square = _unary(torch.square)
sqrt = _unary(torch.sqrt)
exp = _unary(torch.exp)
log = _unary(torch.log)
log1p = _unary(torch.log1p)
tanh = _unary(torch.tanh)
sigmoid = _unary(torch.sigmoid)
softplus = _unary(special.softplus)
negative = _unary(torch.neg)
sign = _unary(torch.sign)  # backward 0


class _Power(torch.autograd.Function):
    """a ** b with the reference's gradients: b a**(b-1) for a, a**b log(a) for b where a > 0, else 0
    (torch's pow gives NaN for b at a negative base)."""

    @staticmethod
    def forward(ctx, a, b):
        out = torch.pow(a, b)
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, g):
        a, b, out = ctx.saved_tensors
        da = db = None
        if ctx.needs_input_grad[0]:
            da = (g * b * torch.pow(a, b - 1)).sum_to_size(a.shape)
        if ctx.needs_input_grad[1]:
            db = (g * out * torch.log(torch.where(a > 0, a, 1))).sum_to_size(b.shape)
        return da, db


def power(x, y):
    x, y = _pair(x, y)
    if isinstance(y, torch.Tensor) and y.requires_grad:
        if not isinstance(x, torch.Tensor):
            x = _tensor(x, like=y)
        return _Power.apply(x, y)
    return torch.pow(x, y)


def matmul(x, y):
    return torch.matmul(_tensor(x, like=y), _tensor(y, like=x))


def where(condition, x, y):
    x, y = _pair(x, y)
    if not isinstance(x, torch.Tensor) and not isinstance(y, torch.Tensor):
        x = _tensor(x)
    return torch.where(_tensor(condition, like=x).to(torch.bool), x, y)


def maximum(x, y):
    # Ties send the gradient to x, as the reference (torch.maximum would split it).
    x, y = _pair(x, y)
    return where(x >= y, x, y)


def minimum(x, y):
    x, y = _pair(x, y)
    return where(x <= y, x, y)


def _bound(bound, like):
    # The bounds take no gradient, as the reference's clip is a function of x alone.
    if isinstance(bound, torch.Tensor):
        return bound.detach().to(like.dtype)
    if bound is None or _is_number(bound):
        return bound
    return _tensor(bound, like=like)


def clip(x, x_min, x_max):
    x = _tensor(x)
    low, high = _bound(x_min, x), _bound(x_max, x)
    if isinstance(low, torch.Tensor) != isinstance(high, torch.Tensor) and low is not None and high is not None:
        # clamp takes two numbers or two tensors, not one of each.
        low, high = _tensor(low, like=x), _tensor(high, like=x)
    # clamp's backward passes the gradient where x_min <= x <= x_max, ends included, as the reference.
    return torch.clamp(x, low, high)


def _compare(function):
    def op(x, y):
        x, y = _pair(x, y)
        return function(x, y)

    op.__name__ = function.__name__
    return op


# The Python operators, so a number may stand on either side.
equal = _compare(lambda x, y: x == y)
not_equal = _compare(lambda x, y: x != y)
greater = _compare(lambda x, y: x > y)
greater_equal = _compare(lambda x, y: x >= y)
less = _compare(lambda x, y: x < y)
less_equal = _compare(lambda x, y: x <= y)


def logical_and(x, y):
    return torch.logical_and(_tensor(x, like=y), _tensor(y, like=x))


def logical_or(x, y):
    return torch.logical_or(_tensor(x, like=y), _tensor(y, like=x))


def logical_not(x):
    return torch.logical_not(_tensor(x))


def cast(x, dtype):
    return _tensor(x).to(_DTYPES[polynn_ops.check_dtype(dtype)])


def _dims(axis):
    """torch's dim for NumPy's axis: every axis for None."""
    if axis is None:
        return ()
    return tuple(axis) if isinstance(axis, (tuple, list)) else axis


def sum(x, axis=None, keepdims=False):  # noqa: A001
    return torch.sum(_tensor(x), dim=_dims(axis), keepdim=keepdims)


def _floating(x):
    x = _tensor(x)
    # NumPy's mean of integers or booleans is a float; here the model's float dtype.
    return x if x.is_floating_point() else x.to(_floats.get()[0])


def mean(x, axis=None, keepdims=False):
    return torch.mean(_floating(x), dim=_dims(axis), keepdim=keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001
    # amax's backward shares the gradient evenly between ties, as the reference.
    return torch.amax(_tensor(x), dim=_dims(axis), keepdim=keepdims)


def min(x, axis=None, keepdims=False):  # noqa: A001
    return torch.amin(_tensor(x), dim=_dims(axis), keepdim=keepdims)


def prod(x, axis=None, keepdims=False):
    x = _tensor(x)
    if axis is None:
        out = torch.prod(x)
        return out.reshape((1,) * x.dim()) if keepdims else out
    # torch.prod takes one dim at a time; its backward is the product of the others, zeros included.
    axes = sorted((a % x.dim() for a in (axis if isinstance(axis, (tuple, list)) else (axis,))), reverse=True)
    for a in axes:
        x = torch.prod(x, dim=a, keepdim=keepdims)
    return x


def argmax(x, axis=None):
    # The first maximal index, as NumPy.
    return torch.argmax(_tensor(x), dim=axis)


def reshape(x, shape):
    return torch.reshape(_tensor(x), tuple(shape) if isinstance(shape, (tuple, list)) else (shape,))


def expand_dims(x, axis):
    x = _tensor(x)
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    rank = x.dim() + len(axes)
    for a in sorted(a % rank for a in axes):
        x = torch.unsqueeze(x, a)
    return x


def squeeze(x, axis=None):
    x = _tensor(x)
    return torch.squeeze(x) if axis is None else torch.squeeze(x, dim=_dims(axis))


def _tensors(xs):
    xs = list(xs)
    like = next((x for x in xs if isinstance(x, torch.Tensor)), None)
    return [_tensor(x, like=like) for x in xs]


def concatenate(xs, axis=0):
    return torch.cat(_tensors(xs), dim=axis)


def stack(xs, axis=0):
    return torch.stack(_tensors(xs), dim=axis)


def one_hot(indices, num_classes):
    labels = _tensor(indices).to(torch.int64)
    classes = torch.arange(num_classes, device=labels.device)
    return (labels.unsqueeze(-1) == classes).to(_floats.get()[0])


def take_along_axis(x, indices, axis):
    x = _tensor(x)
    # take_along_dim's backward adds the gradient of repeated indices, as the reference.
    return torch.take_along_dim(x, _tensor(indices, like=x).to(torch.int64), dim=axis)


def cumsum(x, axis=None):
    x = _tensor(x)
    return torch.cumsum(x.reshape(-1), dim=0) if axis is None else torch.cumsum(x, dim=axis)


def sort(x, axis=-1):
    # Stable, so tied values take their gradients in the reference's order.
    return torch.sort(_tensor(x), dim=axis, stable=True).values


def stop_gradient(x):
    return _tensor(x).detach()


def shape(x):
    return tuple(_tensor(x).shape)


def zeros_like(x):
    return torch.zeros_like(_tensor(x))


def ones_like(x):
    return torch.ones_like(_tensor(x))


def convert_to_tensor(x, dtype=None):
    x = _tensor(x)
    return x if dtype is None else x.to(_DTYPES[polynn_ops.check_dtype(dtype)])


# ---- ops beyond OP_NAMES (polynn.ops.EXTRA_OP_NAMES), native here --------------------------

expm1 = _unary(torch.expm1)
erf = _unary(torch.erf)


def softmax(x, axis=-1):
    # exp(x - max) / sum(...); its backward is s * (dy - sum(dy * s)), as the reference.
    return torch.softmax(_tensor(x), dim=axis)


def log_softmax(x, axis=-1):
    return torch.log_softmax(_tensor(x), dim=axis)


def take(x, indices, axis=0):
    x = _tensor(x)
    idx = _tensor(indices, like=x).to(torch.int64)
    axis = axis % x.dim()
    # index_select's backward adds the gradient of repeated indices, as the reference.
    out = torch.index_select(x, axis, idx.reshape(-1))
    return out if idx.dim() == 1 else out.reshape(x.shape[:axis] + idx.shape + x.shape[axis + 1:])


def unstack(x, axis=0):
    # Views; unbind's backward stacks the slices' gradients back in one op (zeros for unused ones).
    return list(torch.unbind(_tensor(x), dim=axis))


# ---- the sliding-window ops: polynn.ops passes them normalized arguments (tuples, padding names or pairs) ----
# torch computes channels first: x (batch, *spatial, channels) is permuted to (batch, channels,
# *spatial) and back, views that torch's kernels read as channels_last memory.

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


def _channels_first(x):
    return x.permute(0, x.dim() - 1, *range(1, x.dim() - 1))


def _channels_last(x):
    return x.permute(0, *range(2, x.dim()), 1)


def _padded(x, pairs, value=0.0):
    """x (batch, channels, *spatial) padded by (before, after) pairs; F.pad lists the last dimension first."""
    if not any(before or after for before, after in pairs):
        return x
    return F.pad(x, [side for pair in reversed(pairs) for side in pair], value=value)


def conv(x, kernel, strides, padding, dilation_rate):
    x = _floating(x)
    kernel = _tensor(kernel, like=x)
    dims = x.dim() - 2
    pairs = polynn_ops.window_padding(padding, tuple(x.shape[1:-1]), tuple(kernel.shape[:dims]), strides,
                                      dilation_rate)
    # (out_channels, in_channels, *kernel_size); contiguous, as torch's float64 (slow_conv2d) backward
    # refuses the permuted view's gradient when out_channels is 1. A kernel is small to copy.
    weight = kernel.permute(dims + 1, dims, *range(dims)).contiguous()
    inputs = _channels_first(x)
    if all(before == after for before, after in pairs):
        # Symmetric padding: the convolution pads, without a padded copy.
        out = _CONV[dims](inputs, weight, stride=strides, padding=[before for before, _ in pairs],
                          dilation=dilation_rate)
    else:
        out = _CONV[dims](_padded(inputs, pairs), weight, stride=strides, dilation=dilation_rate)
    return _channels_last(out)


def max_pool(x, pool_size, strides, padding):
    x = _floating(x)
    pairs = polynn_ops.window_padding(padding, tuple(x.shape[1:-1]), pool_size, strides)
    # The padding takes no part (-inf); the gradient goes to each window's first largest element.
    inputs = _padded(_channels_first(x), pairs, -math.inf)
    return _channels_last(_MAX_POOL[len(pool_size)](inputs, pool_size, strides))


def average_pool(x, pool_size, strides, padding):
    x = _floating(x)
    pairs = polynn_ops.window_padding(padding, tuple(x.shape[1:-1]), pool_size, strides)
    inputs = _channels_first(x)
    if len(pool_size) == 1:
        # avg_pool1d has no divisor_override: a 2D pool over a height of 1.
        inputs, pool_size, strides, pairs = inputs.unsqueeze(2), (1, *pool_size), (1, *strides), ((0, 0), *pairs)
    pool = F.avg_pool2d if len(pool_size) == 2 else F.avg_pool3d
    if not any(before or after for before, after in pairs):
        out = pool(inputs, pool_size, strides)
    else:
        # Each window's sum over the real elements' count (the same sums over a mask of ones, a constant).
        sums = pool(_padded(inputs, pairs), pool_size, strides, divisor_override=1)
        mask = torch.ones((1, 1, *inputs.shape[2:]), dtype=x.dtype, device=x.device)
        out = sums / pool(_padded(mask, pairs), pool_size, strides, divisor_override=1)
    return _channels_last(out.squeeze(2) if x.dim() == 3 else out)
