"""Components called directly on arrays (activations, losses, metrics), computed by the NumPy reference backend."""

from __future__ import annotations

import numpy as np

from .errors import UnsupportedComponentError


def _implementation(kind: str, name: str):
    from . import plugins

    impl = plugins.get_backend("numpy").implementation(kind, name)
    if impl is None:
        raise UnsupportedComponentError(kind, name, "numpy")
    return impl


def as_float(x, like: np.ndarray | None = None) -> np.ndarray:
    """A float array: the dtype of `like`, else x's own float dtype, else float32 (Keras's floatx)."""
    array = np.asarray(x)
    if like is not None:
        return array.astype(like.dtype, copy=False)
    return array if np.issubdtype(array.dtype, np.floating) else array.astype(np.float32)


def activation(spec, x) -> np.ndarray:
    forward, _ = _implementation("activation", spec.name)
    return forward(spec, as_float(x))


def loss_values(spec, y_true, y_pred) -> np.ndarray:
    value, _ = _implementation("loss", spec.name)
    p = as_float(y_pred)
    return value(spec, as_float(y_true, p), p)


def loss(spec, y_true, y_pred, sample_weight=None):
    from polynn_numpy.losses import reduce

    values = loss_values(spec, y_true, y_pred)
    if spec.reduction == "none":
        return values if sample_weight is None else values * as_float(sample_weight, values).reshape(
            (-1,) + (1,) * (values.ndim - 1))
    w = None if sample_weight is None else as_float(sample_weight, values).reshape(-1)
    reduced, _ = reduce(spec, values, w, values.dtype)
    return reduced


def metric_values(spec, y_true, y_pred) -> np.ndarray:
    """Per-sample values of a mean metric."""
    p = as_float(y_pred)
    return _implementation("metric", spec.name)(spec, as_float(y_true, p), p)


def metric_increment(spec, y_true, y_pred, sample_weight=None) -> np.ndarray:
    """The state increment of any metric for one batch."""
    from polynn_numpy.metrics import mean_state

    from .metrics import MeanMetric

    p = as_float(y_pred)
    y = as_float(y_true, p)
    w = None if sample_weight is None else as_float(sample_weight, p).reshape(-1)
    impl = _implementation("metric", spec.name)
    if isinstance(spec, MeanMetric):
        return mean_state(impl(spec, y, p), w)
    return np.asarray(impl(spec, y, p, w), dtype=np.float64)
