"""Metric specs: what each backend accumulates per batch, and how the core turns it into a number.

A metric's state is a vector of sums. Backends compute only the per-batch increment of that
vector; `result(state)` (`compute`) is evaluated once, here, in float64, so every backend reports the same.
Mean metrics (every metric here) accumulate [sum(w * v), sum(w)] over per-sample values v and
sample weights w, and report sum(w * v) / sum(w) (0 before any update). As in Keras, w is the
sample (and class) weights only for compile's `weighted_metrics`; for its `metrics`, w = 1.
A user function (CustomMetric) may give one value v for the whole batch (shape ()), as Keras 3 takes
it: the batch adds [v, 1], so the metric is the mean over batches; such a metric takes no sample
weights (Keras 3 refuses them too).

Each metric is written once on polynn.ops: a mean metric's `call(y_true, y_pred)` gives its
per-sample values, any other metric's `increment(y_true, y_pred, sample_weight)` its float64 state
increment for a batch; a backend runs them unless it registers an override.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from . import _custom, _reference, _registry, losses, ops
from ._spec import (
    Component,
    FunctionField,
    as_function,
    check_axis,
    check_bool,
    check_choice,
    check_int,
    check_positive_int,
    resolve,
    spec,
)
from ._typing import Tensor
from .errors import InvalidArgumentError, UnknownComponentError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = [
    "Metric", "MeanMetric", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
    "MeanSquaredError", "MeanAbsoluteError", "RootMeanSquaredError", "MeanAbsolutePercentageError",
    "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "BinaryCrossentropy", "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy", "Precision", "Recall", "AUC", "MAX_AUC_THRESHOLDS", "CustomMetric", "get",
    "resolve_accuracy",
    "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy", "top_k_categorical_accuracy",
    "sparse_top_k_categorical_accuracy", "mean_squared_error", "mse", "mean_absolute_error", "mae",
    "mean_absolute_percentage_error", "mape", "binary_crossentropy", "categorical_crossentropy",
    "sparse_categorical_crossentropy",
]


def indicator(condition: Tensor, like: Tensor) -> Tensor:
    """1 where condition holds, else 0, in like's float dtype."""
    return ops.cast(condition, ops.dtype(like))


def element_weights(sample_weight: Tensor | None, like: Tensor) -> Tensor:
    """The sample weights (one per sample) broadcast over like's elements; ones without weights."""
    if sample_weight is None:
        return ops.ones_like(like)
    trailing = (1,) * (len(ops.shape(like)) - 1)
    return ops.reshape(sample_weight, (-1, *trailing)) * ops.ones_like(like)


def in_top_k(labels: Tensor, y_pred: Tensor, k: int) -> Tensor:
    """1 where fewer than k classes score strictly above the labelled class (ties count for it)."""
    true_score = ops.take_along_axis(y_pred, ops.expand_dims(labels, -1), -1)
    return indicator(ops.less(ops.sum(ops.greater(y_pred, true_score), axis=-1), k), y_pred)


def mean_state(values: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """A mean metric's state increment for per-sample NumPy `values` and sample `weights` (a
    vector, or None: all 1): [sum(w * v), sum(w)] in float64, w broadcast over v's trailing axes."""
    if weights is None:
        return np.array([np.add.reduce(values, axis=None, dtype=np.float64), values.size], dtype=np.float64)
    w = np.broadcast_to(weights.reshape(weights.shape + (1,) * (values.ndim - 1)), values.shape)
    return np.array([np.add.reduce(w * values, axis=None, dtype=np.float64),
                     np.add.reduce(w, axis=None, dtype=np.float64)])


@_registry.register_base
@dataclasses.dataclass(frozen=True)
class Metric(Component, abc.ABC):
    """A backend implements a MeanMetric as per-sample values v (the core-side state is
    [sum(w * v), sum(w)]); any other metric as the increment of its whole state vector.

    `name=` (keyword only; held in the field `given_name`, saved under the config key "name")
    is the name the metric logs under (History, callbacks' monitor, evaluate's dict): a non-empty
    string without "/". A metric object without one logs under `auto_name` (its registry name
    unless the class says otherwise), numbered per compile() in order, metrics then
    weighted_metrics: auc, auc_1, ..., as Keras names a fresh process's metric objects (Keras
    counts over the whole process; polynn over the model, so a rerun logs the same keys).
    A string logs under itself. Then Keras's rule for clashes applies (see compile()).
    """

    kind: ClassVar[str] = "metric"
    # The name an unnamed metric object logs under; None: the registry name.
    auto_name: ClassVar[str | None] = None
    # keyword-only, so subclasses' fields keep their positions (Dense(4) is units=4); the
    # registry adds it to the repr as name='...'
    given_name: str | None = dataclasses.field(default=None, kw_only=True, repr=False)
    state_size: ClassVar[int] = 2
    sparse_labels: ClassVar[bool] = False

    # Used standalone, a metric is stateful as in Keras: update_state(), result(), reset_state().
    # The running state is kept beside the (immutable, compared, serialized) fields.

    def _running(self) -> np.ndarray:
        state = self.__dict__.get("_state")
        if state is None:
            state = np.zeros(self.state_size)
            object.__setattr__(self, "_state", state)
        return state

    def update_state(self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None) -> None:
        y, p = _reference.pair(self, y_true, y_pred)
        w = _reference.weights(sample_weight, p)
        impl = _reference.implementation("metric", self.name)
        if isinstance(self, MeanMetric):
            values = impl(self, y, p)
            if w is not None:
                _custom.per_sample_check(self, np.shape(values), p.shape, weighted=True)
            increment = mean_state(values, w)
        else:
            increment = np.asarray(impl(self, y, p, w), dtype=np.float64)
        self._running()[...] += increment

    def reset_state(self) -> None:
        self._running()[...] = 0.0

    def result(self, state: np.ndarray | None = None) -> float:
        """The metric's value for `state` (the running state when omitted)."""
        return self.compute(self._running() if state is None else state)

    @abc.abstractmethod
    def compute(self, state: np.ndarray) -> float:
        """The metric's value for a state vector."""


class MeanMetric(Metric):
    """Sample-weighted mean of a per-sample value v: state [sum(w * v), sum(w)]."""

    if TYPE_CHECKING:
        # For type checkers only: a class without `call` has no shared implementation.
        def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor: ...

    def compute(self, state: np.ndarray) -> float:
        total, count = float(state[0]), float(state[1])
        return total / count if count else 0.0


# The most thresholds an AUC takes (Keras sets none; its default is 200): a model file cannot ask for
# terabytes of state (docs/performance.md, "Keras files: caps and costs").
MAX_AUC_THRESHOLDS = 2**20


@spec
class Accuracy(MeanMetric):
    """v = mean(y_true == y_pred, axis=-1): exact equality, as keras.metrics.Accuracy.

    The string 'accuracy' (or 'acc') in compile() is not this class: it is resolved from the
    shapes, as Keras does (see resolve_accuracy).
    """

    name: ClassVar[str] = "exact_accuracy"
    aliases: ClassVar[tuple] = ()
    auto_name: ClassVar[str | None] = "accuracy"  # keras.metrics.Accuracy()'s

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return ops.mean(indicator(ops.equal(y_true, y_pred), y_pred), axis=-1)


@spec
class BinaryAccuracy(MeanMetric):
    """v = mean(y_true == (y_pred > threshold), axis=-1)."""

    name: ClassVar[str] = "binary_accuracy"
    threshold: float = 0.5

    def validate(self) -> None:
        self._number("threshold")

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        # The labels meet the predicted booleans as NumPy compares them: True == 1.0, False == 0.0.
        return ops.mean(indicator(ops.equal(y_true, ops.greater(y_pred, self.threshold)), y_pred), axis=-1)


@spec
class CategoricalAccuracy(MeanMetric):
    """v = (argmax(y_true, -1) == argmax(y_pred, -1)); ties go to the first index."""

    name: ClassVar[str] = "categorical_accuracy"

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return indicator(ops.equal(ops.argmax(y_true, axis=-1), ops.argmax(y_pred, axis=-1)), y_pred)


@spec
class SparseCategoricalAccuracy(MeanMetric):
    """v = (y_true == argmax(y_pred, -1)), y_true integer labels of shape (N,) or (N, 1)."""

    name: ClassVar[str] = "sparse_categorical_accuracy"
    sparse_labels: ClassVar[bool] = True

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return indicator(ops.equal(losses.sparse_labels(y_true, y_pred), ops.argmax(y_pred, axis=-1)), y_pred)


@spec
class MeanSquaredError(MeanMetric):
    """v = mean((y_pred - y_true)**2, axis=-1)."""

    name: ClassVar[str] = "mean_squared_error"
    aliases: ClassVar[tuple] = ("mse",)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return losses.MeanSquaredError.call(self, y_true, y_pred)  # type: ignore[arg-type]  # duck-typed


@spec
class MeanAbsoluteError(MeanMetric):
    """v = mean(|y_pred - y_true|, axis=-1)."""

    name: ClassVar[str] = "mean_absolute_error"
    aliases: ClassVar[tuple] = ("mae",)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return losses.MeanAbsoluteError.call(self, y_true, y_pred)  # type: ignore[arg-type]  # duck-typed


@spec
class RootMeanSquaredError(MeanMetric):
    """sqrt(sum(w * (y_pred - y_true)**2) / sum(w)) over every element: state [sum(w * e), sum(w)],
    e the element-wise squared error, w broadcast over the elements."""

    name: ClassVar[str] = "root_mean_squared_error"
    aliases: ClassVar[tuple] = ("rmse",)

    def compute(self, state: np.ndarray) -> float:
        total, count = float(state[0]), float(state[1])
        return float(np.sqrt(total / count)) if count else 0.0

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        d = y_pred - y_true
        return d * d


@spec
class MeanAbsolutePercentageError(MeanMetric):
    """v = 100 * mean(|(y_true - y_pred) / max(|y_true|, 1e-7)|, axis=-1)."""

    name: ClassVar[str] = "mean_absolute_percentage_error"
    aliases: ClassVar[tuple] = ("mape",)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return losses.MeanAbsolutePercentageError.call(self, y_true, y_pred)  # type: ignore[arg-type]  # duck-typed


@spec
class TopKCategoricalAccuracy(MeanMetric):
    """v = 1 when fewer than k classes score strictly higher than the true class (argmax of y_true),
    so ties with the true class count in its favour (as tf.math.in_top_k)."""

    name: ClassVar[str] = "top_k_categorical_accuracy"
    k: int = 5

    def validate(self) -> None:
        check_positive_int("TopKCategoricalAccuracy", "k", self.k)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return in_top_k(ops.argmax(y_true, axis=-1), y_pred, self.k)


@spec
class SparseTopKCategoricalAccuracy(MeanMetric):
    """As TopKCategoricalAccuracy, with integer labels y_true."""

    name: ClassVar[str] = "sparse_top_k_categorical_accuracy"
    sparse_labels: ClassVar[bool] = True
    k: int = 5

    def validate(self) -> None:
        check_positive_int("SparseTopKCategoricalAccuracy", "k", self.k)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return in_top_k(losses.sparse_labels(y_true, y_pred), y_pred, self.k)


@spec
class BinaryCrossentropy(MeanMetric):
    """v = the per-sample value of polynn.losses.BinaryCrossentropy with the same options."""

    name: ClassVar[str] = "binary_crossentropy"
    from_logits: bool = False
    label_smoothing: float = 0.0
    axis: int = -1

    def validate(self) -> None:
        check_bool("BinaryCrossentropy", "from_logits", self.from_logits)
        self._set("axis", check_axis("BinaryCrossentropy", self.axis))
        self._number("label_smoothing", low=0.0, high=1.0)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        # The loss's call reads only the options this metric carries too.
        return losses.BinaryCrossentropy.call(self, y_true, y_pred)  # type: ignore[arg-type]  # duck-typed


@spec
class CategoricalCrossentropy(MeanMetric):
    """v = the per-sample value of polynn.losses.CategoricalCrossentropy with the same options."""

    name: ClassVar[str] = "categorical_crossentropy"
    from_logits: bool = False
    label_smoothing: float = 0.0
    axis: int = -1

    def validate(self) -> None:
        check_bool("CategoricalCrossentropy", "from_logits", self.from_logits)
        self._set("axis", check_axis("CategoricalCrossentropy", self.axis))
        self._number("label_smoothing", low=0.0, high=1.0)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return losses.CategoricalCrossentropy.call(self, y_true, y_pred)  # type: ignore[arg-type]  # duck-typed


@spec
class SparseCategoricalCrossentropy(MeanMetric):
    """v = the per-sample value of polynn.losses.SparseCategoricalCrossentropy with the same options."""

    name: ClassVar[str] = "sparse_categorical_crossentropy"
    sparse_labels: ClassVar[bool] = True
    from_logits: bool = False
    axis: int = -1

    def validate(self) -> None:
        check_bool("SparseCategoricalCrossentropy", "from_logits", self.from_logits)
        self._set("axis", check_axis("SparseCategoricalCrossentropy", self.axis))

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return losses.SparseCategoricalCrossentropy.call(self, y_true, y_pred)  # type: ignore[arg-type]  # duck-typed


class _ConfusionMetric(Metric):
    """Counts over every element: a prediction is positive when y_pred > threshold, a label when
    y_true != 0; each element counts with its sample's weight. class_id keeps one column."""

    if TYPE_CHECKING:
        # For type checkers only: the fields every subclass declares.
        thresholds: float
        class_id: int | None

    def validate(self) -> None:
        owner = type(self).__name__
        self._number("thresholds", low=0.0, high=1.0)
        if self.class_id is not None:
            self._set("class_id", check_int(owner, "class_id", self.class_id, low=0,
                                            accepted="None or an integer >= 0 and <= 2**63 - 1"))

    def _confusion_inputs(self, y_true: Tensor, y_pred: Tensor,
                          sample_weight: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """(predicted positive, labelled positive, element weights) of the kept column(s)."""
        if self.class_id is not None:
            # A column kept as an axis of 1, through an op (indexing is not in the ops contract).
            y_true, y_pred = (ops.take(v, [self.class_id], axis=-1) for v in (y_true, y_pred))
        return (ops.greater(y_pred, self.thresholds), ops.not_equal(y_true, 0),
                element_weights(sample_weight, y_pred))

    @staticmethod
    def _counts(weights: Tensor, *masks: Tensor) -> Tensor:
        """[sum of the weights where each mask holds], summed in the weights' dtype, as float64."""
        return ops.cast(ops.stack([ops.sum(ops.where(mask, weights, 0.0)) for mask in masks]), "float64")


@spec
class Precision(_ConfusionMetric):
    """state [tp, fp]; precision = tp / (tp + fp), 0 when nothing is predicted positive."""

    name: ClassVar[str] = "precision"
    thresholds: float = 0.5
    class_id: int | None = None

    def compute(self, state: np.ndarray) -> float:
        tp, fp = float(state[0]), float(state[1])
        return tp / (tp + fp) if tp + fp else 0.0

    def increment(self, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None) -> Tensor:
        predicted, actual, weights = self._confusion_inputs(y_true, y_pred, sample_weight)
        return self._counts(weights, ops.logical_and(predicted, actual),
                            ops.logical_and(predicted, ops.logical_not(actual)))


@spec
class Recall(_ConfusionMetric):
    """state [tp, fn]; recall = tp / (tp + fn), 0 when there is no positive label."""

    name: ClassVar[str] = "recall"
    thresholds: float = 0.5
    class_id: int | None = None

    def compute(self, state: np.ndarray) -> float:
        tp, fn = float(state[0]), float(state[1])
        return tp / (tp + fn) if tp + fn else 0.0

    def increment(self, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None) -> Tensor:
        predicted, actual, weights = self._confusion_inputs(y_true, y_pred, sample_weight)
        return self._counts(weights, ops.logical_and(predicted, actual),
                            ops.logical_and(ops.logical_not(predicted), actual))


@spec
class AUC(Metric):
    """Area under the ROC or PR curve from confusion counts at T = num_thresholds thresholds:
    -1e-7, i / (T - 1) for i = 1 .. T-2, and 1 + 1e-7; at each, positive means y_pred > threshold
    (sigmoid(y_pred) when from_logits), over every element, weighted by the sample weight.
    state: [tp(T), fp(T), tn(T), fn(T)]. ROC: sum over i of (fpr_i - fpr_i+1) * (tpr_i + tpr_i+1) / 2
    ('interpolation'; 'minoring' / 'majoring' take the min / max of the two heights). PR with
    'interpolation': Davis & Goadrich's interpolation, as Keras 3; PR otherwise: Riemann sums of
    precision over recall. Divisions by zero give 0."""

    name: ClassVar[str] = "auc"
    num_thresholds: int = 200
    curve: str = "ROC"
    summation_method: str = "interpolation"
    from_logits: bool = False

    def validate(self) -> None:
        # Each batch compares every score with every threshold (a thresholds-by-batch array) and the
        # state holds 4 counts per threshold: capped, so a model file cannot ask for terabytes.
        check_int("AUC", "num_thresholds", self.num_thresholds, low=2, high=MAX_AUC_THRESHOLDS,
                  accepted=f"an integer from 2 to {MAX_AUC_THRESHOLDS} (2**20)")
        self._set("curve", str(self.curve).upper())
        check_choice("AUC", "curve", self.curve, ("ROC", "PR"))
        check_choice("AUC", "summation_method", self.summation_method, ("interpolation", "minoring", "majoring"))
        check_bool("AUC", "from_logits", self.from_logits)

    @property
    def state_size(self) -> int:  # type: ignore[override]  # the base's class variable, here from a field
        return 4 * self.num_thresholds

    def thresholds(self) -> np.ndarray:
        t = self.num_thresholds
        inner = [(i + 1) * 1.0 / (t - 1) for i in range(t - 2)]
        return np.array([0.0 - 1e-7, *inner, 1.0 + 1e-7])

    def increment(self, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None) -> Tensor:
        if self.from_logits:
            y_pred = ops.sigmoid(y_pred)
        # The thresholds rounded once from float64 to the scores' dtype, as on every backend.
        thresholds = ops.cast(ops.convert_to_tensor(self.thresholds()), ops.dtype(y_pred))
        scores = ops.reshape(y_pred, (-1,))
        actual = ops.reshape(ops.not_equal(y_true, 0), (-1,))
        weights = ops.reshape(element_weights(sample_weight, y_pred), (-1,))
        above = indicator(ops.greater(ops.expand_dims(scores, 0), ops.expand_dims(thresholds, -1)), scores)
        pos, neg = ops.where(actual, weights, 0.0), ops.where(actual, 0.0, weights)
        tp, fp = ops.matmul(above, pos), ops.matmul(above, neg)
        return ops.cast(ops.concatenate([tp, fp, ops.sum(neg) - fp, ops.sum(pos) - tp]), "float64")

    def compute(self, state: np.ndarray) -> float:
        t = self.num_thresholds
        tp, fp, tn, fn = (np.asarray(state[k * t:(k + 1) * t], dtype=np.float64) for k in range(4))

        def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.divide(a, b, out=np.zeros_like(a), where=b != 0)

        if self.curve == "PR" and self.summation_method == "interpolation":
            dtp = tp[:-1] - tp[1:]
            p = tp + fp
            dp = p[:-1] - p[1:]
            slope = ratio(dtp, np.maximum(dp, 0))
            intercept = tp[1:] - slope * p[1:]
            both = (p[:-1] > 0) & (p[1:] > 0)
            p_ratio = np.where(both, ratio(p[:-1], np.maximum(p[1:], 0)), 1.0)
            increments = ratio(slope * (dtp + intercept * np.log(p_ratio)), np.maximum(tp[1:] + fn[1:], 0))
            return float(np.sum(increments))
        recall = ratio(tp, tp + fn)
        if self.curve == "ROC":
            x, y = ratio(fp, fp + tn), recall
        else:
            x, y = recall, ratio(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return float(np.sum((x[:-1] - x[1:]) * heights))


@spec
class CustomMetric(MeanMetric):
    """v = function(y_true, y_pred): the sample-weighted mean of a user function's per-sample
    values, written with polynn.ops (or registered by name with polynn.register). A function giving
    one value per batch (shape ()) is averaged over batches, as Keras 3 does, and takes no weights."""

    name: ClassVar[str] = "custom_metric"
    enumerable: ClassVar[bool] = False
    function: Any = None  # a callable, or the name it was registered under

    def validate(self) -> None:
        FunctionField.validate(self)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return _custom.per_sample_values(self, y_true, y_pred)


def _function(cls: type[Metric]) -> Callable[..., Any]:
    """Keras's metric functions: f(y_true, y_pred, **options) -> per-sample values."""

    def call(metric: Metric, y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
        return _reference.metric_values(metric, y_true, y_pred)

    return as_function(cls, call)


binary_accuracy = _function(BinaryAccuracy)
categorical_accuracy = _function(CategoricalAccuracy)
sparse_categorical_accuracy = _function(SparseCategoricalAccuracy)
top_k_categorical_accuracy = _function(TopKCategoricalAccuracy)
sparse_top_k_categorical_accuracy = _function(SparseTopKCategoricalAccuracy)
mean_squared_error = mse = _function(MeanSquaredError)
mean_absolute_error = mae = _function(MeanAbsoluteError)
mean_absolute_percentage_error = mape = _function(MeanAbsolutePercentageError)
binary_crossentropy = _function(BinaryCrossentropy)
categorical_crossentropy = _function(CategoricalCrossentropy)
sparse_categorical_crossentropy = _function(SparseCategoricalCrossentropy)


def resolve_accuracy(y_true_shape: tuple, y_pred_shape: tuple) -> Metric:
    """Keras's rule for the string 'accuracy': binary for one output unit, sparse categorical for
    integer labels (lower rank than the output, or a last axis of 1 against several units),
    categorical otherwise."""
    if y_pred_shape[-1] == 1:
        return BinaryAccuracy()
    if len(y_true_shape) < len(y_pred_shape) or (y_true_shape[-1] == 1 and y_pred_shape[-1] > 1):
        return SparseCategoricalAccuracy()
    return CategoricalAccuracy()


def get(identifier: Any) -> Metric:
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        raise InvalidArgumentError(
            "metric", identifier, "'accuracy' only inside compile(metrics=[...]), where shapes resolve it"
        )
    try:
        return resolve("metric", identifier)
    except UnknownComponentError:
        # compile() also accepts 'accuracy', so a misspelling of it should be pointed back to it
        raise UnknownComponentError("metric", identifier, [*_registry.names("metric"), "accuracy"]) from None
