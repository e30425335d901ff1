"""Initializer specs, and the one place initial values are drawn (from the neutral seeded stream)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from . import _registry
from ._float32 import float32_constant
from ._spec import Component, check_choice, resolve, spec
from .errors import InvalidArgumentError

__all__ = [
    "Initializer", "Zeros", "Ones", "Constant", "RandomUniform", "RandomNormal", "TruncatedNormal",
    "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform",
    "LecunNormal", "Orthogonal", "Identity", "get",
]


def compute_fans(shape: tuple) -> tuple[float, float]:
    """Keras's fans: (in, out) of a matrix; for more axes the leading ones form the receptive field."""
    if len(shape) == 0:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    if len(shape) == 2:
        return float(shape[0]), float(shape[1])
    receptive = float(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


@_registry.register_base
class Initializer(Component):
    """sample(shape, rng) returns float64 values drawn from `rng`, a numpy Generator on the shared stream."""

    kind: ClassVar[str] = "initializer"

    def sample(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} does not define sample()")


@spec
class Zeros(Initializer):
    """w = 0."""

    name: ClassVar[str] = "zeros"
    aliases: ClassVar[tuple] = ("zero",)

    def sample(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        return np.zeros(shape)


@spec
class Ones(Initializer):
    """w = 1."""

    name: ClassVar[str] = "ones"
    aliases: ClassVar[tuple] = ("one",)

    def sample(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        return np.ones(shape)


@spec
class Constant(Initializer):
    """w = f32(value): the value rounded to float32, as Keras 3 on TensorFlow casts it (even for a
    float64 weight; Keras on torch casts it exactly)."""

    name: ClassVar[str] = "constant"
    value: float = 0.0

    def validate(self) -> None:
        self._number("value")

    def sample(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        return np.full(shape, float32_constant(self.value))


@spec
class RandomUniform(Initializer):
    """w ~ U[minval, maxval)."""

    name: ClassVar[str] = "random_uniform"
    aliases: ClassVar[tuple] = ("uniform",)
    minval: float = -0.05
    maxval: float = 0.05

    def validate(self) -> None:
        self._number("minval")
        self._number("maxval", low=self.minval, low_open=True,
                     accepted=f"a finite number > minval ({self.minval})")

    def sample(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(self.minval, self.maxval, size=shape)


@spec
class RandomNormal(Initializer):
    """w ~ N(mean, stddev**2)."""

    name: ClassVar[str] = "random_normal"
    aliases: ClassVar[tuple] = ("normal",)
    mean: float = 0.0
    stddev: float = 0.05

    def validate(self) -> None:
        self._number("mean")
        self._number("stddev", low=0.0)

    def sample(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        return rng.normal(self.mean, self.stddev, size=shape)


def _truncated_standard_normal(shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """N(0, 1) restricted to [-2, 2], by redrawing the values that fall outside."""
    out = rng.standard_normal(size=shape)
    bad = np.abs(out) > 2.0
    while bad.any():
        out[bad] = rng.standard_normal(size=int(bad.sum()))
        bad = np.abs(out) > 2.0
    return out


@spec
class TruncatedNormal(Initializer):
    """w ~ N(mean, stddev**2) truncated to mean +- 2 stddev (values outside are redrawn)."""

    name: ClassVar[str] = "truncated_normal"
    mean: float = 0.0
    stddev: float = 0.05

    def validate(self) -> None:
        self._number("mean")
        self._number("stddev", low=0.0)

    def sample(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        return self.mean + self.stddev * _truncated_standard_normal(shape, rng)


# Keras's constant: the stddev of a standard normal truncated to [-2, 2].
_TRUNCATION_STD = 0.87962566103423978


@spec
class VarianceScaling(Initializer):
    """n = fan_in, fan_out or (fan_in + fan_out) / 2 by `mode`; s = scale / n.

    distribution 'truncated_normal': stddev sqrt(s) / 0.8796..., truncated at 2 stddev;
    'untruncated_normal': N(0, s); 'uniform': U[-sqrt(3 s), sqrt(3 s)].
    """

    name: ClassVar[str] = "variance_scaling"
    scale: float = 1.0
    mode: str = "fan_in"
    distribution: str = "truncated_normal"

    def validate(self) -> None:
        owner = type(self).__name__
        self._number("scale", low=0.0, low_open=True)
        check_choice(owner, "mode", self.mode, ("fan_in", "fan_out", "fan_avg"))
        check_choice(owner, "distribution", self.distribution, ("truncated_normal", "untruncated_normal", "uniform"))

    def sample(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        fan_in, fan_out = compute_fans(tuple(shape))
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        s = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * s)
            return rng.uniform(-limit, limit, size=shape)
        if self.distribution == "untruncated_normal":
            return math.sqrt(s) * rng.standard_normal(size=shape)
        return (math.sqrt(s) / _TRUNCATION_STD) * _truncated_standard_normal(shape, rng)


def _variance_scaling_preset(class_name: str, registry_name: str, scale: float, mode: str, distribution: str,
                             doc: str) -> type[Initializer]:
    def sample(self: Initializer, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        return VarianceScaling(scale, mode, distribution).sample(shape, rng)

    cls = type(class_name, (Initializer,), {
        "__doc__": doc,
        "__module__": __name__,
        "__annotations__": {"name": ClassVar[str]},
        "name": registry_name,
        "sample": sample,
    })
    return spec(cls)


GlorotUniform = _variance_scaling_preset(
    "GlorotUniform", "glorot_uniform", 1.0, "fan_avg", "uniform",
    "w ~ U[-limit, limit], limit = sqrt(6 / (fan_in + fan_out)).")
GlorotNormal = _variance_scaling_preset(
    "GlorotNormal", "glorot_normal", 1.0, "fan_avg", "truncated_normal",
    "w ~ truncated N(0, 2 / (fan_in + fan_out)) (stddev divided by 0.8796... for the truncation).")
HeUniform = _variance_scaling_preset(
    "HeUniform", "he_uniform", 2.0, "fan_in", "uniform", "w ~ U[-limit, limit], limit = sqrt(6 / fan_in).")
HeNormal = _variance_scaling_preset(
    "HeNormal", "he_normal", 2.0, "fan_in", "truncated_normal", "w ~ truncated N(0, 2 / fan_in).")
LecunUniform = _variance_scaling_preset(
    "LecunUniform", "lecun_uniform", 1.0, "fan_in", "uniform", "w ~ U[-limit, limit], limit = sqrt(3 / fan_in).")
LecunNormal = _variance_scaling_preset(
    "LecunNormal", "lecun_normal", 1.0, "fan_in", "truncated_normal", "w ~ truncated N(0, 1 / fan_in).")


@spec
class Orthogonal(Initializer):
    """w = gain * Q, Q from the QR decomposition of a standard normal (rows, cols) matrix, signs fixed by diag(R)."""

    name: ClassVar[str] = "orthogonal"
    gain: float = 1.0

    def validate(self) -> None:
        self._number("gain")

    def sample(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        if len(shape) < 2:
            raise InvalidArgumentError("shape", tuple(shape), "at least 2 dimensions", owner="Orthogonal")
        rows = int(np.prod(shape[:-1]))
        cols = int(shape[-1])
        flat = rng.standard_normal(size=(max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(flat)
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)


@spec
class Identity(Initializer):
    """w = gain * I (a 2-D, possibly rectangular, identity)."""

    name: ClassVar[str] = "identity"
    gain: float = 1.0

    def validate(self) -> None:
        self._number("gain")

    def sample(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        if len(shape) != 2:
            raise InvalidArgumentError("shape", tuple(shape), "exactly 2 dimensions", owner="Identity")
        return self.gain * np.eye(*shape)


def get(identifier: Any) -> Initializer:
    return resolve("initializer", identifier)
