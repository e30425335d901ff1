"""JAX implementations of user functions (custom_activation, custom_loss, custom_metric).

The function runs on JAX arrays under polynn.ops.using(this backend's ops), inside the traced
step, so JAX differentiates it like the rest of the model.
"""

from __future__ import annotations

import contextlib

import jax.numpy as jnp

from polynn import ops as polynn_ops
from polynn._custom import check_values

from . import ops as jax_ops


@contextlib.contextmanager
def _running(like):
    with polynn_ops.using(jax_ops), jax_ops.floats(like.dtype):
        yield


def activation(spec, x):
    with _running(x):
        return jnp.asarray(spec.function(x)).astype(x.dtype)


def loss(spec, y, p):
    with _running(p):
        return _per_sample(spec, jnp.asarray(spec.function(y, p)).astype(p.dtype), p)


def metric(spec, y, p):
    with _running(p):
        return _per_sample(spec, jnp.asarray(spec.function(y, p)).astype(p.dtype), p)


def _per_sample(spec, values, p):
    check_values(spec, values.shape, p.shape)  # static shapes, also while tracing
    return values
