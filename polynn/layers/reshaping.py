"""The reshaping layers: Flatten and Reshape, which move no number, only the axes they sit on."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import ClassVar, cast

from .. import ops
from .._spec import INT_LIMIT, check_shape, spec
from .._typing import Tensor
from ..errors import InvalidArgumentError
from ._spatial import check_data_format
from .core import Layer

__all__ = ["Flatten", "Reshape"]


@spec
class Flatten(Layer):
    """y = x reshaped to (batch, d1 * d2 * ... * dn), in row-major (C) order: for channels_last
    inputs, y[b, ((i1 * d2 + i2) * ...) * dn + in] = x[b, i1, ..., in], as Keras's Flatten.

    data_format: None or "channels_last" (Keras's channels_first, which transposes the channels
    last first, is refused: polynn's layers take channels_last inputs). No weights.
    """

    name: ClassVar[str] = "flatten"
    data_format: str | None = None
    input_shape: tuple | None = None

    def validate(self) -> None:
        self._set("data_format", check_data_format("Flatten", self.data_format))
        if self.input_shape is not None:
            self._set("input_shape", check_shape("Flatten", "input_shape", self.input_shape))

    @property
    def declared_input_shape(self) -> tuple | None:
        return self.input_shape

    def output_shape(self, input_shape: tuple) -> tuple:
        # Keras's: a sample without axes becomes one feature.
        return (math.prod(input_shape),)

    def call(self, params: Sequence[Tensor], x: Tensor, mask: Tensor | None = None,
             activation: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        # A sample's axes are static on every engine (the batch axis alone may be None).
        return ops.reshape(x, (-1, math.prod(cast("tuple[int, ...]", ops.shape(x)[1:]))))


@spec
class Reshape(Layer):
    """y = x reshaped to (batch, *target_shape), in row-major (C) order (NumPy's reshape of each
    sample). One entry of target_shape may be -1: it takes the size that keeps the sample's
    number of elements. No weights.

    target_shape has a default, (-1,) (a Flatten), where Keras requires it.
    """

    name: ClassVar[str] = "reshape"
    target_shape: tuple = (-1,)
    input_shape: tuple | None = None

    def validate(self) -> None:
        value = self.target_shape
        accepted = "a tuple of integers > 0, one of which may be -1 (the size that keeps the number of elements)"
        try:
            shape = tuple(value)
        except TypeError:
            raise InvalidArgumentError("target_shape", value, accepted, owner="Reshape") from None
        valid = len(shape) > 0 and all(
            isinstance(d, numbers.Integral) and not isinstance(d, bool) and (0 < int(d) <= INT_LIMIT or d == -1)
            for d in shape) and shape.count(-1) <= 1
        if not valid:
            raise InvalidArgumentError("target_shape", value, accepted, owner="Reshape")
        self._set("target_shape", tuple(int(d) for d in shape))
        if self.input_shape is not None:
            self._set("input_shape", check_shape("Reshape", "input_shape", self.input_shape))
            self.output_shape(self.input_shape)

    @property
    def declared_input_shape(self) -> tuple | None:
        return self.input_shape

    def output_shape(self, input_shape: tuple) -> tuple:
        size = math.prod(input_shape)
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            if size % known:
                raise InvalidArgumentError(
                    "input shape", tuple(input_shape),
                    f"a per-sample shape whose {size} elements divide into target_shape {self.target_shape} "
                    f"(a multiple of {known})", owner="Reshape")
            return tuple(size // known if d == -1 else d for d in self.target_shape)
        if size != known:
            raise InvalidArgumentError(
                "input shape", tuple(input_shape),
                f"a per-sample shape of {known} elements, as target_shape {self.target_shape} has "
                f"(it has {size})", owner="Reshape")
        return self.target_shape

    def call(self, params: Sequence[Tensor], x: Tensor, mask: Tensor | None = None,
             activation: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        # The batch axis takes the -1: the engines' graphs may not know the batch size.
        return ops.reshape(x, (-1, *self.output_shape(ops.shape(x)[1:])))
