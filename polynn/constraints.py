"""Constraint specs: projections applied to a weight after each optimizer update."""

from __future__ import annotations

from typing import Any, ClassVar

from . import _registry, ops
from ._spec import Component, resolve, spec
from ._typing import Tensor
from .errors import InvalidArgumentError

__all__ = ["Constraint", "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm", "get", "EPSILON"]

# Keras's backend epsilon, used to keep the norm divisions finite.
EPSILON = 1e-7


def _check_axis(owner: str, axis: Any) -> int | tuple[int, ...]:
    if isinstance(axis, list):
        axis = tuple(axis)
    ok = isinstance(axis, int) and not isinstance(axis, bool)
    ok = ok or (isinstance(axis, tuple) and all(isinstance(a, int) and not isinstance(a, bool) for a in axis))
    if not ok:
        raise InvalidArgumentError("axis", axis, "an integer or a tuple of integers", owner=owner)
    return axis


def _norms(w: Tensor, axis: int | tuple[int, ...]) -> Tensor:
    return ops.sqrt(ops.sum(w * w, axis=axis, keepdims=True))


@_registry.register_base
class Constraint(Component):
    """`call(w)` is the projection written once on polynn.ops: every backend with an ops namespace
    applies it to its own tensors (after each update, outside differentiation) unless it has an
    override of its own. It has no gradient rule; at its boundaries (w == 0 for NonNeg, a norm
    equal to a bound) the formulas below are continuous."""

    kind: ClassVar[str] = "constraint"

    def validate(self) -> None:
        if hasattr(self, "axis"):
            self._set("axis", _check_axis(type(self).__name__, self.axis))


@spec
class MaxNorm(Constraint):
    """n = sqrt(sum(w**2, axis, keepdims)); w <- w * (clip(n, 0, max_value) / (1e-7 + n))."""

    name: ClassVar[str] = "max_norm"
    aliases: ClassVar[tuple] = ("maxnorm",)
    max_value: float = 2.0
    axis: int | tuple[int, ...] = 0

    def validate(self) -> None:
        super().validate()
        self._number("max_value", low=0.0)

    def call(self, w: Tensor) -> Tensor:
        n = _norms(w, self.axis)
        return w * (ops.clip(n, 0, self.max_value) / (EPSILON + n))


@spec
class NonNeg(Constraint):
    """w <- w * (w >= 0): negative elements become 0, and w == 0 stays as it is."""

    name: ClassVar[str] = "non_neg"
    aliases: ClassVar[tuple] = ("nonneg",)

    def call(self, w: Tensor) -> Tensor:
        # w * 0 where w < 0 rather than 0: the docstring's product, -0.0 and NaN included.
        return ops.where(ops.greater_equal(w, 0), w, w * 0)


@spec
class UnitNorm(Constraint):
    """w <- w / (1e-7 + sqrt(sum(w**2, axis, keepdims)))."""

    name: ClassVar[str] = "unit_norm"
    aliases: ClassVar[tuple] = ("unitnorm",)
    axis: int | tuple[int, ...] = 0

    def call(self, w: Tensor) -> Tensor:
        return w / (EPSILON + _norms(w, self.axis))


@spec
class MinMaxNorm(Constraint):
    """n = sqrt(sum(w**2, axis, keepdims)); d = rate * clip(n, min_value, max_value) + (1 - rate) * n;
    w <- w * (d / (1e-7 + n))."""

    name: ClassVar[str] = "min_max_norm"
    aliases: ClassVar[tuple] = ("minmaxnorm",)
    min_value: float = 0.0
    max_value: float = 1.0
    rate: float = 1.0
    axis: int | tuple[int, ...] = 0

    def validate(self) -> None:
        super().validate()
        self._number("min_value", low=0.0)
        self._number("max_value", low=self.min_value,
                     accepted=f"a finite number >= min_value ({self.min_value})")
        self._number("rate", low=0.0, high=1.0)

    def call(self, w: Tensor) -> Tensor:
        n = _norms(w, self.axis)
        desired = self.rate * ops.clip(n, self.min_value, self.max_value) + (1 - self.rate) * n
        return w * (desired / (EPSILON + n))


def get(identifier: Any) -> Constraint | None:
    return None if identifier is None else resolve("constraint", identifier)
