"""Regularizer specs: penalties added to the training loss.

Keras 3's effective arithmetic: Keras on TensorFlow casts the factors l1 and l2 to the weights'
dtype through a float32 tensor, so even a float64 model is penalised with f32(l1) and f32(l2), the
factors rounded to float32 (exposed as `l1_factor` and `l2_factor`); polynn does the same on every
backend. (Keras on torch casts them exactly.)
"""

from __future__ import annotations

from typing import Any, ClassVar

from . import _registry, ops
from ._float32 import float32_constant
from ._spec import Component, resolve, spec
from ._typing import Tensor

__all__ = ["Regularizer", "L1", "L2", "L1L2", "get"]


@_registry.register_base
class Regularizer(Component):
    """`call(w)` is the penalty written once on polynn.ops: a scalar that every backend with an ops
    namespace computes (and differentiates) on its own tensors unless it has an override of its own."""

    kind: ClassVar[str] = "regularizer"


def _l1(l1: float, w: Tensor) -> Tensor:
    # abs has slope sign(w): 0 at w == 0, as the L1 docstring states.
    return l1 * ops.sum(ops.abs(w))


def _l2(l2: float, w: Tensor) -> Tensor:
    # square's gradient 2 * w, one product, where w * w would add two.
    return l2 * ops.sum(ops.square(w))


@spec
class L1(Regularizer):
    """penalty(w) = f32(l1) * sum(|w|). Gradient: f32(l1) * sign(w) (0 at w == 0)."""

    name: ClassVar[str] = "l1"
    l1: float = 0.01

    def validate(self) -> None:
        self._number("l1", low=0.0)

    @property
    def l1_factor(self) -> float:
        """f32(l1), the factor the penalty multiplies by."""
        return float32_constant(self.l1)

    def call(self, w: Tensor) -> Tensor:
        return _l1(self.l1_factor, w)


@spec
class L2(Regularizer):
    """penalty(w) = f32(l2) * sum(w**2). Gradient: 2 * f32(l2) * w."""

    name: ClassVar[str] = "l2"
    l2: float = 0.01

    def validate(self) -> None:
        self._number("l2", low=0.0)

    @property
    def l2_factor(self) -> float:
        """f32(l2), the factor the penalty multiplies by."""
        return float32_constant(self.l2)

    def call(self, w: Tensor) -> Tensor:
        return _l2(self.l2_factor, w)


@spec
class L1L2(Regularizer):
    """penalty(w) = f32(l1) * sum(|w|) + f32(l2) * sum(w**2). Gradient: f32(l1) * sign(w) + 2 * f32(l2) * w
    (0 at w == 0)."""

    name: ClassVar[str] = "l1_l2"
    aliases: ClassVar[tuple] = ("l1l2",)
    l1: float = 0.0
    l2: float = 0.0

    def validate(self) -> None:
        self._number("l1", low=0.0)
        self._number("l2", low=0.0)

    @property
    def l1_factor(self) -> float:
        """f32(l1), the factor of the L1 term."""
        return float32_constant(self.l1)

    @property
    def l2_factor(self) -> float:
        """f32(l2), the factor of the L2 term."""
        return float32_constant(self.l2)

    def call(self, w: Tensor) -> Tensor:
        return _l1(self.l1_factor, w) + _l2(self.l2_factor, w)


def get(identifier: Any) -> Regularizer | None:
    return None if identifier is None else resolve("regularizer", identifier)
