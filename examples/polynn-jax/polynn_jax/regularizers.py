"""JAX regularizers: penalty(spec, w) -> scalar; JAX differentiates it (|w| with slope 0 at 0, as the spec)."""

from __future__ import annotations

import jax.numpy as jnp

from . import special


def _l1(spec, w):
    return spec.l1 * jnp.sum(special.abs(w))


def _l2(spec, w):
    return spec.l2 * jnp.sum(w * w)


IMPLEMENTATIONS = {
    "l1": _l1,
    "l2": _l2,
    "l1_l2": lambda spec, w: _l1(spec, w) + _l2(spec, w),
}
