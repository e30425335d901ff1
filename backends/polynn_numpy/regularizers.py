"""NumPy regularizers: penalty(spec, w) -> scalar and gradient(spec, w) -> array."""

from __future__ import annotations

import numpy as np


def _l1l2_penalty(spec, w):
    return spec.l1_factor * np.sum(np.abs(w)) + spec.l2_factor * np.sum(w * w)


def _l1l2_gradient(spec, w):
    return spec.l1_factor * np.sign(w) + 2 * spec.l2_factor * w


IMPLEMENTATIONS = {
    "l1": (lambda spec, w: spec.l1_factor * np.sum(np.abs(w)), lambda spec, w: spec.l1_factor * np.sign(w)),
    "l2": (lambda spec, w: spec.l2_factor * np.sum(w * w), lambda spec, w: 2 * spec.l2_factor * w),
    "l1_l2": (_l1l2_penalty, _l1l2_gradient),
}
