"""Activation specs: the element-wise (or per-row) functions a layer applies to its output."""

from __future__ import annotations

from typing import ClassVar

from ._spec import Component, resolve, spec
from . import _registry

__all__ = ["Activation", "Linear", "ReLU", "Sigmoid", "Tanh", "Softmax", "get", "serialize"]


class Activation(Component):
    kind: ClassVar[str] = "activation"


@spec
class Linear(Activation):
    """linear(x) = x. Gradient: 1."""

    name: ClassVar[str] = "linear"


@spec
class ReLU(Activation):
    """relu(x) = max(x, 0). Gradient: 1 where x > 0, else 0 (0 at x == 0, as every engine)."""

    name: ClassVar[str] = "relu"


@spec
class Sigmoid(Activation):
    """sigmoid(x) = 1 / (1 + exp(-x)). Gradient: s * (1 - s) with s = sigmoid(x)."""

    name: ClassVar[str] = "sigmoid"


@spec
class Tanh(Activation):
    """tanh(x) = (exp(x) - exp(-x)) / (exp(x) + exp(-x)). Gradient: 1 - tanh(x)**2."""

    name: ClassVar[str] = "tanh"


@spec
class Softmax(Activation):
    """softmax(x)_i = exp(x_i - max(x)) / sum_j exp(x_j - max(x)) along `axis` (default -1).

    Gradient (vector-Jacobian product): dx = s * (dy - sum(dy * s, axis)).
    """

    name: ClassVar[str] = "softmax"
    axis: int = -1

    def validate(self):
        if not isinstance(self.axis, int) or isinstance(self.axis, bool):
            from .errors import InvalidArgumentError

            raise InvalidArgumentError("axis", self.axis, "an integer axis", owner="Softmax")


def get(identifier) -> Activation:
    """Resolve a name (any case), a config dict or an instance; None means linear."""
    if identifier is None:
        return Linear()
    return resolve("activation", identifier)


def serialize(activation: Activation) -> dict:
    return _registry.serialize(activation)
