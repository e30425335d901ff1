"""Metric specs: what each backend accumulates per batch, and how the core turns it into a number.

A metric's state is a vector of sums. Backends compute only the per-batch increment of that
vector; `result(state)` is computed once, here, in float64, so every backend reports the same.
Mean metrics (every metric here) accumulate [sum(w * v), sum(w)] over per-sample values v and
sample weights w, and report sum(w * v) / sum(w) (0 before any update).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ._spec import Component, check_number, resolve, spec
from .errors import InvalidArgumentError, UnknownComponentError

__all__ = [
    "Metric", "MeanMetric", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
    "MeanSquaredError", "MeanAbsoluteError", "get", "resolve_accuracy",
]


class Metric(Component):
    kind: ClassVar[str] = "metric"
    state_size: ClassVar[int] = 2

    def result(self, state: np.ndarray) -> float:  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} does not define result()")


class MeanMetric(Metric):
    """Sample-weighted mean of a per-sample value v: state [sum(w * v), sum(w)]."""

    def result(self, state):
        total, count = float(state[0]), float(state[1])
        return total / count if count else 0.0


@spec
class Accuracy(MeanMetric):
    """v = mean(y_true == y_pred, axis=-1): exact equality, as keras.metrics.Accuracy.

    The string 'accuracy' (or 'acc') in compile() is not this class: it is resolved from the
    shapes, as Keras does (see resolve_accuracy).
    """

    name: ClassVar[str] = "exact_accuracy"
    aliases: ClassVar[tuple] = ()


@spec
class BinaryAccuracy(MeanMetric):
    """v = mean(y_true == (y_pred > threshold), axis=-1)."""

    name: ClassVar[str] = "binary_accuracy"
    threshold: float = 0.5

    def validate(self):
        check_number("BinaryAccuracy", "threshold", self.threshold)


@spec
class CategoricalAccuracy(MeanMetric):
    """v = (argmax(y_true, -1) == argmax(y_pred, -1)); ties go to the first index."""

    name: ClassVar[str] = "categorical_accuracy"


@spec
class SparseCategoricalAccuracy(MeanMetric):
    """v = (y_true == argmax(y_pred, -1)), y_true integer labels of shape (N,) or (N, 1)."""

    name: ClassVar[str] = "sparse_categorical_accuracy"


@spec
class MeanSquaredError(MeanMetric):
    """v = mean((y_pred - y_true)**2, axis=-1)."""

    name: ClassVar[str] = "mean_squared_error"
    aliases: ClassVar[tuple] = ("mse",)


@spec
class MeanAbsoluteError(MeanMetric):
    """v = mean(|y_pred - y_true|, axis=-1)."""

    name: ClassVar[str] = "mean_absolute_error"
    aliases: ClassVar[tuple] = ("mae",)


def resolve_accuracy(y_true_shape: tuple, y_pred_shape: tuple) -> Metric:
    """Keras's rule for the string 'accuracy': binary for one output unit, sparse categorical for
    integer labels (lower rank than the output, or a last axis of 1 against several units),
    categorical otherwise."""
    if y_pred_shape[-1] == 1:
        return BinaryAccuracy()
    if len(y_true_shape) < len(y_pred_shape) or (y_true_shape[-1] == 1 and y_pred_shape[-1] > 1):
        return SparseCategoricalAccuracy()
    return CategoricalAccuracy()


def get(identifier) -> Metric:
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        raise InvalidArgumentError(
            "metric", identifier, "'accuracy' only inside compile(metrics=[...]), where shapes resolve it"
        )
    try:
        return resolve("metric", identifier)
    except UnknownComponentError:
        # compile() also accepts 'accuracy', so a misspelling of it should be pointed back to it
        from . import _registry

        raise UnknownComponentError("metric", identifier, [*_registry.names("metric"), "accuracy"]) from None
