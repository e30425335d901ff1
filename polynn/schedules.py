"""Learning-rate schedule specs, evaluated by the core for every backend at once.

A schedule maps the optimizer's iteration count t (0 at the first update, as in Keras) to a
learning rate. The core evaluates it in float64 for a whole block of steps and hands the values
to the backend, so no backend can drift on it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from . import _registry
from ._spec import Component, check_bool, check_number, check_positive_int, resolve, spec
from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = [
    "LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "InverseTimeDecay",
    "PolynomialDecay", "CosineDecay", "get",
]


@_registry.register_base
class LearningRateSchedule(Component):
    kind: ClassVar[str] = "schedule"

    def __call__(self, step: ArrayLike) -> np.ndarray:
        return self.evaluate(np.asarray(step, dtype=np.float64))

    def evaluate(self, t: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} does not define evaluate()")


@spec
class ExponentialDecay(LearningRateSchedule):
    """lr(t) = initial_learning_rate * decay_rate ** (t / decay_steps); the exponent is floored
    when staircase=True."""

    name: ClassVar[str] = "exponential_decay"
    initial_learning_rate: float = 0.01
    decay_steps: int = 1000
    decay_rate: float = 0.96
    staircase: bool = False

    def validate(self) -> None:
        self._number("initial_learning_rate", low=0.0)
        check_positive_int("ExponentialDecay", "decay_steps", self.decay_steps)
        self._number("decay_rate", low=0.0)
        check_bool("ExponentialDecay", "staircase", self.staircase)

    def evaluate(self, t: np.ndarray) -> np.ndarray:
        p = t / self.decay_steps
        if self.staircase:
            p = np.floor(p)
        return self.initial_learning_rate * np.power(self.decay_rate, p)


@spec
class PiecewiseConstantDecay(LearningRateSchedule):
    """lr(t) = values[0] for t <= boundaries[0], values[i] for boundaries[i-1] < t <= boundaries[i],
    values[-1] for t > boundaries[-1]."""

    name: ClassVar[str] = "piecewise_constant_decay"
    boundaries: tuple = (1000,)
    values: tuple = (0.01, 0.001)

    def validate(self) -> None:
        self._set("boundaries", tuple(self.boundaries))
        self._set("values", tuple(self.values))
        if len(self.values) != len(self.boundaries) + 1:
            raise InvalidArgumentError(
                "values", self.values, f"exactly len(boundaries) + 1 = {len(self.boundaries) + 1} values",
                owner="PiecewiseConstantDecay")
        self._set("boundaries", tuple(check_number("PiecewiseConstantDecay", "boundaries", b, low=0.0)
                                      for b in self.boundaries))
        if list(self.boundaries) != sorted(self.boundaries):
            raise InvalidArgumentError("boundaries", self.boundaries, "increasing values",
                                       owner="PiecewiseConstantDecay")
        self._set("values", tuple(check_number("PiecewiseConstantDecay", "values", v, low=0.0) for v in self.values))

    def evaluate(self, t: np.ndarray) -> np.ndarray:
        index = np.searchsorted(np.asarray(self.boundaries, dtype=np.float64), t, side="left")
        return np.asarray(self.values, dtype=np.float64)[index]


@spec
class InverseTimeDecay(LearningRateSchedule):
    """lr(t) = initial_learning_rate / (1 + decay_rate * t / decay_steps); t / decay_steps floored
    when staircase=True."""

    name: ClassVar[str] = "inverse_time_decay"
    initial_learning_rate: float = 0.01
    decay_steps: int = 1000
    decay_rate: float = 0.5
    staircase: bool = False

    def validate(self) -> None:
        self._number("initial_learning_rate", low=0.0)
        check_positive_int("InverseTimeDecay", "decay_steps", self.decay_steps)
        self._number("decay_rate", low=0.0)
        check_bool("InverseTimeDecay", "staircase", self.staircase)

    def evaluate(self, t: np.ndarray) -> np.ndarray:
        p = t / self.decay_steps
        if self.staircase:
            p = np.floor(p)
        return self.initial_learning_rate / (1.0 + self.decay_rate * p)


@spec
class PolynomialDecay(LearningRateSchedule):
    """With s = min(t, decay_steps) (or, when cycle=True, d = decay_steps * max(1, ceil(t / decay_steps))
    and s = t): lr(t) = (initial - end) * (1 - s / d) ** power + end, d = decay_steps unless cycling."""

    name: ClassVar[str] = "polynomial_decay"
    initial_learning_rate: float = 0.01
    decay_steps: int = 1000
    end_learning_rate: float = 0.0001
    power: float = 1.0
    cycle: bool = False

    def validate(self) -> None:
        self._number("initial_learning_rate", low=0.0)
        check_positive_int("PolynomialDecay", "decay_steps", self.decay_steps)
        self._number("end_learning_rate", low=0.0)
        self._number("power")
        check_bool("PolynomialDecay", "cycle", self.cycle)

    def evaluate(self, t: np.ndarray) -> np.ndarray:
        d: np.ndarray | float
        if self.cycle:
            d = self.decay_steps * np.maximum(1.0, np.ceil(t / self.decay_steps))
            s = t
        else:
            d = float(self.decay_steps)
            s = np.minimum(t, d)
        return (self.initial_learning_rate - self.end_learning_rate) * np.power(1.0 - s / d, self.power) \
            + self.end_learning_rate


@spec
class CosineDecay(LearningRateSchedule):
    """Warm-up (t < warmup_steps, when warmup_target is set): lr = initial + (target - initial) * t / warmup_steps.
    Then, with f = min(t - warmup_steps, decay_steps) / decay_steps and peak = warmup_target or initial:
    lr = peak * ((1 - alpha) * 0.5 * (1 + cos(pi * f)) + alpha)."""

    name: ClassVar[str] = "cosine_decay"
    initial_learning_rate: float = 0.01
    decay_steps: int = 1000
    alpha: float = 0.0
    warmup_target: float | None = None
    warmup_steps: int = 0

    def validate(self) -> None:
        self._number("initial_learning_rate", low=0.0)
        check_positive_int("CosineDecay", "decay_steps", self.decay_steps)
        self._number("alpha", low=0.0, high=1.0)
        if self.warmup_target is not None:
            self._number("warmup_target", low=0.0)
        if self.warmup_steps != 0:
            check_positive_int("CosineDecay", "warmup_steps", self.warmup_steps)

    def evaluate(self, t: np.ndarray) -> np.ndarray:
        peak = self.initial_learning_rate if self.warmup_target is None else self.warmup_target
        f = np.minimum(np.maximum(t - self.warmup_steps, 0.0), self.decay_steps) / self.decay_steps
        decayed = peak * ((1.0 - self.alpha) * 0.5 * (1.0 + np.cos(math.pi * f)) + self.alpha)
        if self.warmup_target is None or self.warmup_steps == 0:
            return decayed
        warm = self.initial_learning_rate + (self.warmup_target - self.initial_learning_rate) * t / self.warmup_steps
        return np.where(t < self.warmup_steps, warm, decayed)


def get(identifier: Any) -> LearningRateSchedule:
    return resolve("schedule", identifier)
