"""Components written once on polynn.ops, made NumPy implementations: values, and gradients by autodiff."""

from __future__ import annotations

import functools
import inspect

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


update_in_place.per_weight = True  # one weight at a time (polynn_numpy.optimizers.apply)


class SharedLayer:
    """A layer written once on polynn.ops (its spec's call), in the NumPy runtime's layer form:
    forward(params, x, mask, training=False) -> (y, cache) run on autodiff Tensors,
    backward(params, cache, dy) -> (dx, weight gradients) by autodiff, penalty(cache) for an
    activity regularizer, state_updates(params, x) for a layer with state (plain values). The
    layer's activation is this backend's implementation (its hand-written pair, or a shared one)."""

    # The batch size an activity penalty is divided by: the runtime sets the global batch's under
    # data-parallel training (its rows are a slice of it); None: the rows of the layer's output.
    penalty_rows: int | None = None

    def __init__(self, backend, spec):
        self.spec = spec
        self.activation = None
        activation = getattr(spec, "activation", None)
        if getattr(activation, "kind", None) == "activation":
            self.activation = _differentiable(activation, *backend.implementation("activation", activation.name))
        regularizer = getattr(spec, "activity_regularizer", None)
        self.activity = None if regularizer is None else backend.implementation("regularizer", regularizer.name)
        self.call_in_training = functools.partial(spec.call, training=True) \
            if "training" in inspect.signature(spec.call).parameters else spec.call

    def forward(self, params, x, mask=None, training=False):
        inputs = [autodiff.Tensor(x), *(autodiff.Tensor(p) for p in params)]
        call = self.call_in_training if training else self.spec.call
        with polynn_ops.using(numpy_ops), numpy_ops.float_dtype(x.dtype):
            out = call(inputs[1:], inputs[0], mask, self.activation)
        return np.asarray(autodiff.value_of(out), dtype=x.dtype), (inputs, out)

    def state_updates(self, params, x):
        with polynn_ops.using(numpy_ops), numpy_ops.float_dtype(x.dtype):
            values = self.spec.state_updates(params, x)
        return [np.asarray(autodiff.value_of(v), dtype=x.dtype) for v in values]

    def penalty(self, cache):
        y = autodiff.value_of(cache[1])
        return self.activity[0](self.spec.activity_regularizer, y) / (self.penalty_rows or y.shape[0])

    def backward(self, params, cache, dy, need_dx=True):
        inputs, out = cache
        if self.activity is not None:
            y = autodiff.value_of(out)
            dy = dy + self.activity[1](self.spec.activity_regularizer, y) / (self.penalty_rows or y.shape[0])
        if not isinstance(out, autodiff.Tensor):  # the output does not depend on x or the weights
            grads = [np.zeros_like(t.value) for t in inputs]
        else:
            grads = autodiff.gradient(out, inputs, dy)
        return (grads[0] if need_dx else None), grads[1:]


def _differentiable(spec, forward, backward):
    """The activation pair (forward, backward) as a function of autodiff Tensors."""

    def activation(z):
        if not autodiff.traced(z):
            return forward(spec, z)
        y = forward(spec, z.value)
        return autodiff.node(y, (z,), lambda g: (backward(spec, z.value, y, g),))

    return activation


def adapt(kind: str, spec_class):
    """The shared implementation in the NumPy runtime's form (see polynn_numpy's component modules):
    activation (forward, backward), loss (value, vjp), regularizer (penalty, gradient),
    constraint project, metric per-sample values or state increment, optimizer in-place update,
    layer the class SharedLayer."""
    if kind == "optimizer":
        return update_in_place
    if kind == "layer":
        return SharedLayer
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
