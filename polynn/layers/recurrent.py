"""The recurrent layers SimpleRNN, LSTM and GRU: a loop over time steps of matmuls and activations."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from .. import activations as _activations
from .. import initializers as _initializers
from .. import ops
from .._spec import check_bool, check_positive_int, check_seed, check_shape, component_field, spec
from .._typing import Tensor
from ..errors import InvalidArgumentError
from .core import Layer, WeightSpec, check_activation_axis, check_weight_size

__all__ = ["SimpleRNN", "LSTM", "GRU", "UnitForgetBias"]


@dataclasses.dataclass(frozen=True)
class UnitForgetBias(_initializers.Initializer):
    """LSTM's bias with unit_forget_bias=True, as Keras builds it: `base` for the input gate's
    units, ones for the forget gate's, `base` for the cell and output gates' 2 * units."""

    name: ClassVar[str] = "unit_forget_bias"
    base: Any = None

    def sample(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        units = shape[0] // 4
        return np.concatenate([np.asarray(self.base.sample((units,), rng), dtype=np.float64), np.ones(units),
                               np.asarray(self.base.sample((2 * units,), rng), dtype=np.float64)])


class _Recurrent(Layer):
    """What SimpleRNN, LSTM and GRU share: the options polynn refuses or accepts only where they change
    nothing, the weights, shapes and the loop over time steps. Each subclass defines its fields in
    Keras's order, `gates` (the blocks of units its kernels hold) and `step`."""

    gates: ClassVar[int] = 1

    # For type checkers: every subclass has these fields.
    units: int
    activation: Any
    use_bias: bool
    kernel_initializer: Any
    recurrent_initializer: Any
    bias_initializer: Any
    kernel_regularizer: Any
    recurrent_regularizer: Any
    bias_regularizer: Any
    activity_regularizer: Any
    kernel_constraint: Any
    recurrent_constraint: Any
    bias_constraint: Any
    dropout: float
    recurrent_dropout: float
    seed: int | None
    return_sequences: bool
    return_state: bool
    go_backwards: bool
    stateful: bool
    unroll: bool
    input_shape: tuple | None

    def __post_init__(self) -> None:
        # None is the identity, as Keras's activations.get(None).
        for name in ("activation", "recurrent_activation"):
            if name in self.__dataclass_fields__ and getattr(self, name) is None:
                object.__setattr__(self, name, _activations.Linear())
        super().__post_init__()

    def validate(self) -> None:
        owner = type(self).__name__
        check_positive_int(owner, "units", self.units)
        for name in ("use_bias", "return_sequences", "go_backwards", "unroll", "return_state", "stateful"):
            check_bool(owner, name, getattr(self, name))
        # unroll=True asks for the loop written out step by step: the same numbers either way (on
        # TensorFlow it also writes out sequences the backend would otherwise loop over).
        for name in ("dropout", "recurrent_dropout"):
            value = getattr(self, name)
            # Only 0 is accepted, so any other value (1.5 too) hears that the option is unsupported,
            # not a range that would suggest 0.3 works.
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != 0:
                raise InvalidArgumentError(name, getattr(self, name), f"0.0 (polynn's {owner} has no {name}: it is "
                                           f"not supported; a Dropout layer before or after the {owner} drops "
                                           f"whole inputs or outputs)", owner=owner)
            self._number(name, low=0.0, high=1.0)  # stored as a float, as Keras's config has it
        for name, why in (("return_state", "a polynn layer has one output, so return_state is not supported"),
                          ("stateful", "each batch starts from zero states, so stateful is not supported")):
            if getattr(self, name):
                raise InvalidArgumentError(name, True, f"False ({why})", owner=owner)
        if self.seed is not None:  # Keras's seed of the dropout masks, which polynn's recurrent layers lack
            self._set("seed", check_seed(owner, "seed", self.seed))
        cudnn = getattr(self, "use_cudnn", "auto")
        if not (cudnn == "auto" or cudnn is False):
            raise InvalidArgumentError("use_cudnn", cudnn, "'auto' or False (polynn runs no cuDNN kernel, so "
                                       "use_cudnn=True is not supported)", owner=owner)
        if self.input_shape is not None:
            self._set("input_shape", check_shape(owner, "input_shape", self.input_shape))
            self._check_rank(self.input_shape)

    def _check_rank(self, input_shape: tuple) -> None:
        if len(input_shape) != 2:
            raise InvalidArgumentError("input shape", tuple(input_shape), "(timesteps, features) per sample: a "
                                       "batch of rank 3", owner=type(self).__name__)

    @property
    def declared_input_shape(self) -> tuple | None:
        return self.input_shape

    def _bias_spec(self) -> WeightSpec:
        return WeightSpec("bias", (self.gates * self.units,), self.bias_initializer, self.bias_regularizer,
                          self.bias_constraint)

    def weight_specs(self, input_shape: tuple) -> list[WeightSpec]:
        owner = type(self).__name__
        self._check_rank(input_shape)
        width = self.gates * self.units
        check_weight_size(owner, "kernel", (input_shape[-1], width))
        check_weight_size(owner, "recurrent_kernel", (self.units, width))
        specs = [WeightSpec("kernel", (input_shape[-1], width), self.kernel_initializer, self.kernel_regularizer,
                            self.kernel_constraint),
                 WeightSpec("recurrent_kernel", (self.units, width), self.recurrent_initializer,
                            self.recurrent_regularizer, self.recurrent_constraint)]
        return [*specs, self._bias_spec()] if self.use_bias else specs

    def output_shape(self, input_shape: tuple) -> tuple:
        self._check_rank(input_shape)
        # The activations act on (batch, units) inside each step.
        owner = type(self).__name__
        check_activation_axis(owner, self.activation, (self.units,))
        if hasattr(self, "recurrent_activation"):
            check_activation_axis(owner, self.recurrent_activation, (self.units,))
        return (input_shape[0], self.units) if self.return_sequences else (self.units,)

    def step_weights(self, params: Sequence[Tensor]) -> Sequence[Tensor]:
        """The weights (in weight_specs order) as `project` and `step` take them, made once per call
        (blocks of them, say), on polynn.ops."""
        return params

    def _input_weights(self, weights: Sequence[Tensor]) -> tuple[Tensor, Tensor | None]:
        """The kernel and the bias `project` adds (None without one), from step_weights' result."""
        return weights[0], (weights[2] if self.use_bias else None)

    def project(self, weights: Sequence[Tensor], x: Tensor) -> Tensor:
        """x's part of every time step at once, x_t @ kernel + bias for each t (the input bias, for
        GRU): (batch, timesteps, gates * units), one matrix product for all the steps, on polynn.ops.
        `step` takes its time step's slice."""
        kernel, bias = self._input_weights(weights)
        steps, features = typing.cast("tuple[int, int]", tuple(ops.shape(x)[1:]))  # static in polynn
        z = ops.matmul(ops.reshape(x, (-1, features)), kernel)
        if bias is not None:
            z = z + bias
        return ops.reshape(z, (-1, steps, self.gates * self.units))

    def step(self, weights: Sequence[Tensor], projected: Tensor, state: Any, activation: Callable[[Tensor], Tensor]
             ) -> tuple[Tensor, Any]:
        """One time step on polynn.ops: (output h, new state) from step_weights' weights, the step's
        slice of `project`'s result, (batch, gates * units), the state (h, or LSTM's (h, c)) and
        the activation function; state is None before the first step (zero states, whose products
        are left out: they would add exact zeros). `call` loops over it; an engine may run the same
        steps in a loop of its own (the TensorFlow backend's tf.while_loop)."""
        raise NotImplementedError  # pragma: no cover - every subclass defines it

    def call(self, params: Sequence[Tensor], x: Tensor, mask: Tensor | None = None,
             activation: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        activation = self.activation.call if activation is None else activation
        weights = self.step_weights(params)
        # One unstack, not a take per step: its gradient is one op, not an x-sized array a step.
        inputs = ops.unstack(self.project(weights, x), axis=1)
        state: Any = None
        outputs = []
        for projected in (inputs[::-1] if self.go_backwards else inputs):
            y, state = self.step(weights, projected, state, activation)
            outputs.append(y)
        return ops.stack(outputs, axis=1) if self.return_sequences else outputs[-1]


def _blocks(z: Tensor, count: int, units: int) -> list[Tensor]:
    """z's last axis (count * units wide) as its `count` blocks of `units`, each (rows, units)."""
    return ops.unstack(ops.reshape(z, (-1, count, units)), axis=1)


_RNN_DOC = """

    x: (batch, timesteps, features); the loop runs over the time steps in order (from the last one
    with go_backwards=True), from zero states. The output is the last step's h, (batch, units), or
    with return_sequences=True every step's, (batch, timesteps, units), in the order the steps ran
    (so reversed with go_backwards, as Keras). kernel: (features, {k}units) from kernel_initializer
    (glorot_uniform); recurrent_kernel: (units, {k}units) from recurrent_initializer (orthogonal);
    bias from bias_initializer (zeros), absent when use_bias=False. Regularizer penalties join the
    loss; the activity regularizer's penalty of the output is divided by the batch size (Keras 3);
    constraints project each weight after every update. units (1) has a default where Keras
    requires it, as Dense's units. `project` computes every step's x_t @ kernel (+ bias) in one
    product, and `step` is one time step, which `call` loops over.

    Accepted only where they change nothing (polynn has no masks or carried states): dropout=0,
    recurrent_dropout=0 (seed, their seed in Keras, is accepted and unused), return_state=False,
    stateful=False; use_cudnn "auto" or False (polynn runs no cuDNN kernel). unroll is accepted
    either way, with the same numbers: `call` writes the loop out step by step, and on TensorFlow,
    which runs sequences of more than 32 steps in a tf.while_loop, unroll=True writes those out too,
    as Keras does. Keras's mask and initial_state call arguments have no counterpart.
    """


@spec
class SimpleRNN(_Recurrent):
    """h_t = activation(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel), h_0 = 0."""

    __doc__ = (__doc__ or "") + _RNN_DOC.format(k="")
    name: ClassVar[str] = "simple_rnn"
    gates: ClassVar[int] = 1
    units: int = 1
    activation: Any = component_field("activation", "tanh")
    use_bias: bool = True
    kernel_initializer: Any = component_field("initializer", "glorot_uniform", optional=False)
    recurrent_initializer: Any = component_field("initializer", "orthogonal", optional=False)
    bias_initializer: Any = component_field("initializer", "zeros", optional=False)
    kernel_regularizer: Any = component_field("regularizer")
    recurrent_regularizer: Any = component_field("regularizer")
    bias_regularizer: Any = component_field("regularizer")
    activity_regularizer: Any = component_field("regularizer")
    kernel_constraint: Any = component_field("constraint")
    recurrent_constraint: Any = component_field("constraint")
    bias_constraint: Any = component_field("constraint")
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    stateful: bool = False
    unroll: bool = False
    seed: int | None = None
    input_shape: tuple | None = None

    def step(self, weights: Sequence[Tensor], projected: Tensor, state: Any, activation: Callable[[Tensor], Tensor]
             ) -> tuple[Tensor, Any]:
        z = projected if state is None else projected + ops.matmul(state, weights[1])
        h = activation(z)
        return h, h


@spec
class LSTM(_Recurrent):
    """Gates i, f, g, o in that order in every weight's columns (Keras's), z = (x_t @ kernel + bias)
    + h_{t-1} @ recurrent_kernel (Keras's sum in another order) split into four blocks of units:
    i = r(z_i), f = r(z_f), o = r(z_o), g = a(z_g), c_t = f c_{t-1} + i g, h_t = o a(c_t),
    with a the activation (tanh) and r the recurrent_activation (sigmoid); h_0 = c_0 = 0.
    unit_forget_bias=True (the default) draws the bias's forget block as ones (the other blocks from
    bias_initializer, as Keras)."""

    __doc__ = (__doc__ or "") + _RNN_DOC.format(k="4 ")
    name: ClassVar[str] = "lstm"
    gates: ClassVar[int] = 4
    units: int = 1
    activation: Any = component_field("activation", "tanh")
    recurrent_activation: Any = component_field("activation", "sigmoid")
    use_bias: bool = True
    kernel_initializer: Any = component_field("initializer", "glorot_uniform", optional=False)
    recurrent_initializer: Any = component_field("initializer", "orthogonal", optional=False)
    bias_initializer: Any = component_field("initializer", "zeros", optional=False)
    unit_forget_bias: bool = True
    kernel_regularizer: Any = component_field("regularizer")
    recurrent_regularizer: Any = component_field("regularizer")
    bias_regularizer: Any = component_field("regularizer")
    activity_regularizer: Any = component_field("regularizer")
    kernel_constraint: Any = component_field("constraint")
    recurrent_constraint: Any = component_field("constraint")
    bias_constraint: Any = component_field("constraint")
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    seed: int | None = None
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    stateful: bool = False
    unroll: bool = False
    use_cudnn: Any = "auto"
    input_shape: tuple | None = None

    def validate(self) -> None:
        super().validate()
        check_bool("LSTM", "unit_forget_bias", self.unit_forget_bias)

    def _bias_spec(self) -> WeightSpec:
        initializer = UnitForgetBias(self.bias_initializer) if self.unit_forget_bias else self.bias_initializer
        return WeightSpec("bias", (4 * self.units,), initializer, self.bias_regularizer, self.bias_constraint)

    def step(self, weights: Sequence[Tensor], projected: Tensor, state: Any, activation: Callable[[Tensor], Tensor]
             ) -> tuple[Tensor, Any]:
        z = projected if state is None else projected + ops.matmul(state[0], weights[1])
        z_i, z_f, z_g, z_o = _blocks(z, 4, self.units)
        gate = self.recurrent_activation.call
        i, f, o, g = gate(z_i), gate(z_f), gate(z_o), activation(z_g)
        c = i * g if state is None else f * state[1] + i * g
        h = o * activation(c)
        return h, (h, c)


@spec
class GRU(_Recurrent):
    """Gates z (update), r (reset) and the candidate h~, in that order in every weight's columns
    (Keras's), with a the activation (tanh) and r_ the recurrent_activation (sigmoid):
    x_t @ kernel + b_in = (x_z, x_r, x_h); with reset_after=True (the default; Keras 3's, cuDNN's)
    h_{t-1} @ recurrent_kernel + b_rec = (h_z, h_r, h_h), z = r_(x_z + h_z), r = r_(x_r + h_r),
    h~ = a(x_h + r h_h); with reset_after=False, z and r the same without b_rec and
    h~ = a(x_h + (r h_{t-1}) @ recurrent_kernel_h); then h_t = z h_{t-1} + (1 - z) h~, h_0 = 0.
    The bias is (2, 3 units), rows b_in and b_rec, with reset_after=True; (3 units,), b_in, without."""

    __doc__ = (__doc__ or "") + _RNN_DOC.format(k="3 ")
    name: ClassVar[str] = "gru"
    gates: ClassVar[int] = 3
    units: int = 1
    activation: Any = component_field("activation", "tanh")
    recurrent_activation: Any = component_field("activation", "sigmoid")
    use_bias: bool = True
    kernel_initializer: Any = component_field("initializer", "glorot_uniform", optional=False)
    recurrent_initializer: Any = component_field("initializer", "orthogonal", optional=False)
    bias_initializer: Any = component_field("initializer", "zeros", optional=False)
    kernel_regularizer: Any = component_field("regularizer")
    recurrent_regularizer: Any = component_field("regularizer")
    bias_regularizer: Any = component_field("regularizer")
    activity_regularizer: Any = component_field("regularizer")
    kernel_constraint: Any = component_field("constraint")
    recurrent_constraint: Any = component_field("constraint")
    bias_constraint: Any = component_field("constraint")
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    seed: int | None = None
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    stateful: bool = False
    unroll: bool = False
    reset_after: bool = True
    use_cudnn: Any = "auto"
    input_shape: tuple | None = None

    def validate(self) -> None:
        super().validate()
        check_bool("GRU", "reset_after", self.reset_after)

    def _bias_spec(self) -> WeightSpec:
        shape = (2, 3 * self.units) if self.reset_after else (3 * self.units,)
        return WeightSpec("bias", shape, self.bias_initializer, self.bias_regularizer, self.bias_constraint)

    def step_weights(self, params: Sequence[Tensor]) -> Sequence[Tensor]:
        """(kernel, recurrent kernel or its z and r blocks, its h block, input bias, recurrent bias)."""
        u = self.units
        kernel, recurrent_kernel = params[0], params[1]
        input_bias = recurrent_bias = recurrent_h = None
        if self.use_bias:
            bias = params[2]
            if self.reset_after:
                input_bias, recurrent_bias = ops.unstack(bias, axis=0)
            else:
                input_bias = bias
        if not self.reset_after:
            recurrent_h = ops.take(recurrent_kernel, np.arange(2 * u, 3 * u), axis=1)
            recurrent_kernel = ops.take(recurrent_kernel, np.arange(2 * u), axis=1)
        return kernel, recurrent_kernel, recurrent_h, input_bias, recurrent_bias

    def _input_weights(self, weights: Sequence[Tensor]) -> tuple[Tensor, Tensor | None]:
        return weights[0], weights[3]

    def step(self, weights: Sequence[Tensor], projected: Tensor, state: Any, activation: Callable[[Tensor], Tensor]
             ) -> tuple[Tensor, Any]:
        u = self.units
        _, recurrent_kernel, recurrent_h, _, recurrent_bias = weights
        x_z, x_r, x_h = _blocks(projected, 3, u)
        if state is None:
            # h_{t-1} = 0: its products are exact zeros; only the recurrent bias remains.
            inner = recurrent_bias
        else:
            inner = ops.matmul(state, recurrent_kernel)
            if recurrent_bias is not None:
                inner = inner + recurrent_bias
        gate = self.recurrent_activation.call
        if inner is None:
            z, r = gate(x_z), gate(x_r)
        else:
            # The inner product has z, r and h blocks with reset_after, only z and r without.
            inner_blocks = _blocks(inner, 3 if self.reset_after else 2, u)
            z, r = gate(x_z + inner_blocks[0]), gate(x_r + inner_blocks[1])
        if self.reset_after:
            candidate = x_h if inner is None else x_h + r * inner_blocks[2]
        else:
            candidate = x_h if state is None else x_h + ops.matmul(r * state, recurrent_h)
        hh = activation(candidate)
        h = (1 - z) * hh if state is None else z * state + (1 - z) * hh
        return h, h
