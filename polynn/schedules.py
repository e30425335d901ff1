"""Learning-rate schedule specs, evaluated by the core for every backend at once.

A schedule maps the optimizer's iteration count t (0 at the first update, as in Keras) to a
learning rate. The core evaluates it for a whole block of steps and hands the values to the
backend, so no backend can drift on it.

Keras 3's effective arithmetic: Keras on TensorFlow converts initial_learning_rate to a float32
tensor and computes the whole schedule in its dtype, so even a float64 model gets float32 rates.
polynn does the same: `evaluate` computes in float32, operation by operation as Keras writes each
formula (t, every hyperparameter and every intermediate value in float32), and returns the float32
values widened to float64. (Keras on torch converts the rate in the default float dtype, so with
`keras.config.set_floatx("float64")` its schedules run in float64; polynn follows TensorFlow.)

Where TensorFlow's rounding is that of IEEE +, -, * and /, polynn's rates are Keras's to the bit in
fit (Keras 3.15, TF 2.21): PiecewiseConstantDecay, and InverseTimeDecay, whose decay_rate * (t /
decay_steps) polynn computes as t * (decay_rate / decay_steps) because TensorFlow's graph optimizer
folds the two constants so in Keras's compiled train step. Powers and cosines are the correctly
rounded float32 values (computed in float64, then rounded); TensorFlow's float32 kernels for them
are not correctly rounded, so ExponentialDecay's, PolynomialDecay's and CosineDecay's rates differ
from Keras's in fit by up to 5e-6 relative at some steps (measured over steps 0 to 1499).
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

    def evaluate(self, t: np.ndarray) -> np.ndarray:
        """The rates at steps `t` (float64): the formula computed in float32 (see the module
        docstring), widened. A subclass defines `rates(t)` on float32 `t`."""
        return np.asarray(self.rates(np.asarray(t).astype(np.float32)), dtype=np.float32).astype(np.float64)

    def rates(self, t: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} does not define rates()")


def _f(value: float) -> np.float32:
    """A hyperparameter as Keras casts it: a float32 scalar."""
    return np.float32(value)


def _power(base: ArrayLike, exponent: ArrayLike) -> np.ndarray:
    """base ** exponent for float32 operands, correctly rounded to float32."""
    return np.power(np.asarray(base, np.float64), np.asarray(exponent, np.float64)).astype(np.float32)


def _cos(x: np.ndarray) -> np.ndarray:
    """cos(x) for float32 x, correctly rounded to float32."""
    return np.cos(np.asarray(x, np.float64)).astype(np.float32)


@spec
class ExponentialDecay(LearningRateSchedule):
    """lr(t) = initial_learning_rate * decay_rate ** (t / decay_steps); the exponent is floored
    when staircase=True. In float32 (see the module docstring)."""

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

    def rates(self, t: np.ndarray) -> np.ndarray:
        p = t / _f(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return _f(self.initial_learning_rate) * _power(_f(self.decay_rate), p)


@spec
class PiecewiseConstantDecay(LearningRateSchedule):
    """lr(t) = values[0] for t <= boundaries[0], values[i] for boundaries[i-1] < t <= boundaries[i],
    values[-1] for t > boundaries[-1]. The values are float32 (see the module docstring)."""

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
        # The step is compared as given (Keras compares integer steps with the boundaries).
        return self.rates(np.asarray(t, dtype=np.float64)).astype(np.float64)

    def rates(self, t: np.ndarray) -> np.ndarray:
        index = np.searchsorted(np.asarray(self.boundaries, dtype=np.float64), t, side="left")
        return np.asarray(self.values, dtype=np.float32)[index]


@spec
class InverseTimeDecay(LearningRateSchedule):
    """lr(t) = initial_learning_rate / (1 + decay_rate * p), p = t / decay_steps, floored when
    staircase=True. In float32 (see the module docstring)."""

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

    def rates(self, t: np.ndarray) -> np.ndarray:
        if self.staircase:
            scaled = _f(self.decay_rate) * np.floor(t / _f(self.decay_steps))
        else:  # decay_rate * (t / decay_steps), folded as TensorFlow's graph optimizer folds it
            scaled = t * (_f(self.decay_rate) / _f(self.decay_steps))
        return _f(self.initial_learning_rate) / (_f(1.0) + scaled)


@spec
class PolynomialDecay(LearningRateSchedule):
    """With s = min(t, decay_steps) (or, when cycle=True, d = decay_steps * max(1, ceil(t / decay_steps))
    and s = t): lr(t) = (initial - end) * (1 - s / d) ** power + end, d = decay_steps unless cycling.
    In float32 (see the module docstring)."""

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

    def rates(self, t: np.ndarray) -> np.ndarray:
        d: np.ndarray | np.float32 = _f(self.decay_steps)
        if self.cycle:
            d = d * np.where(t == 0, _f(1.0), np.ceil(t / d))
            s = t
        else:
            s = np.minimum(t, d)
        end = _f(self.end_learning_rate)
        return (_f(self.initial_learning_rate) - end) * _power(_f(1.0) - s / d, _f(self.power)) + end


@spec
class CosineDecay(LearningRateSchedule):
    """Without warmup_target (warmup_steps is then unused, as in Keras): f = min(t, decay_steps) / decay_steps,
    lr = initial * ((1 - alpha) * (0.5 * (1 + cos(pi * f))) + alpha).
    With warmup_target, t is first capped at warmup_steps + decay_steps; for t < warmup_steps
    lr = (target - initial) * (t / warmup_steps) + initial; after, the formula above with
    f = (t - warmup_steps) / decay_steps and target in place of initial. In float32 (see the
    module docstring), pi included."""

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

    def rates(self, t: np.ndarray) -> np.ndarray:
        initial, decay_steps = _f(self.initial_learning_rate), _f(self.decay_steps)
        if self.warmup_target is None:
            return self._decayed(np.minimum(t, decay_steps), decay_steps, initial)
        target, warmup_steps = _f(self.warmup_target), _f(self.warmup_steps)
        t = np.minimum(t, decay_steps + warmup_steps)
        # Each branch sees only its own steps, so no 0 / 0 where warmup_steps is 0.
        warm = (target - initial) * (np.minimum(t, warmup_steps) / np.maximum(warmup_steps, _f(1.0))) + initial
        return np.where(t < warmup_steps, warm, self._decayed(t - warmup_steps, decay_steps, target))

    def _decayed(self, t: np.ndarray, decay_steps: np.float32, peak: np.float32) -> np.ndarray:
        cosine = _f(0.5) * (_f(1.0) + _cos(_f(math.pi) * (t / decay_steps)))
        # Keras forms 1 - alpha from the Python number, then rounds it.
        return peak * (_f(1.0 - self.alpha) * cosine + _f(self.alpha))


def get(identifier: Any) -> LearningRateSchedule:
    return resolve("schedule", identifier)
