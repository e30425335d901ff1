"""Torch layers: forward(params, x, mask) -> y; autograd gives the gradients.

IMPLEMENTATIONS maps each layer name to a class built as cls(backend, spec); a layer with an activity
regularizer reports its penalty of y through `penalty(y)`, which joins the training loss. A layer
whose forward takes `workspace` gets one in training steps on the CPU (see workspace.py) and may
write its large gradients there.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from .workspace import MIN_BYTES


class _DenseProduct(torch.autograd.Function):
    """x @ kernel (+ bias) with autograd's own gradients of mm and addmm for row-major operands
    (dx = dz @ kernel.T, dkernel = x.T @ dz, dbias = dz summed over rows), the two products written
    into the layer's workspace instead of fresh tensors: the same calls, so the same numbers."""

    @staticmethod
    def forward(ctx, x, kernel, bias, workspace):
        ctx.save_for_backward(x, kernel)
        ctx.workspace = workspace
        return torch.mm(x, kernel) if bias is None else torch.addmm(bias, x, kernel)

    @staticmethod
    @once_differentiable
    def backward(ctx, dz):
        x, kernel = ctx.saved_tensors
        dx = dkernel = dbias = None
        if ctx.needs_input_grad[0]:
            dx = torch.mm(dz, kernel.t(), out=ctx.workspace.tensor("dx", x.shape, x))
        if ctx.needs_input_grad[1]:
            dkernel = torch.mm(x.t(), dz, out=ctx.workspace.tensor("dkernel", kernel.shape, kernel))
        if ctx.needs_input_grad[2]:
            dbias = dz.sum(0)
        return dx, dkernel, dbias, None


class Dense:
    """y = activation(x @ kernel + bias) on the last axis."""

    def __init__(self, backend, spec):
        self.spec = spec
        self.activation = backend.implementation("activation", spec.activation.name)
        self.activity = None
        if spec.activity_regularizer is not None:
            self.activity = backend.implementation("regularizer", spec.activity_regularizer.name)

    def forward(self, params, x, mask=None, workspace=None):
        kernel = params[0]
        if workspace is not None and x.dim() == 2 and max(x.nbytes, kernel.nbytes) >= MIN_BYTES:
            z = _DenseProduct.apply(x, kernel, params[1] if self.spec.use_bias else None, workspace)
        elif not self.spec.use_bias:
            z = torch.matmul(x, params[0])
        elif x.dim() == 2:
            # One fused call for the common case; the same sum as x @ kernel + bias.
            z = torch.addmm(params[1], x, params[0])
        else:
            z = torch.matmul(x, params[0]) + params[1]
        return self.activation(self.spec.activation, z)

    def penalty(self, y):
        return self.activity(self.spec.activity_regularizer, y) / y.shape[0]


class Dropout:
    """y = x * mask, mask the scaled keep mask the core drew; the identity in inference."""

    def __init__(self, backend, spec):
        self.spec = spec
        self.activity = None

    def forward(self, params, x, mask=None):
        return x if mask is None else x * mask


class Activation:
    """y = activation(x)."""

    def __init__(self, backend, spec):
        self.spec = spec
        self.activity = None
        self.activation = backend.implementation("activation", spec.activation.name)

    def forward(self, params, x, mask=None):
        return self.activation(self.spec.activation, x)


class Input:
    """The identity: an Input layer only declares the shape."""

    def __init__(self, backend, spec):
        self.spec = spec
        self.activity = None

    def forward(self, params, x, mask=None):
        return x


IMPLEMENTATIONS = {"dense": Dense, "dropout": Dropout, "activation": Activation, "input": Input}
