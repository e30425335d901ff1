"""Keras 3's float32-formed constants: a Python number as Keras on TensorFlow casts it to a tensor."""

from __future__ import annotations

import numpy as np


def float32_constant(value: float) -> float:
    """`value` rounded to float32 (and widened back to a Python float).

    Keras 3 on TensorFlow forms some constants with `ops.cast(python_float, dtype)` (Adam's betas,
    SGD's momentum, weight decay, regularizer factors...): TensorFlow converts the Python float to
    a float32 tensor first, so even a float64 model computes with the float32 value. polynn uses
    this value exactly where Keras does, on every backend; each spec docstring says where.
    """
    return float(np.float32(value))
