"""Components called directly on arrays (activations, losses, metrics), computed by the NumPy reference backend."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from . import plugins
from .errors import InvalidArgumentError, ShapeMismatchError, UnsupportedComponentError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


def implementation(kind: str, name: str) -> Any:
    """The NumPy backend's implementation of component kind/name, or UnsupportedComponentError."""
    impl = plugins.get_backend("numpy").implementation(kind, name)
    if impl is None:
        raise UnsupportedComponentError(kind, name, "numpy")
    return impl


def as_float(x: ArrayLike, like: np.ndarray | None = None) -> np.ndarray:
    """A float array: the dtype of `like`, else x's own float dtype, else float32 (Keras's floatx)."""
    array = np.asarray(x)
    if like is not None:
        return array.astype(like.dtype, copy=False)
    return array if np.issubdtype(array.dtype, np.floating) else array.astype(np.float32)


def pair(spec: Any, y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """y_pred as floats and y_true in its dtype, checked against each other as fit() checks them."""
    p = as_float(y_pred)
    y = as_float(y_true, p)
    if spec.name.startswith("custom_"):
        return y, p  # a user function decides what it accepts
    if getattr(spec, "sparse_labels", False):
        if p.ndim == 0 or y.shape not in (p.shape[:-1], (*p.shape[:-1], 1)):
            raise ShapeMismatchError(f"{spec.name}: y_true has shape {y.shape}; with y_pred of shape {p.shape} "
                                     f"it needs integer labels of shape {p.shape[:-1]} or {(*p.shape[:-1], 1)}")
        if y.size and (np.any(y < 0) or np.any(y >= p.shape[-1]) or np.any(y != np.floor(y))):
            raise InvalidArgumentError("y_true", f"labels in [{y.min()}, {y.max()}]",
                                       f"integer class labels in [0, {p.shape[-1] - 1}]", owner=spec.name)
        return y, p
    if y.shape != p.shape:
        if y.shape == p.shape[:-1] and p.shape[-1:] == (1,):
            return y[..., None], p
        raise ShapeMismatchError(f"{spec.name}: y_true has shape {y.shape} and y_pred {p.shape}; they must match")
    return y, p


def weights(sample_weight: ArrayLike | None, like: np.ndarray) -> np.ndarray | None:
    """sample_weight as a float vector of one weight per sample of `like`, or None."""
    if sample_weight is None:
        return None
    w = as_float(sample_weight, like).reshape(-1)
    if like.ndim == 0 or w.shape != (like.shape[0],):
        raise ShapeMismatchError(f"sample_weight has {w.size} values; expected one per sample, "
                                 f"{like.shape[0] if like.ndim else 1}")
    return w


def activation(spec: Any, x: ArrayLike) -> np.ndarray:
    forward, _ = implementation("activation", spec.name)
    return forward(spec, as_float(x))


def loss_values(spec: Any, y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """Per-sample values of a loss (the caller reduces them: polynn.losses.reduce)."""
    value, _ = implementation("loss", spec.name)
    y, p = pair(spec, y_true, y_pred)
    return value(spec, y, p)


def metric_values(spec: Any, y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """Per-sample values of a mean metric."""
    y, p = pair(spec, y_true, y_pred)
    return implementation("metric", spec.name)(spec, y, p)
