"""TensorFlow regularizers: penalty(spec, w) -> scalar; the tape differentiates it."""

from __future__ import annotations

import tensorflow as tf


def _l1(spec, w):
    return spec.l1 * tf.math.reduce_sum(tf.math.abs(w))


def _l2(spec, w):
    return spec.l2 * tf.math.reduce_sum(w * w)


IMPLEMENTATIONS = {
    "l1": _l1,
    "l2": _l2,
    "l1_l2": lambda spec, w: _l1(spec, w) + _l2(spec, w),
}
