"""Torch losses: one measured override; every other built-in loss is its spec's
call() on polynn.ops.

Reduction and sample weights are applied by the runtime.
"""

from __future__ import annotations

import torch

from polynn.losses import EPSILON, smooth_binary_labels


def _bce(spec, y, p):
    # The shared call's formula in direct torch calls: the blog fit's loss, run every step
    # (docs/performance.md, "Losses and metrics on torch").
    y = smooth_binary_labels(y, spec.label_smoothing)
    if spec.from_logits:
        # Selects on p >= 0, so the slope at 0 is sigmoid(0) - y, as the spec's.
        positive = p >= 0
        elem = torch.where(positive, p, 0.0) - p * y + torch.log1p(torch.exp(-torch.where(positive, p, -p)))
    else:
        q = torch.clamp(p, EPSILON, 1 - EPSILON)
        elem = -(y * torch.log(q) + (1 - y) * torch.log(1 - q))
    return torch.mean(elem, dim=spec.axis)


IMPLEMENTATIONS = {
    "binary_crossentropy": _bce,
}
