"""The convolution layers Conv1D and Conv2D (channels_last), written once on polynn.ops.conv."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, cast

from .. import activations as _activations
from .. import ops
from .._spec import check_bool, check_positive_int, component_field, spec
from .._typing import Tensor
from ..errors import InvalidArgumentError
from ._spatial import (
    check_data_format,
    check_input_shape,
    check_padding,
    check_rank,
    check_sizes,
    conv_length,
    spatial_names,
)
from .core import Layer, WeightSpec, check_activation_axis, check_weight_size

__all__ = ["Conv1D", "Conv2D", "Convolution1D", "Convolution2D"]


@dataclasses.dataclass(frozen=True)
class _Conv(Layer):
    """The fields and arithmetic Conv1D and Conv2D share (their docstrings give the math)."""

    rank: ClassVar[int]
    paddings: ClassVar[tuple[str, ...]] = ("valid", "same")
    filters: int = 1
    kernel_size: Any = 3
    strides: Any = 1
    padding: str = "valid"
    data_format: str | None = None
    dilation_rate: Any = 1
    groups: int = 1
    # Component fields are typed Any: each takes a name, a config dict, a class or an instance.
    activation: Any = component_field("activation", None)
    use_bias: bool = True
    kernel_initializer: Any = component_field("initializer", "glorot_uniform", optional=False)
    bias_initializer: Any = component_field("initializer", "zeros", optional=False)
    kernel_regularizer: Any = component_field("regularizer")
    bias_regularizer: Any = component_field("regularizer")
    activity_regularizer: Any = component_field("regularizer")
    kernel_constraint: Any = component_field("constraint")
    bias_constraint: Any = component_field("constraint")
    input_shape: tuple | None = None

    def __post_init__(self) -> None:
        if self.activation is None:
            object.__setattr__(self, "activation", _activations.Linear())
        super().__post_init__()

    def validate(self) -> None:
        owner = type(self).__name__
        check_positive_int(owner, "filters", self.filters)
        self._set("kernel_size", check_sizes(owner, "kernel_size", self.kernel_size, self.rank))
        self._set("strides", check_sizes(owner, "strides", self.strides, self.rank))
        self._set("padding", check_padding(owner, self.padding, self.paddings))
        self._set("data_format", check_data_format(owner, self.data_format))
        self._set("dilation_rate", check_sizes(owner, "dilation_rate", self.dilation_rate, self.rank))
        check_positive_int(owner, "groups", self.groups)
        check_bool(owner, "use_bias", self.use_bias)
        if self.filters % self.groups:
            raise InvalidArgumentError("groups", self.groups, f"a divisor of filters={self.filters}", owner=owner)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            # Keras's rule: TensorFlow's convolution takes one or the other.
            raise InvalidArgumentError("dilation_rate", self.dilation_rate,
                                       f"1 (as strides={self.strides} has a stride > 1; Keras takes strides > 1 "
                                       f"or dilation_rate > 1, not both)", owner=owner)
        if self.input_shape is not None:
            self._set("input_shape", check_input_shape(owner, self.input_shape, self.rank))

    @property
    def declared_input_shape(self) -> tuple | None:
        return self.input_shape

    def output_shape(self, input_shape: tuple) -> tuple:
        owner = type(self).__name__
        check_rank(owner, input_shape, self.rank)
        channels = input_shape[-1]
        if channels % self.groups:
            raise InvalidArgumentError("input shape", tuple(input_shape),
                                       f"an input whose {channels} channels divide into groups={self.groups}",
                                       owner=owner)
        lengths = tuple(conv_length(n, k, s, d, self.padding) for n, k, s, d in
                        zip(input_shape[:-1], self.kernel_size, self.strides, self.dilation_rate))
        if 0 in lengths:
            spans = tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation_rate))
            raise InvalidArgumentError(
                "input shape", tuple(input_shape),
                f"({spatial_names(self.rank)}) each at least the dilated kernel's {spans} with padding 'valid' "
                f"(or padding 'same')", owner=owner)
        shape = (*lengths, self.filters)
        check_activation_axis(owner, self.activation, shape)
        return shape

    def weight_specs(self, input_shape: tuple) -> list[WeightSpec]:
        self.output_shape(input_shape)  # the input's checks come before any weight is made
        shape = (*self.kernel_size, input_shape[-1] // self.groups, self.filters)
        check_weight_size(type(self).__name__, "kernel", shape)
        kernel = WeightSpec("kernel", shape, self.kernel_initializer, self.kernel_regularizer,
                            self.kernel_constraint)
        if not self.use_bias:
            return [kernel]
        bias = WeightSpec("bias", (self.filters,), self.bias_initializer, self.bias_regularizer, self.bias_constraint)
        return [kernel, bias]

    @staticmethod
    def _per_group(kernel: Tensor) -> int:
        """The channels each group sees: the kernel's (static) second-last axis."""
        return cast(int, ops.shape(kernel)[-2])

    def _padding(self) -> Any:
        if self.padding == "causal":
            return (((self.kernel_size[0] - 1) * self.dilation_rate[0], 0),)
        return self.padding

    def _convolve(self, x: Tensor, kernel: Tensor) -> Tensor:
        return ops.conv(x, kernel, strides=self.strides, padding=self._padding(), dilation_rate=self.dilation_rate)

    def call(self, params: Sequence[Tensor], x: Tensor, mask: Tensor | None = None,
             activation: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        kernel = params[0]
        if self.groups == 1:
            z = self._convolve(x, kernel)
        else:
            # Group g convolves its input channels with its filters; the groups' outputs are
            # joined in order (TensorFlow's grouped convolution, which Keras runs).
            per_group = self._per_group(kernel)
            out = self.filters // self.groups
            z = ops.concatenate([
                self._convolve(ops.take(x, list(range(g * per_group, (g + 1) * per_group)), axis=-1),
                               ops.take(kernel, list(range(g * out, (g + 1) * out)), axis=-1))
                for g in range(self.groups)], axis=-1)
        if self.use_bias:
            z = z + params[1]
        return (self.activation.call if activation is None else activation)(z)


@spec
class Conv1D(_Conv):
    """z[b, i, o] = sum_{j, c} x_pad[b, i s + j d, c] kernel[j, c, o] + bias[o];
    y = activation(z), for an input (steps, channels).

    kernel: (kernel_size, channels // groups, filters) from kernel_initializer (glorot_uniform);
    bias: (filters,) from bias_initializer (zeros), absent when use_bias=False. s = strides, d =
    dilation_rate (not both above 1, as Keras). x_pad: the input padded with zeros, by nothing
    ("valid": output length floor((n - d (k - 1) - 1) / s) + 1), by TensorFlow's "same" rule
    (output ceil(n / s); total = max((ceil(n / s) - 1) s + d (k - 1) + 1 - n, 0), half before,
    the extra one after) or "causal" (d (k - 1) before, none after: output i sees steps <= i s).
    groups > 1 splits the channels and filters into that many groups, group g's filters seeing
    only group g's channels. Regularizers, constraints and the activity regularizer as Dense.
    filters (1) and kernel_size (3) have defaults where Keras requires them, as Dense's units.
    """

    name: ClassVar[str] = "conv1d"
    aliases: ClassVar[tuple] = ("convolution1d",)
    rank: ClassVar[int] = 1
    paddings: ClassVar[tuple[str, ...]] = ("valid", "same", "causal")


@spec
class Conv2D(_Conv):
    """z[b, i, j, o] = sum_{p, q, c} x_pad[b, i sh + p dh, j sw + q dw, c] kernel[p, q, c, o] + bias[o];
    y = activation(z), for an input (height, width, channels).

    kernel: (kh, kw, channels // groups, filters) from kernel_initializer (glorot_uniform, fans
    from the receptive field kh kw); bias: (filters,) from bias_initializer (zeros), absent when
    use_bias=False. (sh, sw) = strides, (dh, dw) = dilation_rate (not both above 1, as Keras).
    padding "valid" (none) or "same" (TensorFlow's rule along each axis, as Conv1D's), zeros.
    groups > 1 splits the channels and filters into that many groups, group g's filters seeing
    only group g's channels. Regularizers, constraints and the activity regularizer as Dense.
    filters (1) and kernel_size (3) have defaults where Keras requires them, as Dense's units.
    """

    name: ClassVar[str] = "conv2d"
    aliases: ClassVar[tuple] = ("convolution2d",)
    rank: ClassVar[int] = 2


# Keras's other names for them.
Convolution1D, Convolution2D = Conv1D, Conv2D
