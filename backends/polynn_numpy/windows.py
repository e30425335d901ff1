"""Sliding windows of NumPy arrays, channels last: every window as a view (im2col), and its adjoint (col2im)."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


def pad(a, pads, fill):
    """a (batch, *spatial, channels) with (before, after) elements of `fill` on each spatial dimension."""
    if not any(before or after for before, after in pads):
        return a
    return np.pad(a, ((0, 0), *pads, (0, 0)), constant_values=fill)


def unpad(a, pads):
    """The elements of a that `pad` did not add."""
    return a[(slice(None), *(slice(before, n - after) for n, (before, after) in zip(a.shape[1:-1], pads)))]


def output_shape(spatial, window, strides, dilation):
    """The number of windows along each spatial dimension."""
    return tuple((n - (k - 1) * d - 1) // s + 1 for n, k, s, d in zip(spatial, window, strides, dilation))


def view(a, window, strides, dilation):
    """Every window of a (batch, *spatial, channels), a read-only view (batch, *out, *window,
    channels) with view[b, o, k, c] = a[b, o * s + k * d, c] per spatial dimension."""
    out = output_shape(a.shape[1:-1], window, strides, dilation)
    batch_step, *steps, channel_step = a.strides
    return as_strided(a, (a.shape[0], *out, *window, a.shape[-1]),
                      (batch_step, *(t * s for t, s in zip(steps, strides)),
                       *(t * d for t, d in zip(steps, dilation)), channel_step), writeable=False)


def offsets(window):
    """The window's offsets k in row-major order (the order of view's window axes flattened)."""
    return list(np.ndindex(*window))


def fold(part, shape, window, strides, dilation, dtype):
    """The adjoint of `view`: an array of `shape` (batch, *spatial, channels) where each window
    element's gradient is added back at the position view reads it from. part(j, k) gives the
    gradient of the elements at the j-th offset k of every window, (batch, *out, channels): one
    vectorized add per offset, so overlapping windows add up."""
    out = output_shape(shape[1:-1], window, strides, dilation)
    a = np.zeros(shape, dtype=dtype)
    for j, offset in enumerate(offsets(window)):
        at = tuple(slice(k * d, k * d + s * (o - 1) + 1, s) for k, d, s, o in zip(offset, dilation, strides, out))
        a[(slice(None), *at)] += part(j, offset)
    return a
