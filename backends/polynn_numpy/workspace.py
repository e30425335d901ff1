"""Arrays a training step writes its activations and gradients into, reused by the next step.

NumPy allocates every result anew. For a large model each step's arrays are megabytes, which the C
allocator hands back to the kernel when the step frees them, so the next step faults the same
memory in again, page by page (measured: docs/performance.md#numpy-workspace). Writing into arrays
kept from step to step computes the same numbers without that.
"""

from __future__ import annotations

import numpy as np


class Workspace:
    """Named arrays kept from one training step to the next: `array(name, shape, dtype)`.

    A step's arrays are dead when the next step starts: a layer's cache lives from its forward pass
    to its backward pass, and the runtime reduces the loss and metrics within the step. So only the
    training steps get a workspace; prediction keeps every batch's output and allocates afresh.
    Rows are the leading axis: a smaller last batch gets the first rows of the same array.
    """

    def __init__(self):
        self._arrays: dict[str, np.ndarray] = {}

    def array(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        if not shape:
            return np.empty(shape, dtype)
        held = self._arrays.get(name)
        if held is None or held.dtype != dtype or held.shape[1:] != shape[1:] or held.shape[0] < shape[0]:
            held = self._arrays[name] = np.empty(shape, dtype)
        return held[:shape[0]]
