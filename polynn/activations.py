"""Activation specs: the element-wise (or per-row) functions a layer applies to its output."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from . import _reference, _registry, _spec, ops
from ._float32 import float32_constant
from ._spec import Component, FunctionField, as_function, check_bool, resolve, spec
from ._typing import Tensor

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = [
    "Activation", "Linear", "ReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "ELU", "SELU", "Softplus",
    "Softsign", "CustomActivation", "GELU", "SiLU", "LeakyReLU", "ReLU6", "Exponential", "HardSigmoid", "HardSiLU",
    "Mish",
    "get", "serialize", "linear", "relu", "sigmoid", "tanh", "softmax", "log_softmax", "elu", "selu", "softplus",
    "softsign", "gelu", "silu", "swish", "leaky_relu", "relu6", "exponential", "hard_sigmoid", "hard_silu",
    "hard_swish", "mish",
]


def check_axis(owner: str, axis: Any) -> None:
    # The range is checked against the layer's output once its shape is known (polynn.layers).
    _spec.check_axis(owner, axis)


@_registry.register_base
class Activation(Component):
    """Calling an activation on an array computes it with the NumPy reference backend.

    `call(x)` is the activation written once on polynn.ops: every backend with an ops namespace
    runs it on its own tensors (and differentiates it) unless it has an override of its own.
    """

    kind: ClassVar[str] = "activation"

    if TYPE_CHECKING:
        # For type checkers only: a class without `call` has no shared implementation (a backend
        # must have its own), so the base defines none.
        def call(self, x: Tensor) -> Tensor: ...

    def __call__(self, x: ArrayLike) -> np.ndarray:
        return _reference.activation(self, x)


@spec
class Linear(Activation):
    """linear(x) = x. Gradient: 1."""

    name: ClassVar[str] = "linear"

    def call(self, x: Tensor) -> Tensor:
        return x


@spec
class ReLU(Activation):
    """relu(x) = clip(x * (x > threshold), 0, max_value) - negative_slope * max(threshold - x, 0)
    (Keras 3; with the defaults, max(x, 0)). The clip applies only when max_value is set, and with
    threshold 0 the first term is max(x, 0). Gradient: 1 where threshold < x (and 0 <= x <= max_value
    when max_value is set, the cap included), plus negative_slope where x < threshold; at x ==
    threshold neither, so 0 (relu's slope at 0 is 0 with the defaults).
    """

    name: ClassVar[str] = "relu"
    negative_slope: float = 0.0
    max_value: float | None = None
    threshold: float = 0.0

    def validate(self) -> None:
        self._number("negative_slope")
        if self.max_value is not None:
            self._number("max_value", low=0.0)
        self._number("threshold")

    @property
    def plain(self) -> bool:
        """Whether this is max(x, 0) (the defaults): an engine's own relu computes it, slope 0 at 0."""
        return self.threshold == 0 and self.max_value is None and self.negative_slope == 0

    def call(self, x: Tensor) -> Tensor:
        # Selects rather than products and max: the gradient at each kink is the one above.
        y = ops.where(ops.greater(x, self.threshold), x, ops.zeros_like(x))
        if self.max_value is not None:
            y = ops.clip(y, 0.0, self.max_value)
        if self.negative_slope != 0:
            y = y - self.negative_slope * ops.where(ops.less(x, self.threshold), self.threshold - x, ops.zeros_like(x))
        return y


@spec
class Sigmoid(Activation):
    """sigmoid(x) = 1 / (1 + exp(-x)). Gradient: s * (1 - s) with s = sigmoid(x); 0.25 at 0, where
    overflow-free formulas switch branches."""

    name: ClassVar[str] = "sigmoid"

    def call(self, x: Tensor) -> Tensor:
        return ops.sigmoid(x)


@spec
class Tanh(Activation):
    """tanh(x) = (exp(x) - exp(-x)) / (exp(x) + exp(-x)). Gradient: 1 - tanh(x)**2."""

    name: ClassVar[str] = "tanh"

    def call(self, x: Tensor) -> Tensor:
        return ops.tanh(x)


@spec
class Softmax(Activation):
    """softmax(x)_i = exp(x_i - max(x)) / sum_j exp(x_j - max(x)) along `axis` (default -1).

    Gradient (vector-Jacobian product): dx = s * (dy - sum(dy * s, axis)).
    """

    name: ClassVar[str] = "softmax"
    axis: int = -1

    def validate(self) -> None:
        check_axis("Softmax", self.axis)

    def call(self, x: Tensor) -> Tensor:
        return ops.softmax(x, axis=self.axis)


@spec
class LogSoftmax(Activation):
    """log_softmax(x) = x - max(x) - log(sum(exp(x - max(x)))) along `axis`.
    Gradient: dx = dy - softmax(x) * sum(dy, axis)."""

    name: ClassVar[str] = "log_softmax"
    axis: int = -1

    def validate(self) -> None:
        check_axis("LogSoftmax", self.axis)

    def call(self, x: Tensor) -> Tensor:
        return ops.log_softmax(x, axis=self.axis)


@spec
class ELU(Activation):
    """elu(x) = x for x > 0, alpha * (exp(x) - 1) otherwise. Gradient: 1 for x > 0, alpha * exp(x)
    for x <= 0, so alpha at 0."""

    name: ClassVar[str] = "elu"
    alpha: float = 1.0

    def validate(self) -> None:
        self._number("alpha")

    def call(self, x: Tensor) -> Tensor:
        return elu_of(x, self.alpha)


def elu_of(x: Tensor, alpha: float) -> Tensor:
    """x for x > 0, alpha * (exp(x) - 1) otherwise; the gradient at 0 is alpha (the left side's)."""
    # expm1 sees min(x, 0) only, so the unused side never overflows; the tie sends its slope to x.
    return ops.where(ops.greater(x, 0), x, alpha * ops.expm1(ops.minimum(x, 0)))


def relu6_of(x: Tensor) -> Tensor:
    """min(max(x, 0), 6), with gradient 1 on the open interval (0, 6) and 0 at both corners."""
    return ops.where(ops.greater(x, 0), ops.where(ops.less(x, 6), x, ops.zeros_like(x) + 6), ops.zeros_like(x))


# GELU's constants as Keras 3 on TensorFlow computes with them (tf.nn.gelu casts each Python number
# to the input's dtype through a float32 tensor, so a float64 model uses the float32 values).
GELU_ERF_SCALE = float32_constant(0.7071067811865476)  # 1 / sqrt(2), float32-rounded
GELU_TANH_SCALE = math.sqrt(2 / math.pi)  # multiplied as the Python number: not rounded
GELU_TANH_COEFFICIENT = float32_constant(0.044715)


# Keras's SELU constants (Klambauer et al. 2017).
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


@spec
class SELU(Activation):
    """selu(x) = SELU_SCALE * elu(x, SELU_ALPHA). Gradient: SELU_SCALE times elu's, so
    SELU_SCALE * SELU_ALPHA at 0."""

    name: ClassVar[str] = "selu"

    def call(self, x: Tensor) -> Tensor:
        return SELU_SCALE * elu_of(x, SELU_ALPHA)


@spec
class Softplus(Activation):
    """softplus(x) = log(1 + exp(x)), computed as max(x, 0) + log1p(exp(-|x|)). Gradient: sigmoid(x),
    0.5 at 0 (where the formula's max and |x| have kinks whose slopes cancel)."""

    name: ClassVar[str] = "softplus"

    def call(self, x: Tensor) -> Tensor:
        return ops.softplus(x)


@spec
class Softsign(Activation):
    """softsign(x) = x / (1 + |x|). Gradient: 1 / (1 + |x|)**2."""

    name: ClassVar[str] = "softsign"

    def call(self, x: Tensor) -> Tensor:
        return x / (1 + ops.abs(x))


@spec
class GELU(Activation):
    """approximate=False (the default, as keras.activations.gelu and the string "gelu" in Keras 3):
    gelu(x) = 0.5 x (1 + erf(c x)), c = GELU_ERF_SCALE = f32(1 / sqrt(2));
    approximate=True (keras.ops.gelu's default): gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + k x**3))),
    k = GELU_TANH_COEFFICIENT = f32(0.044715). f32 is Keras's float32 rounding: TensorFlow's gelu
    casts those constants through float32 even for a float64 input (Keras on torch uses torch's
    gelu, whose constants are exact). Gradients: the derivatives of these. Model files written
    before the default changed hold approximate=true and keep the tanh form."""

    name: ClassVar[str] = "gelu"
    approximate: bool = False

    def validate(self) -> None:
        check_bool("GELU", "approximate", self.approximate)

    def call(self, x: Tensor) -> Tensor:
        if self.approximate:
            return 0.5 * x * (1 + ops.tanh(GELU_TANH_SCALE * (x + GELU_TANH_COEFFICIENT * (x * x * x))))
        return 0.5 * x * (1 + ops.erf(x * GELU_ERF_SCALE))


@spec
class SiLU(Activation):
    """silu(x) = swish(x) = x * sigmoid(x). Gradient: s + x s (1 - s), s = sigmoid(x)."""

    name: ClassVar[str] = "silu"
    aliases: ClassVar[tuple] = ("swish",)

    def call(self, x: Tensor) -> Tensor:
        return x * ops.sigmoid(x)


@spec
class LeakyReLU(Activation):
    """leaky_relu(x) = x for x >= 0, s * x otherwise, s = f32(negative_slope) (Keras 3 default slope 0.2;
    f32 is Keras's float32 rounding: TensorFlow's leaky_relu takes the slope as a float32 attribute,
    even for a float64 input). Gradient: 1 for x > 0, s for x < 0, and s at 0."""

    name: ClassVar[str] = "leaky_relu"
    negative_slope: float = 0.2

    def validate(self) -> None:
        self._number("negative_slope")

    @property
    def effective_slope(self) -> float:
        """f32(negative_slope): the slope applied below 0."""
        return float32_constant(self.negative_slope)

    def call(self, x: Tensor) -> Tensor:
        return ops.where(ops.greater(x, 0), x, self.effective_slope * x)


@spec
class ReLU6(Activation):
    """relu6(x) = min(max(x, 0), 6). Gradient: 1 for 0 < x < 6, else 0 (0 at 0 and at 6)."""

    name: ClassVar[str] = "relu6"

    def call(self, x: Tensor) -> Tensor:
        return relu6_of(x)


@spec
class Exponential(Activation):
    """exponential(x) = exp(x). Gradient: exp(x)."""

    name: ClassVar[str] = "exponential"

    def call(self, x: Tensor) -> Tensor:
        return ops.exp(x)


@spec
class HardSigmoid(Activation):
    """hard_sigmoid(x) = relu6(x + 3) / 6 = clip(x / 6 + 0.5, 0, 1) (Keras 3). Gradient: 1/6 for
    -3 < x < 3, else 0 (0 at -3 and at 3)."""

    name: ClassVar[str] = "hard_sigmoid"

    def call(self, x: Tensor) -> Tensor:
        return relu6_of(x + 3) / 6


@spec
class HardSiLU(Activation):
    """hard_silu(x) = hard_swish(x) = x * relu6(x + 3) / 6. Gradient: relu6(x + 3) / 6 + x / 6 for
    -3 < x < 3, else relu6(x + 3) / 6 (so 0 at -3 and 1 at 3)."""

    name: ClassVar[str] = "hard_silu"
    aliases: ClassVar[tuple] = ("hard_swish",)

    def call(self, x: Tensor) -> Tensor:
        return x * relu6_of(x + 3) / 6


@spec
class Mish(Activation):
    """mish(x) = x * tanh(softplus(x)). Gradient: t + x (1 - t**2) sigmoid(x), t = tanh(softplus(x))."""

    name: ClassVar[str] = "mish"

    def call(self, x: Tensor) -> Tensor:
        return x * ops.tanh(ops.softplus(x))


@spec
class CustomActivation(Activation):
    """y = function(x), a user function written with polynn.ops (or registered by name with
    polynn.register); each backend runs it on its own tensors and differentiates it."""

    name: ClassVar[str] = "custom_activation"
    enumerable: ClassVar[bool] = False
    function: Any = None  # a callable, or the name it was registered under

    def validate(self) -> None:
        FunctionField.validate(self)

    def call(self, x: Tensor) -> Tensor:
        # The function may return a Python number, an array or another float dtype: x's it is.
        return ops.cast(ops.convert_to_tensor(self.function(x)), ops.dtype(x))


def _function(cls: type[Activation]) -> Callable[..., Any]:
    return as_function(cls, lambda activation, x: activation(x))


linear = _function(Linear)
relu = _function(ReLU)
sigmoid = _function(Sigmoid)
tanh = _function(Tanh)
softmax = _function(Softmax)
log_softmax = _function(LogSoftmax)
elu = _function(ELU)
selu = _function(SELU)
softplus = _function(Softplus)
softsign = _function(Softsign)
gelu = _function(GELU)
silu = swish = _function(SiLU)
leaky_relu = _function(LeakyReLU)
relu6 = _function(ReLU6)
exponential = _function(Exponential)
hard_sigmoid = _function(HardSigmoid)
hard_silu = hard_swish = _function(HardSiLU)
mish = _function(Mish)


def get(identifier: Any) -> Activation:
    """Resolve a name (any case), a config dict or an instance; None means linear."""
    if identifier is None:
        return Linear()
    return resolve("activation", identifier)


def serialize(activation: Activation | None) -> dict[str, Any] | None:
    return _registry.serialize(activation)
