"""TensorFlow constraints: project(spec, w) -> the weight after the constraint, as the spec docstrings."""

from __future__ import annotations

import tensorflow as tf

from polynn.constraints import EPSILON


def _norms(spec, w):
    return tf.math.sqrt(tf.math.reduce_sum(w * w, axis=spec.axis, keepdims=True))


def _max_norm(spec, w):
    n = _norms(spec, w)
    return w * (tf.clip_by_value(n, 0.0, spec.max_value) / (EPSILON + n))


def _min_max_norm(spec, w):
    n = _norms(spec, w)
    desired = spec.rate * tf.clip_by_value(n, spec.min_value, spec.max_value) + (1 - spec.rate) * n
    return w * (desired / (EPSILON + n))


IMPLEMENTATIONS = {
    "max_norm": _max_norm,
    "non_neg": lambda spec, w: w * tf.cast(w >= 0, w.dtype),
    "unit_norm": lambda spec, w: w / (EPSILON + _norms(spec, w)),
    "min_max_norm": _min_max_norm,
}
