"""The normalization layers: BatchNormalization and LayerNormalization, in Keras 3's arithmetic."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from .. import ops
from .._spec import check_axis, check_bool, check_feature_axis, check_shape, component_field, spec
from .._typing import Tensor
from ..errors import InvalidArgumentError
from .core import Layer, WeightSpec, check_weight_size

__all__ = ["BatchNormalization", "LayerNormalization"]


def _axes(owner: str, axis: Any, rank: int) -> tuple[int, ...]:
    """The layer's axes as non-negative positions in an input of `rank` axes (batch first),
    sorted; each a feature axis, none twice."""
    given = axis if isinstance(axis, tuple) else (axis,)
    for a in given:
        check_feature_axis(owner, a, rank, "the layer's input")
    found = sorted(a % rank for a in given)
    if len(set(found)) != len(found):
        raise InvalidArgumentError("axis", axis, "distinct axes of the layer's input", owner=owner)
    return tuple(found)


def _broadcast(v: Tensor, axes: tuple[int, ...], rank: int) -> Tensor:
    """A weight of the axes' sizes, shaped to broadcast over an input of `rank` axes."""
    if axes == tuple(range(rank - len(axes), rank)):
        return v  # trailing axes: broadcasting lines it up as it is
    shape = [1] * rank
    for a, n in zip(axes, ops.shape(v)):
        shape[a] = -1 if n is None else n
    return ops.reshape(v, tuple(shape))


def _moments(x: Tensor, axes: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """mean and biased variance of x over `axes` (kept, of size 1): tf.nn.moments's arithmetic,
    the variance the mean of squared deviations from the mean as a constant."""
    mean = ops.mean(x, axis=axes, keepdims=True)
    variance = ops.mean(ops.square(x - ops.stop_gradient(mean)), axis=axes, keepdims=True)
    return mean, variance


def _normalize(x: Tensor, mean: Tensor, variance: Tensor, gamma: Tensor | None, beta: Tensor | None,
               epsilon: float) -> Tensor:
    """x * inv + (beta - mean * inv) with inv = gamma / sqrt(variance + epsilon): the form of
    tf.nn.batch_normalization and of Keras's layer_normalization."""
    inv = 1.0 / ops.sqrt(variance + epsilon)
    if gamma is not None:
        inv = inv * gamma
    shift = -mean * inv
    if beta is not None:
        shift = shift + beta
    return x * inv + shift


class _Normalization(Layer):
    """What both layers share: gamma and beta, their components, and their validation."""

    def _check_flags(self, owner: str) -> None:
        for flag in ("center", "scale"):
            self._set(flag, check_bool(owner, flag, getattr(self, flag)))
        self._number("epsilon", low=0.0, low_open=True)

    def _check_input_shape(self, owner: str) -> None:
        """Keras's input_shape keyword of a first layer, whose axes must hold the layer's axis."""
        if self.input_shape is not None:  # type: ignore[attr-defined]
            self._set("input_shape", check_shape(owner, "input_shape", self.input_shape))  # type: ignore[attr-defined]
            self.output_shape(self.input_shape)  # type: ignore[attr-defined]

    @property
    def declared_input_shape(self) -> tuple | None:
        return self.input_shape  # type: ignore[attr-defined]

    def _affine_specs(self, shape: tuple, gamma: bool, beta: bool) -> list[WeightSpec]:
        specs = []
        if gamma:
            specs.append(WeightSpec("gamma", shape, self.gamma_initializer, self.gamma_regularizer,  # type: ignore[attr-defined]
                                    self.gamma_constraint))  # type: ignore[attr-defined]
        if beta:
            specs.append(WeightSpec("beta", shape, self.beta_initializer, self.beta_regularizer,  # type: ignore[attr-defined]
                                    self.beta_constraint))  # type: ignore[attr-defined]
        return specs


@spec
class BatchNormalization(_Normalization):
    """Normalizes each feature (each position along `axis`) by statistics over the other axes.

    In training (fit's steps, trainable=True): mean and variance are the batch's, over every axis
    but `axis`, the variance biased (the mean of squared deviations); the moving statistics then
    move towards them, after the step:
        moving_mean     = moving_mean * momentum + mean * (1 - momentum)
        moving_variance = moving_variance * momentum + variance * (1 - momentum).
    In inference (evaluate, predict), and in training when the layer is frozen (trainable=False,
    as Keras 3), mean and variance are the moving statistics, which stay as they are. Then
        inv = gamma / sqrt(variance + epsilon),  y = x * inv + (beta - mean * inv)
    (tf.nn.batch_normalization's form), gamma 1 when scale=False and beta 0 when center=False.

    Weights, in Keras order: gamma (scale=True; gamma_initializer, ones), beta (center=True;
    beta_initializer, zeros), moving_mean (moving_mean_initializer, zeros) and moving_variance
    (moving_variance_initializer, ones), each of the size of `axis`; the moving statistics are
    non-trainable (in get_weights() and files, never reached by the optimizer). Keras's renorm
    and synchronized options are not provided. `axis` counts the batch axis as 0: -1 (the
    default) is the last; it must be a feature axis.
    """

    name: ClassVar[str] = "batch_normalization"
    axis: int = -1
    momentum: float = 0.99
    epsilon: float = 1e-3
    center: bool = True
    scale: bool = True
    beta_initializer: Any = component_field("initializer", "zeros", optional=False)
    gamma_initializer: Any = component_field("initializer", "ones", optional=False)
    moving_mean_initializer: Any = component_field("initializer", "zeros", optional=False)
    moving_variance_initializer: Any = component_field("initializer", "ones", optional=False)
    beta_regularizer: Any = component_field("regularizer")
    gamma_regularizer: Any = component_field("regularizer")
    beta_constraint: Any = component_field("constraint")
    gamma_constraint: Any = component_field("constraint")
    input_shape: tuple | None = None

    def validate(self) -> None:
        self._set("axis", check_axis("BatchNormalization", self.axis))
        self._number("momentum")
        self._check_flags("BatchNormalization")
        self._check_input_shape("BatchNormalization")

    def _axis(self, input_shape: tuple) -> int:
        return _axes("BatchNormalization", self.axis, len(input_shape) + 1)[0]

    def weight_specs(self, input_shape: tuple) -> list[WeightSpec]:
        shape = (input_shape[self._axis(input_shape) - 1],)
        check_weight_size("BatchNormalization", "gamma", shape)
        return [*self._affine_specs(shape, self.scale, self.center),
                WeightSpec("moving_mean", shape, self.moving_mean_initializer, None, None, trainable=False),
                WeightSpec("moving_variance", shape, self.moving_variance_initializer, None, None, trainable=False)]

    def output_shape(self, input_shape: tuple) -> tuple:
        self._axis(input_shape)
        return input_shape

    def _unpack(self, params: Sequence[Tensor]) -> tuple[Tensor | None, Tensor | None, Tensor, Tensor]:
        k = 0
        gamma = beta = None
        if self.scale:
            gamma, k = params[k], k + 1
        if self.center:
            beta, k = params[k], k + 1
        return gamma, beta, params[k], params[k + 1]

    def _batch_moments(self, x: Tensor) -> tuple[Tensor, Tensor]:
        rank = len(ops.shape(x))
        axis = _axes("BatchNormalization", self.axis, rank)[0]
        return _moments(x, tuple(a for a in range(rank) if a != axis))

    def call(self, params: Sequence[Tensor], x: Tensor, mask: Tensor | None = None,
             activation: Callable[[Tensor], Tensor] | None = None, training: bool = False) -> Tensor:
        gamma, beta, moving_mean, moving_variance = self._unpack(params)
        rank = len(ops.shape(x))
        axes = (_axes("BatchNormalization", self.axis, rank)[0],)
        if training and self.trainable:
            mean, variance = self._batch_moments(x)
        else:
            mean, variance = _broadcast(moving_mean, axes, rank), _broadcast(moving_variance, axes, rank)
        gamma = None if gamma is None else _broadcast(gamma, axes, rank)
        beta = None if beta is None else _broadcast(beta, axes, rank)
        return _normalize(x, mean, variance, gamma, beta, self.epsilon)

    def state_updates(self, params: Sequence[Tensor], x: Tensor) -> list[Tensor]:
        """The moving statistics after a training step whose input was x."""
        _, _, moving_mean, moving_variance = self._unpack(params)
        mean, variance = self._batch_moments(x)
        mean, variance = ops.reshape(mean, (-1,)), ops.reshape(variance, (-1,))
        return [moving_mean * self.momentum + mean * (1.0 - self.momentum),
                moving_variance * self.momentum + variance * (1.0 - self.momentum)]


@spec
class LayerNormalization(_Normalization):
    """Normalizes each sample over `axis` (an axis, or a tuple of axes; the batch axis is 0):
        mean, variance = the sample's mean and biased variance over `axis`,
        inv = gamma / sqrt(variance + epsilon),  y = x * inv + (beta - mean * inv)
    (Keras 3's layer_normalization), gamma 1 when scale=False and beta 0 when center=False. The
    same in training and inference.

    rms_scaling=True (deprecated by Keras 3: it divides by the standard deviation, not the root
    mean square) computes y = x * gamma / sqrt(variance + epsilon), with gamma and no beta.

    Weights, in Keras order: gamma (scale or rms_scaling; gamma_initializer, ones) and beta
    (center and not rms_scaling; beta_initializer, zeros), of the sizes of the axes.
    """

    name: ClassVar[str] = "layer_normalization"
    axis: Any = -1  # an int, or a tuple of ints
    epsilon: float = 1e-3
    center: bool = True
    scale: bool = True
    rms_scaling: bool = False
    beta_initializer: Any = component_field("initializer", "zeros", optional=False)
    gamma_initializer: Any = component_field("initializer", "ones", optional=False)
    beta_regularizer: Any = component_field("regularizer")
    gamma_regularizer: Any = component_field("regularizer")
    beta_constraint: Any = component_field("constraint")
    gamma_constraint: Any = component_field("constraint")
    input_shape: tuple | None = None

    def validate(self) -> None:
        axis = self.axis
        if isinstance(axis, (list, tuple)):
            if not axis:
                raise InvalidArgumentError("axis", axis, "an integer or a non-empty tuple of integers",
                                           owner="LayerNormalization")
            self._set("axis", tuple(check_axis("LayerNormalization", a) for a in axis))
        else:
            self._set("axis", check_axis("LayerNormalization", axis))
        self._check_flags("LayerNormalization")
        self._set("rms_scaling", check_bool("LayerNormalization", "rms_scaling", self.rms_scaling))
        self._check_input_shape("LayerNormalization")

    def _axes(self, rank: int) -> tuple[int, ...]:
        return _axes("LayerNormalization", self.axis, rank)

    def weight_specs(self, input_shape: tuple) -> list[WeightSpec]:
        shape = tuple(input_shape[a - 1] for a in self._axes(len(input_shape) + 1))
        check_weight_size("LayerNormalization", "gamma", shape)
        return self._affine_specs(shape, self.scale or self.rms_scaling, self.center and not self.rms_scaling)

    def output_shape(self, input_shape: tuple) -> tuple:
        self._axes(len(input_shape) + 1)
        return input_shape

    def call(self, params: Sequence[Tensor], x: Tensor, mask: Tensor | None = None,
             activation: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        rank = len(ops.shape(x))
        axes = self._axes(rank)
        params = [_broadcast(p, axes, rank) for p in params]
        mean, variance = _moments(x, axes)
        if self.rms_scaling:
            y = x * (1.0 / ops.sqrt(variance + self.epsilon))
            return y * params[0] if params else y
        k = 0
        gamma = beta = None
        if self.scale:
            gamma, k = params[k], k + 1
        if self.center:
            beta = params[k]
        return _normalize(x, mean, variance, gamma, beta, self.epsilon)
