"""Torch layer overrides: forward(params, x, mask) -> y; autograd gives the gradients.

The other layers run their shared form (polynn.backend.SharedLayer). A layer whose forward takes
`workspace` gets one in training steps on the CPU (see workspace.py) and may write its large
gradients there.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from polynn.backend import SharedLayer

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


class Dense(SharedLayer):
    """The shared Dense (polynn.layers.Dense.call), with x @ kernel + bias of a 2-D input as one
    addmm, and its products writing their gradients into the layer's workspace in training steps on
    the CPU when the input or kernel is large."""

    def forward(self, params, x, mask=None, workspace=None):
        kernel = params[0]
        if workspace is not None and x.dim() == 2 and max(x.nbytes, kernel.nbytes) >= MIN_BYTES:
            z = _DenseProduct.apply(x, kernel, params[1] if self.spec.use_bias else None, workspace)
        elif x.dim() == 2 and self.spec.use_bias:
            # One fused call and autograd node for x @ kernel + bias (docs/performance.md, shared layers).
            z = torch.addmm(params[1], x, kernel)
        else:
            return super().forward(params, x, mask)
        return self.backend.run_ops(self.activation, z, z) if self.activation_in_ops else self.activation(z)


IMPLEMENTATIONS = {"dense": Dense}
