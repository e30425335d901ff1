"""JAX constraints: project(spec, w) -> the weight after the constraint, as the spec docstrings."""

from __future__ import annotations

import jax.numpy as jnp

from polynn.constraints import EPSILON


def _norms(spec, w):
    return jnp.sqrt(jnp.sum(w * w, axis=spec.axis, keepdims=True))


def _max_norm(spec, w):
    n = _norms(spec, w)
    return w * (jnp.clip(n, 0, spec.max_value) / (EPSILON + n))


def _min_max_norm(spec, w):
    n = _norms(spec, w)
    desired = spec.rate * jnp.clip(n, spec.min_value, spec.max_value) + (1 - spec.rate) * n
    return w * (desired / (EPSILON + n))


IMPLEMENTATIONS = {
    "max_norm": _max_norm,
    "non_neg": lambda spec, w: w * (w >= 0).astype(w.dtype),
    "unit_norm": lambda spec, w: w / (EPSILON + _norms(spec, w)),
    "min_max_norm": _min_max_norm,
}
