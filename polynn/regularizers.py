"""Regularizer specs: penalties added to the training loss."""

from __future__ import annotations

from typing import Any, ClassVar

from . import _registry, ops
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
    """penalty(w) = l1 * sum(|w|). Gradient: l1 * sign(w) (0 at w == 0)."""

    name: ClassVar[str] = "l1"
    l1: float = 0.01

    def validate(self) -> None:
        self._number("l1", low=0.0)

    def call(self, w: Tensor) -> Tensor:
        return _l1(self.l1, w)


@spec
class L2(Regularizer):
    """penalty(w) = l2 * sum(w**2). Gradient: 2 * l2 * w."""

    name: ClassVar[str] = "l2"
    l2: float = 0.01

    def validate(self) -> None:
        self._number("l2", low=0.0)

    def call(self, w: Tensor) -> Tensor:
        return _l2(self.l2, w)


@spec
class L1L2(Regularizer):
    """penalty(w) = l1 * sum(|w|) + l2 * sum(w**2). Gradient: l1 * sign(w) + 2 * l2 * w (0 at w == 0)."""

    name: ClassVar[str] = "l1_l2"
    aliases: ClassVar[tuple] = ("l1l2",)
    l1: float = 0.0
    l2: float = 0.0

    def validate(self) -> None:
        self._number("l1", low=0.0)
        self._number("l2", low=0.0)

    def call(self, w: Tensor) -> Tensor:
        return _l1(self.l1, w) + _l2(self.l2, w)


def get(identifier: Any) -> Regularizer | None:
    return None if identifier is None else resolve("regularizer", identifier)
