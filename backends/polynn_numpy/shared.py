"""Components written once on polynn.ops, made NumPy implementations: values, and gradients by autodiff."""

from __future__ import annotations

import numpy as np

from polynn import ops as polynn_ops
from polynn.metrics import MeanMetric

from . import autodiff
from . import ops as numpy_ops


def run(function, like, *args):
    """function(*args) on NumPy's ops, floats made in like's dtype, as a plain array."""
    with polynn_ops.using(numpy_ops), numpy_ops.float_dtype(like.dtype):
        return np.asarray(autodiff.value_of(function(*args)))


def gradient(function, like, args, seed, wrt):
    """d sum(seed * function(*args)) / d args[wrt]."""
    with polynn_ops.using(numpy_ops), numpy_ops.float_dtype(like.dtype):
        return autodiff.vjp(
            lambda *ts: function(*(ts[k] if k == wrt else args[k] for k in range(len(args)))), args, seed)[wrt]


def update_in_place(spec, w, g, slots, s, t0, t1):
    """The spec's `update` in polynn_numpy.optimizers' form: w and its slots changed in place (the
    scratch arrays t0 and t1 go unused)."""
    with polynn_ops.using(numpy_ops), numpy_ops.float_dtype(w.dtype):
        new_w, new_slots = spec.update(w, g, tuple(slots), s)
    np.copyto(w, new_w, casting="same_kind")
    for slot, value in zip(slots, new_slots):
        np.copyto(slot, value, casting="same_kind")


def adapt(kind: str, spec_class):
    """The shared implementation in the NumPy runtime's form (see polynn_numpy's component modules):
    activation (forward, backward), loss (value, vjp), regularizer (penalty, gradient),
    constraint project, metric per-sample values or state increment, optimizer in-place update;
    None for a layer (the NumPy runtime runs only layers with a hand-written backward:
    polynn_numpy.layers)."""
    if kind == "optimizer":
        return update_in_place
    if kind == "layer":
        return None
    if kind == "activation":
        return (lambda spec, x: run(spec.call, x, x).astype(x.dtype, copy=False),
                lambda spec, x, y, dy: gradient(spec.call, x, (x,), dy, 0))
    if kind == "loss":
        return (lambda spec, y, p: run(spec.call, p, y, p).astype(p.dtype, copy=False),
                lambda spec, y, p, g: gradient(spec.call, p, (y, p), g, 1))
    if kind == "regularizer":
        return (lambda spec, w: run(spec.call, w, w),
                lambda spec, w: gradient(spec.call, w, (w,), np.ones((), w.dtype), 0))
    if kind == "constraint":
        return lambda spec, w: run(spec.call, w, w).astype(w.dtype, copy=False)
    if issubclass(spec_class, MeanMetric):
        return lambda spec, y, p: run(spec.call, p, y, p).astype(p.dtype, copy=False)
    return lambda spec, y, p, w: run(spec.increment, p, y, p, w).astype(np.float64, copy=False)
