"""Torch metrics: one measured override, and the mean state the runtime accumulates;
every other built-in metric is its spec's call() (per-sample values) or increment() (state
increment) on polynn.ops."""

from __future__ import annotations

import torch


def _binary_accuracy(spec, y, p):
    # The blog fit's metric, in direct torch calls (docs/performance.md, "Losses and metrics on torch").
    return torch.mean((y == (p > spec.threshold)).to(p.dtype), dim=-1)


IMPLEMENTATIONS = {
    "binary_accuracy": _binary_accuracy,
}


def mean_state(values, weights):
    """(sum(w * v), sum(w)), w broadcast over v's trailing axes, the sums in float64.

    Without weights sum(w) is the number of values, a Python int known without the device.
    """
    if weights is None:
        return torch.sum(values, dtype=torch.float64), values.numel()
    w = weights.reshape(weights.shape + (1,) * (values.dim() - 1)).expand(values.shape)
    return torch.sum(w * values, dtype=torch.float64), torch.sum(w, dtype=torch.float64)
