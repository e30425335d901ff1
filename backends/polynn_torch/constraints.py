"""Torch constraints: project(spec, w) -> the weight after the constraint, as the spec docstrings."""

from __future__ import annotations

import torch

from polynn.constraints import EPSILON


def _norms(spec, w):
    return torch.sqrt(torch.sum(w * w, dim=spec.axis, keepdim=True))


def _max_norm(spec, w):
    n = _norms(spec, w)
    return w * (torch.clamp(n, 0, spec.max_value) / (EPSILON + n))


def _min_max_norm(spec, w):
    n = _norms(spec, w)
    desired = spec.rate * torch.clamp(n, spec.min_value, spec.max_value) + (1 - spec.rate) * n
    return w * (desired / (EPSILON + n))


IMPLEMENTATIONS = {
    "max_norm": _max_norm,
    "non_neg": lambda spec, w: w * (w >= 0),
    "unit_norm": lambda spec, w: w / (EPSILON + _norms(spec, w)),
    "min_max_norm": _min_max_norm,
}
