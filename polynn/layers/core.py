"""The core layer specs: the Layer base, Input, Dense, Dropout and Activation."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from .. import _registry, ops
from .. import activations as _activations
from .._spec import (
    INT_LIMIT,
    Component,
    check_bool,
    check_feature_axis,
    check_positive_int,
    check_seed,
    check_shape,
    component_field,
    resolve,
    spec,
)
from .._typing import Tensor
from ..errors import InvalidArgumentError

if TYPE_CHECKING:
    from ..constraints import Constraint
    from ..initializers import Initializer
    from ..regularizers import Regularizer

__all__ = ["Layer", "Input", "InputLayer", "Dense", "Dropout", "Activation", "WeightSpec", "get",
           "check_activation_axis", "check_weight_size"]


class WeightSpec(NamedTuple):
    """One array of a layer's weights: its name, shape and the components acting on it.

    trainable=False (Keras's non-trainable weight: BatchNormalization's moving statistics) is a
    weight the optimizer never reaches: no gradient, no update or slot change, no regularizer or
    constraint (give it none). It is in get_weights() and model files all the same, and changes
    only through its layer's `state_updates` in training steps (see Layer).
    """

    name: str
    shape: tuple
    initializer: Initializer
    regularizer: Regularizer | None
    constraint: Constraint | None
    trainable: bool = True


def _defines_legacy_weights(cls: type) -> bool:
    """Whether `cls` defines the old weights(input_shape), which Layer.__init_subclass__ made its weight_specs."""
    legacy = cls.__dict__.get("weights")
    return legacy is not None and cls.__dict__.get("weight_specs") is legacy


@_registry.register_base
@dataclasses.dataclass(frozen=True)
class Layer(Component):
    """Shapes exclude the batch axis. `weight_specs(input_shape)` lists the layer's weights in Keras
    order (it was `weights(input_shape)`, which still works, with a DeprecationWarning).

    `trainable` (keyword-only, as Keras's): False freezes the layer in fit: its weights and their
    optimizer slots stay as they are, and its weights' regularizer penalties and constraints are
    left out (Keras 3); its activity regularizer still counts. model.layers[i].trainable sets it on
    a model's layer.

    `name=` (keyword only; held in the field `given_name`, saved under the config key "name")
    names the layer in the model's summary and `layer_names()`: a non-empty string without "/",
    unique in its model. A layer without one is named by its model, as Keras names a fresh
    process's first model: the registry name, then name_1, name_2, ... per kind in layer order,
    skipping the names given in the model. Unlike Keras's process-wide counters, a model's names
    depend only on its layers, so a rebuilt or reloaded model logs the same names. The class
    variable `name` stays the registry name (what backends look implementations up by); weights
    in files are keyed by these automatic names, never by given ones, as Keras's weight paths.

    `call(params, x, mask=None, activation=None)` is the layer's forward pass written once on
    polynn.ops: params are its weights in `weight_specs()` order, mask the scaled keep mask of a
    dropout layer in training (else None), and activation the function z -> y the runtime computes
    the layer's activation spec with (its own implementation, or a user function's), by default the
    spec's own `call`. Every backend with an ops namespace and an autodiff engine runs it (see
    polynn.backend.SharedLayer) unless it has an override of its own.

    A layer that computes otherwise in training (BatchNormalization) gives its call a keyword
    parameter `training=False`: train steps pass training=True, evaluate() and predict() nothing.
    A layer with state (weights whose WeightSpec has trainable=False) defines
    `state_updates(params, x)`: the new values of those weights, in their weight_specs() order,
    after a train step in which the layer's input was x (params as in call). Every runtime calls it
    in train steps only, for layers with trainable=True, on the input its training-mode call got,
    outside differentiation, and sets the weights to the values after the step's update. A layer
    without these is called as it always was.
    """

    kind: ClassVar[str] = "layer"
    # keyword-only, so subclasses' fields keep their positions (Dense(4) is units=4); the
    # registry adds it to the repr as name='...'
    given_name: str | None = dataclasses.field(default=None, kw_only=True, repr=False)
    # keyword-only as given_name; shown in the repr (by the registry) only when False
    trainable: bool = dataclasses.field(default=True, kw_only=True, repr=False)

    if TYPE_CHECKING:
        # For type checkers only: a class without `call` has no shared implementation (a backend
        # must have its own), so the base defines none.
        def call(self, params: Sequence[Tensor], x: Tensor, mask: Tensor | None = None,
                 activation: Callable[[Tensor], Tensor] | None = None) -> Tensor: ...

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        legacy = cls.__dict__.get("weights")
        if callable(legacy) and "weight_specs" not in cls.__dict__:
            # A layer written before the rename: its weights(input_shape) serves as weight_specs.
            warnings.warn(f"{cls.__module__}.{cls.__qualname__} defines weights(input_shape), renamed "
                          f"weight_specs(input_shape); rename the method (the old name will stop "
                          f"working in a later release)", DeprecationWarning, stacklevel=2)
            cls.weight_specs = legacy  # type: ignore[method-assign]  # the same signature

    def __post_init__(self) -> None:
        super().__post_init__()
        check_bool(type(self).__name__, "trainable", self.trainable)

    @property
    def declared_input_shape(self) -> tuple | None:
        return None

    def weight_specs(self, input_shape: tuple) -> list[WeightSpec]:
        """The layer's weights for an input of `input_shape` (no batch axis), in Keras order."""
        return []

    def has_state_updates(self) -> bool:
        """Whether train steps update this layer's non-trainable weights: it defines
        `state_updates(params, x)` and is trainable (a frozen layer's state stays, as Keras's)."""
        return self.trainable and callable(getattr(self, "state_updates", None))

    def weights(self, input_shape: tuple) -> list[WeightSpec]:
        """Deprecated: weight_specs(input_shape)."""
        warnings.warn("Layer.weights(input_shape) is renamed weight_specs(input_shape); on a model's "
                      "layer, weights is the list of its arrays (as Keras)", DeprecationWarning, stacklevel=2)
        # Reached from an old-style subclass's super().weights() too (its weights() is its
        # weight_specs): the weight_specs to run is the first one above the last such class, else
        # self.weight_specs would call that subclass's weights() again, without end.
        mro = type(self).__mro__
        legacy = [i for i, klass in enumerate(mro) if _defines_legacy_weights(klass)]
        for klass in mro[legacy[-1] + 1 if legacy else 0:]:
            if "weight_specs" in klass.__dict__:
                return klass.__dict__["weight_specs"].__get__(self, type(self))(input_shape)
        return []  # pragma: no cover - Layer itself defines weight_specs

    def output_shape(self, input_shape: tuple) -> tuple:
        return input_shape


def check_activation_axis(owner: str, activation: Any, output_shape: tuple) -> None:
    """An activation with an axis (softmax, log_softmax, a plugin's) must name an axis of the
    layer's output, the batch axis included (as Keras): checked once the input shape is known."""
    axis = getattr(activation, "axis", None)
    if isinstance(axis, int) and not isinstance(axis, bool):
        check_feature_axis(f"{owner} activation {activation.name}", axis, len(output_shape) + 1,
                           "the layer's output", batch=True)


def check_weight_size(owner: str, name: str, shape: tuple) -> None:
    """A weight whose size NumPy cannot even address (2**63 bytes) is refused before allocation."""
    size = 8
    for d in shape:
        size *= d
    if size > INT_LIMIT:
        raise InvalidArgumentError(f"{name} shape", shape, "a weight of fewer than 2**63 bytes in float64",
                                   owner=owner)


# The data dtypes Input(dtype=...) records (Keras's InputLayer dtypes polynn's layers take).
INPUT_DTYPES = ("float32", "float64", "int32", "int64")


@spec
class Input(Layer):
    """Declares the shape of one sample (without the batch axis); computes the identity.

    `dtype` (Keras's): the dtype of the data the model is fed, None, "float32", "float64", "int32"
    or "int64". polynn hands every input to the first layer in compile's dtype (an Embedding takes
    integer indices either way, checked exactly), so it changes no number: it is kept in the
    config and written to Keras files as the InputLayer's dtype.
    """

    name: ClassVar[str] = "input"
    aliases: ClassVar[tuple] = ("inputlayer",)
    shape: tuple = ()
    dtype: str | None = None

    def validate(self) -> None:
        self._set("shape", check_shape("Input", "shape", self.shape))
        if not self.shape:
            raise InvalidArgumentError("shape", self.shape, "a non-empty tuple of positive integers", owner="Input")
        if self.dtype is not None:
            dtype = str(getattr(self.dtype, "name", self.dtype))  # a NumPy dtype or its name
            if dtype not in INPUT_DTYPES:
                raise InvalidArgumentError("dtype", self.dtype, f"None or one of {', '.join(INPUT_DTYPES)}",
                                           owner="Input")
            self._set("dtype", dtype)

    @property
    def declared_input_shape(self) -> tuple | None:
        return self.shape

    def call(self, params: Sequence[Tensor], x: Tensor, mask: Tensor | None = None,
             activation: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        return x


InputLayer = Input


@spec
class Dense(Layer):
    """y = activation(x @ kernel + bias), on the last axis of x (any rank >= 1 per sample).

    kernel: (in, units), drawn from kernel_initializer (glorot_uniform); bias: (units,), from
    bias_initializer (zeros), absent when use_bias=False. Regularizer penalties join the training
    loss; the activity regularizer's penalty of y is divided by the batch size (Keras 3).
    Constraints project each weight after every update.
    """

    name: ClassVar[str] = "dense"
    units: int = 1
    # Component fields are typed Any: each takes a name, a config dict, a class or an instance, and
    # holds the resolved spec once constructed.
    activation: Any = component_field("activation", None)
    use_bias: bool = True
    kernel_initializer: Any = component_field("initializer", "glorot_uniform", optional=False)
    bias_initializer: Any = component_field("initializer", "zeros", optional=False)
    kernel_regularizer: Any = component_field("regularizer")
    bias_regularizer: Any = component_field("regularizer")
    activity_regularizer: Any = component_field("regularizer")
    kernel_constraint: Any = component_field("constraint")
    bias_constraint: Any = component_field("constraint")
    input_dim: int | None = None
    input_shape: tuple | None = None

    def __post_init__(self) -> None:
        if self.activation is None:
            object.__setattr__(self, "activation", _activations.Linear())
        super().__post_init__()

    def validate(self) -> None:
        check_positive_int("Dense", "units", self.units)
        check_bool("Dense", "use_bias", self.use_bias)
        if self.input_dim is not None:
            check_positive_int("Dense", "input_dim", self.input_dim)
        if self.input_shape is not None:
            self._set("input_shape", check_shape("Dense", "input_shape", self.input_shape))
            if self.input_dim is not None and self.input_shape[-1] != self.input_dim:
                raise InvalidArgumentError(
                    "input_shape", self.input_shape, f"a shape ending in input_dim={self.input_dim}", owner="Dense")

    @property
    def declared_input_shape(self) -> tuple | None:
        if self.input_shape is not None:
            return self.input_shape
        return None if self.input_dim is None else (self.input_dim,)

    def weight_specs(self, input_shape: tuple) -> list[WeightSpec]:
        check_weight_size("Dense", "kernel", (input_shape[-1], self.units))
        kernel = WeightSpec("kernel", (input_shape[-1], self.units), self.kernel_initializer,
                            self.kernel_regularizer, self.kernel_constraint)
        if not self.use_bias:
            return [kernel]
        bias = WeightSpec("bias", (self.units,), self.bias_initializer, self.bias_regularizer, self.bias_constraint)
        return [kernel, bias]

    def output_shape(self, input_shape: tuple) -> tuple:
        shape = (*input_shape[:-1], self.units)
        check_activation_axis("Dense", self.activation, shape)
        return shape

    def call(self, params: Sequence[Tensor], x: Tensor, mask: Tensor | None = None,
             activation: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        z = ops.matmul(x, params[0])
        if self.use_bias:
            z = z + params[1]
        return (self.activation.call if activation is None else activation)(z)


@spec
class Dropout(Layer):
    """Inverted dropout, active only in training: y = x * m / (1 - rate), m = 1 where u >= rate
    and 0 elsewhere, u ~ U[0, 1) from the shared stream keyed by (seed, step, layer).

    The mask has noise_shape (None entries take the input's size) and broadcasts over x.
    The core draws the scaled mask m / (1 - rate) and hands it to the backend, so every backend
    multiplies by the same numbers. rate 0 is the identity.
    """

    name: ClassVar[str] = "dropout"
    rate: float = 0.5
    noise_shape: tuple | None = None
    seed: int | None = None

    def validate(self) -> None:
        self._number("rate", low=0.0, high=1.0, high_open=True)
        if self.noise_shape is not None:
            self._set("noise_shape", check_shape("Dropout", "noise_shape", self.noise_shape, allow_none=True))
        if self.seed is not None:
            self._set("seed", check_seed("Dropout", "seed", self.seed))

    def output_shape(self, input_shape: tuple) -> tuple:
        """The input's shape; refuses a noise_shape that does not broadcast over it (Keras's rule:
        each entry None, 1 or the input's size; the batch entry is checked against the batches at
        fit, by mask_shape)."""
        if self.noise_shape is not None:
            batch_shape = (None, *input_shape)
            fits = len(self.noise_shape) == len(batch_shape) and all(
                n in (None, 1, d) for n, d in zip(self.noise_shape[1:], input_shape))
            if not fits:
                raise InvalidArgumentError(
                    "noise_shape", self.noise_shape,
                    f"{len(batch_shape)} entries broadcasting over the input (batch, "
                    f"{', '.join(map(str, input_shape))}): the batch entry, then None, 1 or the input's size",
                    owner="Dropout")
        return input_shape

    def mask_shape(self, batch_input_shape: tuple) -> tuple:
        """Shape of the mask for an input of `batch_input_shape` (batch axis included)."""
        if self.noise_shape is None:
            return tuple(batch_input_shape)
        if len(self.noise_shape) != len(batch_input_shape):
            raise InvalidArgumentError(
                "noise_shape", self.noise_shape,
                f"a shape of rank {len(batch_input_shape)} (the input's, batch included)",
                owner="Dropout")
        batch = batch_input_shape[0]
        if self.noise_shape[0] not in (None, 1, batch):
            # Keras's docs write noise_shape=(batch_size, 1, features): right while every batch has that size.
            raise InvalidArgumentError(
                "noise_shape", self.noise_shape,
                f"a batch entry of None, 1 or the size of every training batch; fit has a batch of {batch} "
                f"(the last batch holds what is left of the samples: None fits every batch)", owner="Dropout")
        return tuple(b if n is None else n for n, b in zip(self.noise_shape, batch_input_shape))

    def call(self, params: Sequence[Tensor], x: Tensor, mask: Tensor | None = None,
             activation: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        return x if mask is None else x * mask


@spec
class Activation(Layer):
    """y = activation(x)."""

    name: ClassVar[str] = "activation"
    activation: Any = component_field("activation", "linear", optional=False)  # a name, config or spec

    def output_shape(self, input_shape: tuple) -> tuple:
        check_activation_axis("Activation", self.activation, input_shape)
        return input_shape

    def call(self, params: Sequence[Tensor], x: Tensor, mask: Tensor | None = None,
             activation: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        return (self.activation.call if activation is None else activation)(x)


def get(identifier: Any) -> Layer:
    return resolve("layer", identifier)

