"""Functions shared by the NumPy modules: sigmoid, softplus, softmax, erf, and lean mean/clip/sum."""

from __future__ import annotations

import math

import numpy as np

# Below this |x| the series is used, above it the continued fraction of erfc; both reach
# double precision there with the term counts below (checked against math.erf in the tests).
_SWITCH = 3.0
_SERIES_TERMS = 90
_FRACTION_DEPTH = 90


def erf(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    out = np.empty_like(x, dtype=np.result_type(x.dtype, np.float32))
    a = np.abs(x)
    small = a < _SWITCH
    if small.any():
        xs = x[small].astype(np.float64)
        # erf(x) = 2/sqrt(pi) x exp(-x^2) sum_n (2x^2)^n / (2n+1)!!: all terms positive, no cancellation.
        two_x2 = 2 * xs * xs
        term = np.ones_like(xs)
        total = np.ones_like(xs)
        for n in range(1, _SERIES_TERMS):
            term = term * two_x2 / (2 * n + 1)
            total = total + term
        out[small] = 2 / math.sqrt(math.pi) * xs * np.exp(-xs * xs) * total
    if (~small).any():
        xl = a[~small].astype(np.float64)
        # erfc(x) = exp(-x^2) / sqrt(pi) / (x + (1/2) / (x + 1 / (x + (3/2) / (x + ...)))).
        f = xl.copy()
        for k in range(_FRACTION_DEPTH, 0, -1):
            f = xl + (k / 2) / f
        erfc = np.exp(-xl * xl) / math.sqrt(math.pi) / f
        out[~small] = np.sign(x[~small]) * (1 - erfc)
    return out


def sigmoid(x):
    # exp of -|x| only, so no overflow: 1 / (1 + e^-x) for x >= 0 and e^x / (1 + e^x) below.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0, e) / (1.0 + e)


def softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def softplus(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


# np.mean, np.clip and np.sum go through Python wrappers that cost more than the arithmetic on a
# batch of 32; the ufunc calls below compute the same values (mean is sum / count, as np.mean).

def mean(x, axis):
    """np.mean(x, axis) for an integer axis."""
    return np.add.reduce(x, axis=axis) / x.shape[axis]


def clip(x, low, high):
    """np.clip(x, low, high)."""
    return np.minimum(np.maximum(x, low), high)


def total(x, dtype=None):
    """np.sum(x) over every element."""
    return np.add.reduce(x, axis=None, dtype=dtype)
