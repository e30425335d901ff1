"""NumPy layers: forward(params, x, mask) -> (y, cache) and backward(params, cache, dy, need_dx, out) -> (dx, grads).

IMPLEMENTATIONS maps each layer name to a class built as cls(backend, spec); `penalty` terms (activity
regularizers) report their value and add their gradient inside backward. `out`, when given, holds
arrays to write the weight gradients into (the runtime's flat buffer: no fresh allocation per step);
a layer may ignore it and return new arrays. Likewise `workspace` (training only, see workspace.py)
keeps the arrays a layer writes its outputs and input gradients into from step to step.
"""

from __future__ import annotations

import numpy as np

from .activations import writes_into


def _product(a, b, out=None):
    """a @ b, b a matrix. With an inner size of 1 the product is an outer product, computed as the
    broadcast multiply it is: OpenBLAS runs that case through its general kernel, several times slower
    (measured: docs/performance.md#numpy-products-with-an-inner-size-of-1). The values are the same;
    only the sign of a zero may differ (the kernel adds each product to +0)."""
    if a.shape[-1] == 1:
        return np.multiply(a, b, out=out)
    return np.matmul(a, b, out=out)


def _into(function):
    """`function` called with `out=` where it takes it, without where it allocates."""
    if writes_into(function):
        return function
    return lambda *args, out: function(*args)


def _activation(backend, name):
    """(forward, backward, forward_into, backward_into): the activation's pair, and the same taking `out=`."""
    forward, backward = backend.implementation("activation", name)
    return forward, backward, _into(forward), _into(backward)


class Dense:
    """y = activation(x @ kernel + bias) on the last axis; the gradients are the chain rule of that.

    With a workspace the same operations write into arrays kept from step to step."""

    # The batch size an activity penalty is divided by: the runtime sets the global batch's under
    # data-parallel training (its rows are a slice of it); None: the rows of the layer's output.
    penalty_rows: int | None = None

    def __init__(self, backend, spec):
        self.spec = spec
        self.act_forward, self.act_backward, self.act_forward_into, self.act_backward_into = _activation(
            backend, spec.activation.name)
        self.activity = None
        if spec.activity_regularizer is not None:
            self.activity = backend.implementation("regularizer", spec.activity_regularizer.name)

    def forward(self, params, x, mask=None, workspace=None):
        if workspace is not None:
            return self._forward_into(workspace, params, x)
        z = _product(x, params[0])
        if self.spec.use_bias:
            z += params[1]
        y = self.act_forward(self.spec.activation, z)
        return y, (x, z, y)

    def _forward_into(self, workspace, params, x):
        kernel = params[0]
        shape, dtype = x.shape[:-1] + kernel.shape[1:], np.result_type(x, kernel)
        z = _product(x, kernel, out=workspace.array("z", shape, dtype))
        if self.spec.use_bias:
            z += params[1]
        y = self.act_forward_into(self.spec.activation, z, out=workspace.array("y", shape, dtype))
        return y, (x, z, y)

    def penalty(self, cache):
        y = cache[2]
        return self.activity[0](self.spec.activity_regularizer, y) / (self.penalty_rows or y.shape[0])

    def backward(self, params, cache, dy, need_dx=True, out=None, workspace=None):
        x, z, y = cache
        if self.activity is not None:
            dy = dy + self.activity[1](self.spec.activity_regularizer, y) / (self.penalty_rows or y.shape[0])
        if workspace is None:
            dz = self.act_backward(self.spec.activation, z, y, dy)
        else:
            dz = self.act_backward_into(self.spec.activation, z, y, dy, out=workspace.array("dz", z.shape, z.dtype))
        x2 = x.reshape(-1, x.shape[-1])
        dz2 = dz.reshape(-1, dz.shape[-1])
        grads = [_product(x2.T, dz2, out=None if out is None else out[0])]
        if self.spec.use_bias:
            grads.append(np.add.reduce(dz2, axis=0, out=None if out is None else out[1]))
        if not need_dx:
            return None, grads
        if workspace is None:
            return _product(dz, params[0].T), grads
        return _product(dz, params[0].T, out=workspace.array("dx", x.shape, np.result_type(dz, params[0]))), grads


class Dropout:
    """y = x * mask, mask the scaled keep mask the core drew; the identity in inference."""

    def __init__(self, backend, spec):
        self.spec = spec
        self.activity = None

    def forward(self, params, x, mask=None, workspace=None):
        if mask is None:
            return x, None
        if workspace is None:
            return x * mask, mask
        return np.multiply(x, mask, out=workspace.array("y", x.shape, np.result_type(x, mask))), mask

    def backward(self, params, cache, dy, need_dx=True, workspace=None):
        if cache is None:
            return dy, []
        if workspace is None:
            return dy * cache, []
        return np.multiply(dy, cache, out=workspace.array("dx", dy.shape, np.result_type(dy, cache))), []


class Activation:
    """y = activation(x)."""

    def __init__(self, backend, spec):
        self.spec = spec
        self.activity = None
        self.act_forward, self.act_backward, self.act_forward_into, self.act_backward_into = _activation(
            backend, spec.activation.name)

    def forward(self, params, x, mask=None, workspace=None):
        if workspace is None:
            y = self.act_forward(self.spec.activation, x)
        else:
            y = self.act_forward_into(self.spec.activation, x, out=workspace.array("y", x.shape, x.dtype))
        return y, (x, y)

    def backward(self, params, cache, dy, need_dx=True, workspace=None):
        x, y = cache
        if workspace is None:
            return self.act_backward(self.spec.activation, x, y, dy), []
        return self.act_backward_into(self.spec.activation, x, y, dy, out=workspace.array("dx", x.shape, x.dtype)), []


class Input:
    """The identity: an Input layer only declares the shape."""

    def __init__(self, backend, spec):
        self.spec = spec
        self.activity = None

    def forward(self, params, x, mask=None):
        return x, None

    def backward(self, params, cache, dy, need_dx=True):
        return dy, []


IMPLEMENTATIONS = {"dense": Dense, "dropout": Dropout, "activation": Activation, "input": Input}
