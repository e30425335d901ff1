"""The pooling layers: max and average pooling over windows, and global pooling over every position."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from .. import ops
from .._spec import check_bool, spec
from .._typing import Tensor
from ..errors import InvalidArgumentError
from ._spatial import (
    check_data_format,
    check_input_shape,
    check_padding,
    check_rank,
    check_sizes,
    pool_length,
    spatial_names,
)
from .core import Layer

__all__ = ["MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D", "GlobalAveragePooling1D",
           "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "MaxPool1D", "MaxPool2D",
           "AvgPool1D", "AvgPool2D", "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalMaxPool1D", "GlobalMaxPool2D"]


@dataclasses.dataclass(frozen=True)
class _Pooling(Layer):
    """Windows of pool_size, moved by strides (pool_size when None, as Keras), over the spatial
    axes of a channels_last input; each channel pooled on its own. Output length along an axis of
    n: floor((n - k) / s) + 1 with padding "valid", ceil(n / s) with "same", which pads
    (k - 1 + (ceil(n / s) - 1) s + 1 - n) positions, half before and the extra one after
    (TensorFlow's rule); padded positions take no part in a window. No weights."""

    rank: ClassVar[int]
    pool_size: Any = 2
    strides: Any = None
    padding: str = "valid"
    data_format: str | None = None
    input_shape: tuple | None = None

    def validate(self) -> None:
        owner = type(self).__name__
        self._set("pool_size", check_sizes(owner, "pool_size", self.pool_size, self.rank))
        strides = self.pool_size if self.strides is None else self.strides
        self._set("strides", check_sizes(owner, "strides", strides, self.rank))
        self._set("padding", check_padding(owner, self.padding, ("valid", "same")))
        self._set("data_format", check_data_format(owner, self.data_format))
        if self.input_shape is not None:
            self._set("input_shape", check_input_shape(owner, self.input_shape, self.rank))

    @property
    def declared_input_shape(self) -> tuple | None:
        return self.input_shape

    def output_shape(self, input_shape: tuple) -> tuple:
        owner = type(self).__name__
        check_rank(owner, input_shape, self.rank)
        lengths = tuple(pool_length(n, k, s, self.padding)
                        for n, k, s in zip(input_shape[:-1], self.pool_size, self.strides))
        if 0 in lengths:
            raise InvalidArgumentError(
                "input shape", tuple(input_shape),
                f"({spatial_names(self.rank)}) each at least pool_size {self.pool_size} with padding 'valid' "
                f"(or padding 'same')", owner=owner)
        return (*lengths, input_shape[-1])


class _MaxPooling(_Pooling):
    def call(self, params: Sequence[Tensor], x: Tensor, mask: Tensor | None = None,
             activation: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        return ops.max_pool(x, self.pool_size, strides=self.strides, padding=self.padding)


class _AveragePooling(_Pooling):
    def call(self, params: Sequence[Tensor], x: Tensor, mask: Tensor | None = None,
             activation: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        return ops.average_pool(x, self.pool_size, strides=self.strides, padding=self.padding)


@spec
class MaxPooling1D(_MaxPooling):
    """y[b, i, c] = max of x[b, i s + j, c] over the window's positions j = 0 .. pool_size - 1
    inside the (padded) input. Gradient: to the window's first maximal element (ties included).

    pool_size 2, strides None (pool_size), padding "valid" or "same", data_format None or
    "channels_last", as Keras; input (steps, channels). The window arithmetic is _Pooling's."""

    name: ClassVar[str] = "max_pooling1d"
    aliases: ClassVar[tuple] = ("maxpool1d",)
    rank: ClassVar[int] = 1


@spec
class MaxPooling2D(_MaxPooling):
    """y[b, i, j, c] = max of x[b, i sh + p, j sw + q, c] over the window (p, q) < pool_size inside
    the (padded) input. Gradient: to the window's first maximal element in row-major order.

    pool_size (2, 2), strides None (pool_size), padding "valid" or "same", data_format None or
    "channels_last", as Keras; input (height, width, channels)."""

    name: ClassVar[str] = "max_pooling2d"
    aliases: ClassVar[tuple] = ("maxpool2d",)
    rank: ClassVar[int] = 2


@spec
class AveragePooling1D(_AveragePooling):
    """y[b, i, c] = mean of x[b, i s + j, c] over the window's positions inside the input: with
    padding "same" a window overlapping the padding divides by its real positions only (Keras and
    TensorFlow). Gradient: 1 / (that count) to each of them.

    pool_size 2 (a default where Keras requires it, MaxPooling1D's), strides None (pool_size),
    padding "valid" or "same", data_format None or "channels_last", as Keras; input (steps,
    channels)."""

    name: ClassVar[str] = "average_pooling1d"
    aliases: ClassVar[tuple] = ("avgpool1d",)
    rank: ClassVar[int] = 1


@spec
class AveragePooling2D(_AveragePooling):
    """y[b, i, j, c] = mean of x[b, i sh + p, j sw + q, c] over the window's positions inside the
    input (a window overlapping "same" padding divides by its real positions only). Gradient:
    1 / (that count) to each of them.

    pool_size (2, 2) (a default where Keras requires it, MaxPooling2D's), strides None
    (pool_size), padding "valid" or "same", data_format None or "channels_last", as Keras; input
    (height, width, channels)."""

    name: ClassVar[str] = "average_pooling2d"
    aliases: ClassVar[tuple] = ("avgpool2d",)
    rank: ClassVar[int] = 2


@dataclasses.dataclass(frozen=True)
class _GlobalPooling(Layer):
    """Pools each channel over every spatial position: output (channels,), or with keepdims
    (1, ..., 1, channels), as Keras. No weights."""

    rank: ClassVar[int]
    data_format: str | None = None
    keepdims: bool = False
    input_shape: tuple | None = None

    def validate(self) -> None:
        owner = type(self).__name__
        self._set("data_format", check_data_format(owner, self.data_format))
        self._set("keepdims", check_bool(owner, "keepdims", self.keepdims))
        if self.input_shape is not None:
            self._set("input_shape", check_input_shape(owner, self.input_shape, self.rank))

    @property
    def declared_input_shape(self) -> tuple | None:
        return self.input_shape

    def output_shape(self, input_shape: tuple) -> tuple:
        check_rank(type(self).__name__, input_shape, self.rank)
        return (*(1,) * self.rank, input_shape[-1]) if self.keepdims else (input_shape[-1],)

    @property
    def _axes(self) -> tuple[int, ...]:
        return tuple(range(1, self.rank + 1))


@spec
class GlobalAveragePooling1D(_GlobalPooling):
    """y[b, c] = (1 / n) sum_i x[b, i, c] over the n steps. Gradient: 1 / n to each.

    data_format None or "channels_last", keepdims False (True keeps the steps axis, of length 1);
    input (steps, channels). Keras's mask argument (from an Embedding's mask_zero) is not taken."""

    name: ClassVar[str] = "global_average_pooling1d"
    aliases: ClassVar[tuple] = ("globalavgpool1d",)
    rank: ClassVar[int] = 1

    def call(self, params: Sequence[Tensor], x: Tensor, mask: Tensor | None = None,
             activation: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        return ops.mean(x, axis=self._axes, keepdims=self.keepdims)


@spec
class GlobalAveragePooling2D(_GlobalPooling):
    """y[b, c] = (1 / (h w)) sum_ij x[b, i, j, c]. Gradient: 1 / (h w) to each position.

    data_format None or "channels_last", keepdims False (True gives (1, 1, channels)); input
    (height, width, channels)."""

    name: ClassVar[str] = "global_average_pooling2d"
    aliases: ClassVar[tuple] = ("globalavgpool2d",)
    rank: ClassVar[int] = 2

    def call(self, params: Sequence[Tensor], x: Tensor, mask: Tensor | None = None,
             activation: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        return ops.mean(x, axis=self._axes, keepdims=self.keepdims)


@spec
class GlobalMaxPooling1D(_GlobalPooling):
    """y[b, c] = max_i x[b, i, c]. Gradient: to the largest; k tied largest get 1 / k each
    (polynn.ops.max's rule, TensorFlow's reduce_max's).

    data_format None or "channels_last", keepdims False; input (steps, channels)."""

    name: ClassVar[str] = "global_max_pooling1d"
    aliases: ClassVar[tuple] = ("globalmaxpool1d",)
    rank: ClassVar[int] = 1

    def call(self, params: Sequence[Tensor], x: Tensor, mask: Tensor | None = None,
             activation: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        return ops.max(x, axis=self._axes, keepdims=self.keepdims)


@spec
class GlobalMaxPooling2D(_GlobalPooling):
    """y[b, c] = max_ij x[b, i, j, c]. Gradient: to the largest; k tied largest get 1 / k each.

    data_format None or "channels_last", keepdims False (True gives (1, 1, channels)); input
    (height, width, channels)."""

    name: ClassVar[str] = "global_max_pooling2d"
    aliases: ClassVar[tuple] = ("globalmaxpool2d",)
    rank: ClassVar[int] = 2

    def call(self, params: Sequence[Tensor], x: Tensor, mask: Tensor | None = None,
             activation: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        return ops.max(x, axis=self._axes, keepdims=self.keepdims)


# Keras's other names for them.
MaxPool1D, MaxPool2D = MaxPooling1D, MaxPooling2D
AvgPool1D, AvgPool2D = AveragePooling1D, AveragePooling2D
GlobalAvgPool1D, GlobalAvgPool2D = GlobalAveragePooling1D, GlobalAveragePooling2D
GlobalMaxPool1D, GlobalMaxPool2D = GlobalMaxPooling1D, GlobalMaxPooling2D
