"""Torch regularizers: penalty(spec, w) -> scalar tensor; autograd gives the gradient."""

from __future__ import annotations

import torch


def _l1l2(spec, w):
    return spec.l1 * torch.sum(torch.abs(w)) + spec.l2 * torch.sum(w * w)


IMPLEMENTATIONS = {
    # abs backward is sign(w), 0 at w == 0, as the spec says.
    "l1": lambda spec, w: spec.l1 * torch.sum(torch.abs(w)),
    "l2": lambda spec, w: spec.l2 * torch.sum(w * w),
    "l1_l2": _l1l2,
}
