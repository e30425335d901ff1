"""The component specs: what each backend computes, written once in the docstrings."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from polynn import initializers
from polynn.activations import Activation
from polynn.errors import InvalidArgumentError
from polynn.layers import Layer, WeightSpec


@dataclasses.dataclass(frozen=True)
class RMSNormalization(Layer):
    """Over `axis` of x (the batch axis is 0; -1, the default, is the last):
    y = x / sqrt(mean(x**2) + epsilon) * scale  (keras.layers.RMSNormalization, Zhang and Sennrich 2019).

    scale has the size of `axis` and starts at ones (Keras's). Gradients, with r = 1 / sqrt(mean(x**2)
    + epsilon), x_hat = x * r and g = dy * scale: dx = r * (g - x_hat * mean(g * x_hat)), the means
    over `axis`; dscale = the sum of dy * x_hat over every other axis.
    """

    kind: ClassVar[str] = "layer"
    name: ClassVar[str] = "rms_normalization"
    axis: int = -1
    epsilon: float = 1e-6

    def __post_init__(self):
        if isinstance(self.axis, np.integer):  # NumPy's integers are integers
            object.__setattr__(self, "axis", int(self.axis))
        if not isinstance(self.axis, int) or isinstance(self.axis, bool):
            raise InvalidArgumentError("axis", self.axis, "an integer", owner="RMSNormalization")
        if not isinstance(self.epsilon, (int, float)) or isinstance(self.epsilon, bool) or not self.epsilon > 0:
            raise InvalidArgumentError("epsilon", self.epsilon, "a number > 0", owner="RMSNormalization")
        super().__post_init__()

    def normalized_axis(self, rank):
        """The axis as a position in an input of `rank` axes, batch included; refused unless a feature axis."""
        if not (-rank < self.axis < 0 or 0 < self.axis < rank):
            raise InvalidArgumentError("axis", self.axis, f"a feature axis of the layer's input of rank {rank}: "
                                       f"1 to {rank - 1} or {-(rank - 1)} to -1", owner="RMSNormalization")
        return self.axis % rank

    def scale_shape(self, rank):
        """The shape scale broadcasts in over an input of `rank` axes."""
        shape = [1] * rank
        shape[self.normalized_axis(rank)] = -1
        return shape

    def weight_specs(self, input_shape):
        size = (input_shape[self.normalized_axis(len(input_shape) + 1) - 1],)
        return [WeightSpec("scale", size, initializers.get("ones"), None, None)]

    def output_shape(self, input_shape):
        self.normalized_axis(len(input_shape) + 1)
        return input_shape


@dataclasses.dataclass(frozen=True)
class Squareplus(Activation):
    """squareplus(x) = (x + sqrt(x**2 + b)) / 2 (Barron 2021, as keras.activations.squareplus).
    Gradient: (1 + x / sqrt(x**2 + b)) / 2."""

    kind: ClassVar[str] = "activation"
    name: ClassVar[str] = "squareplus"
    b: float = 4.0

    def __post_init__(self):
        if not isinstance(self.b, (int, float)) or isinstance(self.b, bool) or self.b < 0:
            raise InvalidArgumentError("b", self.b, "a number >= 0", owner="Squareplus")
