"""Tensors a training step writes its large gradients into, reused by the next step.

torch's CPU allocator hands every tensor to the C allocator and back. A large model's backward pass
frees megabytes at the top of the heap each step; the C allocator returns them to the kernel, and
the next step faults the same memory in again, page by page (measured:
docs/performance.md#torch-gradient-workspace). Writing the same products into tensors kept from
step to step computes the same numbers without that. CUDA's caching allocator already keeps its
memory, so only the CPU needs this.
"""

from __future__ import annotations

import torch

# From this size of a layer's kernel or input on, its gradients are worth keeping: the workspace needs a
# Python autograd Function instead of addmm's C++ node, which smaller layers, whose gradients barely
# fault, do not earn back (measured: docs/performance.md#torch-workspace-threshold).
MIN_BYTES = 1 << 20


class Workspace:
    """Named tensors kept from one training step to the next: `tensor(name, shape, like)`.

    A step's gradients are dead when the next step starts: the runtime's update reads them within
    the step. Rows are the leading axis: a smaller last batch gets the first rows of the same tensor.
    """

    def __init__(self):
        self._tensors: dict[str, torch.Tensor] = {}

    def tensor(self, name: str, shape: torch.Size, like: torch.Tensor) -> torch.Tensor:
        """A tensor of `shape` with `like`'s dtype and device, its values undefined."""
        held = self._tensors.get(name)
        if (held is None or held.dtype != like.dtype or held.device != like.device
                or held.shape[1:] != shape[1:] or held.shape[0] < shape[0]):
            held = self._tensors[name] = torch.empty(shape, dtype=like.dtype, device=like.device)
        return held[:shape[0]]
