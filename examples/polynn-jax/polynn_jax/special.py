"""Numerically careful functions, with the spec's derivatives at kinks, shared by the JAX modules."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def with_derivative(value, derivative):
    """value(x) as an element-wise function whose derivative is derivative(x, value(x)).

    Autodiff of a formula's pieces can pick another slope at a kink than the spec documents
    (jnp.maximum splits ties, jnp.abs has slope 1 at 0), so the slope is stated, not derived.
    """

    @jax.custom_jvp
    def f(x):
        return value(x)

    @f.defjvp
    def jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        y = value(x)
        return y, derivative(x, y) * t

    return f


def tanh(x):
    """tanh, correctly rounded in float32 too.

    XLA's float32 tanh is a fast approximation up to 4 ulp off (measured against NumPy on
    [-10, 10]), and near saturation 1 - tanh**2 (the gradient) turns one ulp into a relative
    error of 1e-4; computing it in float64 (always available: the runtime runs in x64 mode) and
    rounding once stays within the 1 ulp by which NumPy's own float32 tanh differs from exact.
    """
    if x.dtype == jnp.float32:
        return jnp.tanh(x.astype(jnp.float64)).astype(jnp.float32)
    return jnp.tanh(x)


def as_float(mask, like):
    """A boolean array as 0/1 in like's dtype."""
    return mask.astype(like.dtype)


def _sigmoid(x):
    # exp of -|x| only, so no overflow: 1 / (1 + e^-x) for x >= 0 and e^x / (1 + e^x) below.
    e = jnp.exp(-jnp.abs(x))
    return jnp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softplus(x):
    return jnp.maximum(x, 0) + jnp.log1p(jnp.exp(-jnp.abs(x)))


def sigmoid(x):
    return with_derivative(_sigmoid, lambda x, y: y * (1 - y))(x)


def softplus(x):
    return with_derivative(_softplus, lambda x, y: _sigmoid(x))(x)


def abs(x):  # noqa: A001 - the polynn.ops name
    """|x| with derivative sign(x), 0 at 0 (as the spec's L1 and MAE)."""
    return with_derivative(jnp.abs, lambda x, y: jnp.sign(x))(x)


def _shifted(x, axis):
    # The shift by the max cancels exactly in softmax, so it carries no gradient.
    return x - jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))


def softmax(x, axis=-1):
    e = jnp.exp(_shifted(x, axis))
    return e / jnp.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    shifted = _shifted(x, axis)
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=axis, keepdims=True))
