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
class LayerNormalization(Layer):
    """Over the last axis of x: m = mean(x), v = mean((x - m)**2),
    y = gamma * (x - m) / sqrt(v + epsilon) + beta.

    gamma (scale=True, drawn from gamma_initializer, ones) and beta (center=True, from
    beta_initializer, zeros) have the size of the last axis; without them the factor is 1 and the
    shift 0 (Keras 3's defaults, with epsilon 1e-3).
    """

    kind: ClassVar[str] = "layer"
    name: ClassVar[str] = "layer_normalization"
    epsilon: float = 1e-3
    center: bool = True
    scale: bool = True
    beta_initializer: object = "zeros"
    gamma_initializer: object = "ones"

    def __post_init__(self):
        object.__setattr__(self, "beta_initializer", initializers.get(self.beta_initializer))
        object.__setattr__(self, "gamma_initializer", initializers.get(self.gamma_initializer))
        if not isinstance(self.epsilon, (int, float)) or isinstance(self.epsilon, bool) or not self.epsilon > 0:
            raise InvalidArgumentError("epsilon", self.epsilon, "a number > 0", owner="LayerNormalization")
        for flag in ("center", "scale"):
            if isinstance(getattr(self, flag), np.bool_):  # NumPy's bools are bools
                object.__setattr__(self, flag, bool(getattr(self, flag)))
            if not isinstance(getattr(self, flag), bool):
                raise InvalidArgumentError(flag, getattr(self, flag), "True or False", owner="LayerNormalization")

    def weight_specs(self, input_shape):
        size = (input_shape[-1],)
        out = []
        if self.scale:
            out.append(WeightSpec("gamma", size, self.gamma_initializer, None, None))
        if self.center:
            out.append(WeightSpec("beta", size, self.beta_initializer, None, None))
        return out


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
