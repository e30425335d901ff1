"""NumPy implementations of user functions (custom_loss, custom_metric), via autodiff."""

from __future__ import annotations

import numpy as np

from polynn import ops as polynn_ops
from polynn.backend import check_values

from . import autodiff
from . import ops as numpy_ops


def _run(function, *arrays):
    with polynn_ops.using(numpy_ops), numpy_ops.float_dtype(arrays[-1].dtype):
        return np.asarray(autodiff.value_of(function(*arrays)))


def _gradient(function, arrays, seed, wrt):
    with polynn_ops.using(numpy_ops), numpy_ops.float_dtype(arrays[-1].dtype):
        return autodiff.vjp(lambda *ts: function(*(ts[k] if k == wrt else arrays[k] for k in range(len(arrays)))),
                            arrays, seed)[wrt]


def loss(spec, y, p):
    values = _run(spec.function, y, p)
    check_values(spec, values.shape, p.shape)
    return values.astype(p.dtype, copy=False)


def loss_vjp(spec, y, p, g):
    return _gradient(spec.function, (y, p), g, 1)


def metric(spec, y, p):
    values = _run(spec.function, y, p)
    check_values(spec, values.shape, p.shape)
    return values.astype(p.dtype, copy=False)
