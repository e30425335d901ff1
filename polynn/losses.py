"""Loss specs: the per-sample formula each backend computes, and how it is reduced over a batch.

Every loss first computes a per-sample value l_i from (y_true, y_pred), then reduces it with the
sample weights w_i (1 when none are given):

- 'sum_over_batch_size' (default) and 'mean': sum_i(w_i * l_i) / N, N the number of l values
- 'mean_with_sample_weight': sum_i(w_i * l_i) / sum_i(w_i)
- 'sum': sum_i(w_i * l_i)

A user function (CustomLoss) may give one value l for the whole batch instead (shape ()), as Keras 3
takes it: without sample weights l is the batch's loss under every reduction; with them l stands for
each sample (l_i = l above, N the batch size).

EPSILON = 1e-7 is Keras's backend epsilon; probabilities are clipped to [EPSILON, 1 - EPSILON].
Gradients are with respect to y_pred (y_true takes none); each docstring gives the rule at the
formula's kinks, where a clip passes the gradient on its closed interval (bounds included).

Each loss's `call(y_true, y_pred)` is its per-sample formula written once on polynn.ops, with the
gradient its docstring states at every kink and clip bound; every backend with an ops namespace
runs (and differentiates) it unless it registers an override. The helpers below (label smoothing,
sparse labels, hinge labels, normalisation, unit vectors) are shared by losses and metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np

from . import _custom, _reference, _registry, ops
from ._float32 import float32_constant
from ._spec import Component, FunctionField, as_function, check_axis, check_bool, check_choice, resolve, spec
from ._typing import Tensor
from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, DTypeLike

__all__ = [
    "Loss", "MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError",
    "BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "Huber", "LogCosh", "Hinge",
    "SquaredHinge", "CustomLoss", "CategoricalHinge", "KLDivergence", "Poisson", "CosineSimilarity", "get", "EPSILON",
    "REDUCTIONS",
    "mean_squared_error", "mse", "mean_absolute_error", "mae", "mean_absolute_percentage_error", "mape",
    "mean_squared_logarithmic_error", "msle", "binary_crossentropy", "categorical_crossentropy",
    "sparse_categorical_crossentropy", "huber", "log_cosh", "hinge", "squared_hinge", "categorical_hinge",
    "kl_divergence", "kld", "poisson", "cosine_similarity",
]

EPSILON = 1e-7

# log(2) as Keras 3's log_cosh subtracts it: computed in float32 (ops.log(2.0) on a float32 tensor).
LOG_2 = float32_constant(math.log(2.0))


def reduce(spec: Loss, values: np.ndarray, w: np.ndarray | None, dtype: DTypeLike,
           gradient: bool = False, divisor: float | None = None) -> tuple[Any, np.ndarray | None]:
    """The reduced loss of per-sample NumPy `values` with sample weights `w` (a vector, or None:
    all 1) as this module's docstring says, for `spec.reduction`, and, when `gradient`,
    d(reduced)/d(values) (else None): (reduced, gradient).

    One value for the batch (a user function's, shape ()) is the batch's loss without weights; with
    them it stands for every sample, as Keras 3 weights it: sum_i(w_i * l) over the reduction's divisor.
    `divisor`, when given, replaces the reduction's own: under data-parallel training a process
    divides its rows' sum by the global batch's divisor (polynn.distribution.loss_divisor)."""
    if values.ndim == 0 and w is not None:
        reduced, upstream = reduce(spec, np.broadcast_to(values, w.shape), w, dtype, gradient, divisor)
        return reduced, None if upstream is None else np.add.reduce(upstream, axis=None).astype(dtype)
    if w is None:
        weights = None
        total = np.add.reduce(values, axis=None)
        weight_sum = values.size
    else:
        weights = np.broadcast_to(w.reshape(w.shape + (1,) * (values.ndim - 1)), values.shape).astype(dtype)
        total = np.add.reduce(values * weights, axis=None)
        weight_sum = np.add.reduce(weights, axis=None)
    if divisor is None:
        if spec.reduction == "sum":
            divisor = 1
        elif spec.reduction == "mean_with_sample_weight":
            divisor = weight_sum
        else:
            divisor = values.size
    # Keras divides "no nan": an all-zero weight sum gives a zero loss, not a NaN.
    reduced = total / divisor if divisor else total * 0
    if not gradient:
        return reduced, None
    if not divisor:
        upstream = np.zeros(values.shape, dtype=dtype)
    elif weights is None:
        upstream = np.full(values.shape, 1 / divisor, dtype=dtype)
    else:
        upstream = weights / divisor
    return reduced, upstream


# The reductions training accepts; 'none' (per-sample values) only when calling a loss directly.
REDUCTIONS = ("sum_over_batch_size", "mean", "mean_with_sample_weight", "sum")


# ---- helpers shared by the losses and metrics, written on polynn.ops -----------------------


def smooth_binary_labels(y: Tensor, label_smoothing: float) -> Tensor:
    """y * (1 - label_smoothing) + 0.5 * label_smoothing (y itself when label_smoothing is 0)."""
    if label_smoothing:
        return y * (1 - label_smoothing) + 0.5 * label_smoothing
    return y


def smooth_categorical_labels(y: Tensor, label_smoothing: float, axis: int = -1) -> Tensor:
    """y * (1 - label_smoothing) + label_smoothing / K, K the number of classes along axis."""
    if label_smoothing:
        classes = cast(int, ops.shape(y)[axis])  # a static size: the model's output units
        return y * (1 - label_smoothing) + label_smoothing / classes
    return y


def sparse_labels(y_true: Tensor, y_pred: Tensor) -> Tensor:
    """Integer class labels (int64) shaped like y_pred without its class axis: y_true has that
    shape, or one more trailing axis of 1, which is dropped."""
    y_shape, p_shape = ops.shape(y_true), ops.shape(y_pred)
    if len(y_shape) == len(p_shape) and y_shape[-1] == 1:
        y_true = ops.squeeze(y_true, -1)
    return ops.cast(y_true, "int64")


def hinge_labels(y: Tensor) -> Tensor:
    """0/1 labels become -1/1 when every label of the batch is 0 or 1; others pass unchanged.
    A select, not a branch, so an engine never waits for the test's value."""
    other = ops.logical_not(ops.logical_or(ops.equal(y, 0), ops.equal(y, 1)))
    return ops.where(ops.equal(ops.sum(other), 0), 2 * y - 1, y)


def normalized(p: Tensor, axis: int = -1) -> Tensor:
    """p / sum(p, axis): predictions made a distribution along axis."""
    return p / ops.sum(p, axis=axis, keepdims=True)


def unit_vectors(x: Tensor, axis: int = -1) -> Tensor:
    """x / max(||x||, EPSILON), norms along axis. Where ||x|| <= EPSILON the divisor is the constant
    EPSILON (gradient 1 / EPSILON); elsewhere the norm is differentiated."""
    squares = ops.sum(x * x, axis=axis, keepdims=True)
    large = ops.greater(ops.sqrt(ops.stop_gradient(squares)), EPSILON)
    # The root only where it is used: sqrt's slope at 0 would send 0 * inf = NaN back.
    norm = ops.sqrt(ops.where(large, squares, 1.0))
    return x / ops.where(large, norm, EPSILON)


def log_probabilities(p: Tensor, from_logits: bool, axis: int = -1) -> Tensor:
    """log q of the class probabilities: log_softmax(p) for logits, else
    log(clip(p / sum(p), EPSILON, 1 - EPSILON)) (the gradient zero where the clip is active)."""
    if from_logits:
        return ops.log_softmax(p, axis=axis)
    return ops.log(ops.clip(normalized(p, axis), EPSILON, 1 - EPSILON))


def positive_part(x: Tensor) -> Tensor:
    """max(x, 0), with slope 0 at x == 0 (a select on x > 0), as the hinges' kinks take."""
    return ops.where(ops.greater(x, 0), x, 0.0)


@_registry.register_base
class Loss(Component):
    """Calling a loss, loss(y_true, y_pred, sample_weight=None), returns its reduced value (per-sample
    values for reduction 'none'), computed with the NumPy reference backend.

    `call(y_true, y_pred)` is the per-sample formula on polynn.ops (y_true in y_pred's float dtype);
    reduction and sample weights are the runtime's.
    """

    kind: ClassVar[str] = "loss"
    # True when y_true holds class indices rather than one value per output unit.
    sparse_labels: ClassVar[bool] = False

    if TYPE_CHECKING:
        # For type checkers only: every loss declares the field (polynn._registry.REQUIRED); a class
        # without `call` has no shared implementation (a backend must have its own).
        reduction: str

        def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor: ...

    def __call__(self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None) -> Any:
        values = _reference.loss_values(self, y_true, y_pred)
        # One value for the batch (a user function's) is weighted per sample of y_pred.
        w = _reference.weights(sample_weight, values if values.ndim else np.asarray(y_pred))
        if values.ndim == 0 and w is not None:
            values = values * np.ones(w.shape, values.dtype)
        if self.reduction == "none":
            return values if w is None else values * w.reshape((-1,) + (1,) * (values.ndim - 1))
        reduced, _ = reduce(self, values, w, values.dtype)
        return reduced

    def validate(self) -> None:
        owner = type(self).__name__
        if self.reduction is None:
            self._set("reduction", "none")
        check_choice(owner, "reduction", self.reduction, (*REDUCTIONS, "none"))
        for flag in ("from_logits",):
            if hasattr(self, flag):
                check_bool(owner, flag, getattr(self, flag))
        if hasattr(self, "label_smoothing"):
            self._number("label_smoothing", low=0.0, high=1.0)
        if hasattr(self, "axis"):
            # Its range is checked against the model's output at compile, or at fit (polynn._data).
            self._set("axis", check_axis(owner, self.axis))


@spec
class MeanSquaredError(Loss):
    """l = mean((y_pred - y_true)**2, axis=-1). Gradient: 2 (y_pred - y_true) / n, n units."""

    name: ClassVar[str] = "mean_squared_error"
    aliases: ClassVar[tuple] = ("mse",)
    reduction: str = "sum_over_batch_size"

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        d = y_pred - y_true
        return ops.mean(d * d, axis=-1)


@spec
class MeanAbsoluteError(Loss):
    """l = mean(|y_pred - y_true|, axis=-1). Gradient: sign(y_pred - y_true) / n, so 0 where
    y_pred == y_true."""

    name: ClassVar[str] = "mean_absolute_error"
    aliases: ClassVar[tuple] = ("mae",)
    reduction: str = "sum_over_batch_size"

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return ops.mean(ops.abs(y_pred - y_true), axis=-1)


@spec
class BinaryCrossentropy(Loss):
    """Labels y are smoothed first: y <- y * (1 - label_smoothing) + 0.5 * label_smoothing.

    from_logits=False: p = clip(y_pred, EPSILON, 1 - EPSILON) and
        l = mean(-(y * log(p) + (1 - y) * log(1 - p)), axis)
    (the gradient is zero where the clip is active, as in Keras on every backend but TF, and
    passes at y_pred == EPSILON and y_pred == 1 - EPSILON, the clip's interval being closed).
    from_logits=True, with x = y_pred:
        l = mean(max(x, 0) - x * y + log(1 + exp(-|x|)), axis)
    """

    name: ClassVar[str] = "binary_crossentropy"
    aliases: ClassVar[tuple] = ("bce",)
    from_logits: bool = False
    label_smoothing: float = 0.0
    axis: int = -1
    reduction: str = "sum_over_batch_size"

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        y = smooth_binary_labels(y_true, self.label_smoothing)
        if self.from_logits:
            # max(x, 0) and -|x| as selects on x >= 0: at x == 0 their slopes add up to
            # 1 - 1/2 - y = sigmoid(0) - y, the true derivative (relu and abs would give -y).
            positive = ops.greater_equal(y_pred, 0)
            elem = (ops.where(positive, y_pred, 0.0) - y_pred * y
                    + ops.log1p(ops.exp(ops.where(positive, -y_pred, y_pred))))
        else:
            q = ops.clip(y_pred, EPSILON, 1 - EPSILON)
            elem = -(y * ops.log(q) + (1 - y) * ops.log(1 - q))
        return ops.mean(elem, axis=self.axis)


@spec
class CategoricalCrossentropy(Loss):
    """One-hot labels y, smoothed first: y <- y * (1 - label_smoothing) + label_smoothing / K.

    from_logits=False: p = clip(y_pred / sum(y_pred, axis), EPSILON, 1 - EPSILON),
        l = -sum(y * log(p), axis); the gradient goes through the clip where
        EPSILON <= y_pred / sum(y_pred) <= 1 - EPSILON, the bounds included, and is 0 beyond.
    from_logits=True: l = -sum(y * log_softmax(y_pred, axis), axis),
        log_softmax(x) = x - max(x) - log(sum(exp(x - max(x)))).
    """

    name: ClassVar[str] = "categorical_crossentropy"
    aliases: ClassVar[tuple] = ("cce",)
    from_logits: bool = False
    label_smoothing: float = 0.0
    axis: int = -1
    reduction: str = "sum_over_batch_size"

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        y = smooth_categorical_labels(y_true, self.label_smoothing, self.axis)
        return -ops.sum(y * log_probabilities(y_pred, self.from_logits, self.axis), axis=self.axis)


@spec
class SparseCategoricalCrossentropy(Loss):
    """Integer labels y (shape (N,) or (N, 1)); l = -log(q[y]) where
    q = clip(y_pred / sum(y_pred, axis), EPSILON, 1 - EPSILON) (from_logits=False; the gradient
    goes through the clip on its closed interval, as categorical_crossentropy's), or
    log q = log_softmax(y_pred, axis) (from_logits=True).
    """

    name: ClassVar[str] = "sparse_categorical_crossentropy"
    aliases: ClassVar[tuple] = ("scce",)
    sparse_labels: ClassVar[bool] = True
    from_logits: bool = False
    axis: int = -1
    reduction: str = "sum_over_batch_size"

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        labels = ops.expand_dims(sparse_labels(y_true, y_pred), self.axis)
        logq = log_probabilities(y_pred, self.from_logits, self.axis)
        return -ops.squeeze(ops.take_along_axis(logq, labels, self.axis), axis=self.axis)


@spec
class MeanAbsolutePercentageError(Loss):
    """l = 100 * mean(|(y_true - y_pred) / max(|y_true|, EPSILON)|, axis=-1). Gradient:
    100 sign(y_pred - y_true) / (n max(|y_true|, EPSILON)), so 0 where y_pred == y_true."""

    name: ClassVar[str] = "mean_absolute_percentage_error"
    aliases: ClassVar[tuple] = ("mape",)
    reduction: str = "sum_over_batch_size"

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        # abs has slope 0 at 0: no gradient where y_pred == y_true.
        return 100 * ops.mean(ops.abs((y_true - y_pred) / ops.maximum(ops.abs(y_true), EPSILON)), axis=-1)


@spec
class MeanSquaredLogarithmicError(Loss):
    """l = mean((log(max(y_pred, EPSILON) + 1) - log(max(y_true, EPSILON) + 1))**2, axis=-1).
    Gradient: 2 d / (n (y_pred + 1)) where y_pred > EPSILON, d the difference of logs; 0 where
    y_pred <= EPSILON, at EPSILON too (unlike polynn.ops.maximum, which would pass it at the tie)."""

    name: ClassVar[str] = "mean_squared_logarithmic_error"
    aliases: ClassVar[tuple] = ("msle",)
    reduction: str = "sum_over_batch_size"

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        # A select on y_pred > EPSILON: no gradient at the bound itself (maximum would pass it).
        shifted = ops.where(ops.greater(y_pred, EPSILON), y_pred, EPSILON) + 1
        d = ops.log(shifted) - ops.log(ops.maximum(y_true, EPSILON) + 1)
        return ops.mean(d * d, axis=-1)


@spec
class Huber(Loss):
    """With d = y_pred - y_true: l = mean(0.5 d**2 where |d| <= delta, else delta |d| - 0.5 delta**2, axis=-1).
    Gradient: d / n where |d| <= delta, delta sign(d) / n beyond; the two agree at |d| == delta."""

    name: ClassVar[str] = "huber"
    aliases: ClassVar[tuple] = ("huber_loss",)
    delta: float = 1.0
    reduction: str = "sum_over_batch_size"

    def validate(self) -> None:
        super().validate()
        self._number("delta", low=0.0, low_open=True)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        # At |d| == delta the quadratic side is chosen: slope d (= delta sign(d)).
        d = y_pred - y_true
        a = ops.abs(d)
        return ops.mean(ops.where(ops.less_equal(a, self.delta), 0.5 * (d * d),
                                  self.delta * a - 0.5 * self.delta ** 2), axis=-1)


@spec
class LogCosh(Loss):
    """With d = y_pred - y_true: l = mean(d + softplus(-2 d) - LOG_2, axis=-1) (= log(cosh(d)), without overflow),
    LOG_2 = f32(log(2)): Keras 3 on TensorFlow computes log(2) in float32, even for float64 values.
    Gradient: tanh(d) / n."""

    name: ClassVar[str] = "log_cosh"
    aliases: ClassVar[tuple] = ("logcosh",)
    reduction: str = "sum_over_batch_size"

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        d = y_pred - y_true
        return ops.mean(d + ops.softplus(-2 * d) - LOG_2, axis=-1)


class _HingeLoss(Loss):
    """Labels are -1/1; when every label of the batch is 0 or 1 they are mapped to 2 y - 1 first."""


@spec
class Hinge(_HingeLoss):
    """l = mean(max(1 - y_true * y_pred, 0), axis=-1), labels as _HingeLoss. Gradient: -y_true / n
    where y_true * y_pred < 1, and 0 elsewhere, at the margin y_true * y_pred == 1 too."""

    name: ClassVar[str] = "hinge"
    reduction: str = "sum_over_batch_size"

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return ops.mean(positive_part(1 - hinge_labels(y_true) * y_pred), axis=-1)


@spec
class SquaredHinge(_HingeLoss):
    """l = mean(max(1 - y_true * y_pred, 0)**2, axis=-1), labels as _HingeLoss. Gradient:
    -2 y_true max(1 - y_true * y_pred, 0) / n, 0 at the margin."""

    name: ClassVar[str] = "squared_hinge"
    reduction: str = "sum_over_batch_size"

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        m = positive_part(1 - hinge_labels(y_true) * y_pred)
        return ops.mean(m * m, axis=-1)


@spec
class CategoricalHinge(Loss):
    """pos = sum(y_true * y_pred, -1), neg = max((1 - y_true) * y_pred, -1); l = max(neg - pos + 1, 0).
    Gradient where neg - pos + 1 > 0: -y_true, plus (1 - y_true) / k at each of the k classes where
    (1 - y_true) * y_pred is largest (ties share it evenly); 0 where neg - pos + 1 <= 0, at the
    margin too."""

    name: ClassVar[str] = "categorical_hinge"
    reduction: str = "sum_over_batch_size"

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        pos = ops.sum(y_true * y_pred, axis=-1)
        # max shares its gradient evenly among tied classes; slope 0 at the kink itself.
        neg = ops.max((1 - y_true) * y_pred, axis=-1)
        return positive_part(neg - pos + 1)


@spec
class KLDivergence(Loss):
    """With t = clip(y_true, EPSILON, 1) and q = clip(y_pred, EPSILON, 1): l = sum(t * log(t / q), axis=-1).
    Gradient: -t / q where EPSILON <= y_pred <= 1, the bounds included, and 0 beyond."""

    name: ClassVar[str] = "kl_divergence"
    aliases: ClassVar[tuple] = ("kld", "kullback_leibler_divergence")
    reduction: str = "sum_over_batch_size"

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        # clip passes the gradient on [EPSILON, 1], both ends included.
        t = ops.clip(y_true, EPSILON, 1)
        return ops.sum(t * ops.log(t / ops.clip(y_pred, EPSILON, 1)), axis=-1)


@spec
class Poisson(Loss):
    """l = mean(y_pred - y_true * log(y_pred + EPSILON), axis=-1). Gradient: (1 - y_true / (y_pred + EPSILON)) / n."""

    name: ClassVar[str] = "poisson"
    reduction: str = "sum_over_batch_size"

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return ops.mean(y_pred - y_true * ops.log(y_pred + EPSILON), axis=-1)


@spec
class CosineSimilarity(Loss):
    """l = -sum(t * q, axis) with t = y_true / max(||y_true||, EPSILON), q = y_pred / max(||y_pred||, EPSILON),
    the norms taken along `axis`. Gradient: -(t - q * sum(t * q)) / ||y_pred|| where ||y_pred|| > EPSILON;
    where ||y_pred|| <= EPSILON, at EPSILON too, the divisor is the constant EPSILON: -t / EPSILON."""

    name: ClassVar[str] = "cosine_similarity"
    axis: int = -1
    reduction: str = "sum_over_batch_size"

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return -ops.sum(unit_vectors(y_true, self.axis) * unit_vectors(y_pred, self.axis), axis=self.axis)


@spec
class CustomLoss(Loss):
    """l = function(y_true, y_pred): a user function of per-sample values, written with polynn.ops
    (or registered by name with polynn.register); each backend runs and differentiates it. A function
    giving one value per batch (shape ()) is the batch's loss, as Keras 3 takes it: with sample
    weights w_i the value stands for each sample (sum_i(w_i * l) over the reduction's divisor)."""

    name: ClassVar[str] = "custom_loss"
    enumerable: ClassVar[bool] = False
    function: Any = None  # a callable, or the name it was registered under
    reduction: str = "sum_over_batch_size"

    def validate(self) -> None:
        super().validate()
        FunctionField.validate(self)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return _custom.per_sample_values(self, y_true, y_pred)


def _function(cls: type[Loss]) -> Callable[..., Any]:
    """Keras's loss functions: f(y_true, y_pred, **options) -> per-sample values."""

    def call(loss: Loss, y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
        return _reference.loss_values(loss, y_true, y_pred)

    return as_function(cls, call)


mean_squared_error = mse = _function(MeanSquaredError)
mean_absolute_error = mae = _function(MeanAbsoluteError)
mean_absolute_percentage_error = mape = _function(MeanAbsolutePercentageError)
mean_squared_logarithmic_error = msle = _function(MeanSquaredLogarithmicError)
binary_crossentropy = _function(BinaryCrossentropy)
categorical_crossentropy = _function(CategoricalCrossentropy)
sparse_categorical_crossentropy = _function(SparseCategoricalCrossentropy)
huber = _function(Huber)
log_cosh = _function(LogCosh)
hinge = _function(Hinge)
squared_hinge = _function(SquaredHinge)
categorical_hinge = _function(CategoricalHinge)
kl_divergence = kld = _function(KLDivergence)
poisson = _function(Poisson)
cosine_similarity = _function(CosineSimilarity)


def get(identifier: Any) -> Loss:
    if identifier is None:
        raise InvalidArgumentError("loss", None, "a loss name, such as 'binary_crossentropy', or a Loss object")
    return resolve("loss", identifier)
