"""The Embedding layer: integer indices to rows of a trainable table."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from .. import ops
from .._spec import check_bool, check_int, check_positive_int, check_shape, component_field, spec
from .._typing import Tensor
from ..errors import InvalidArgumentError
from .core import Layer, WeightSpec, check_weight_size

__all__ = ["Embedding", "MAX_INPUT_DIM"]

# Indices travel to the table as int32, as Keras casts them.
MAX_INPUT_DIM = 2**31 - 1


@spec
class Embedding(Layer):
    """y[..., :] = embeddings[int(x[...]), :]: each index of x (any shape per sample) becomes its row
    of the table, so y has x's shape plus output_dim.

    embeddings: (input_dim, output_dim), drawn from embeddings_initializer ("uniform": Keras's
    RandomUniform(-0.05, 0.05)); its regularizer's penalty joins the training loss and its
    constraint projects it after every update; the activity regularizer's penalty of y is divided
    by the batch size (Keras 3). Gradient: each row gets the sum of the output gradients of the
    positions holding its index (rows no index holds get 0).

    Indices are integers in [0, input_dim). The data reaches the layer as floats of the model's
    dtype (exact for integers below 2**24 in float32, 2**53 in float64), truncated toward 0 to int32
    as Keras casts them; fit, evaluate and predict refuse an index outside [0, input_dim) in x
    before any engine sees it (an Embedding after another layer takes that layer's outputs as
    they are, as Keras). input_dim (10) and output_dim (1) have defaults where Keras requires them,
    as Dense's units.

    Not supported: mask_zero=True (polynn has no masks; False is accepted), Keras's weights=
    (set_weights does it), lora_rank and quantization.
    """

    name: ClassVar[str] = "embedding"
    input_dim: int = 10
    output_dim: int = 1
    embeddings_initializer: Any = component_field("initializer", "uniform", optional=False)
    embeddings_regularizer: Any = component_field("regularizer")
    embeddings_constraint: Any = component_field("constraint")
    mask_zero: bool = False
    activity_regularizer: Any = component_field("regularizer")
    input_shape: tuple | None = None

    def validate(self) -> None:
        check_int("Embedding", "input_dim", self.input_dim, low=1, high=MAX_INPUT_DIM,
                  accepted="a positive integer <= 2**31 - 1 (indices are int32, as Keras's)")
        check_positive_int("Embedding", "output_dim", self.output_dim)
        if check_bool("Embedding", "mask_zero", self.mask_zero):
            raise InvalidArgumentError("mask_zero", True, "False (polynn has no masks: mask_zero is not supported; "
                                       "keep index 0 as an ordinary index)", owner="Embedding")
        if self.input_shape is not None:
            self._set("input_shape", check_shape("Embedding", "input_shape", self.input_shape))

    @property
    def declared_input_shape(self) -> tuple | None:
        return self.input_shape

    def weight_specs(self, input_shape: tuple) -> list[WeightSpec]:
        shape = (self.input_dim, self.output_dim)
        check_weight_size("Embedding", "embeddings", shape)
        return [WeightSpec("embeddings", shape, self.embeddings_initializer, self.embeddings_regularizer,
                           self.embeddings_constraint)]

    def output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape, self.output_dim)

    def call(self, params: Sequence[Tensor], x: Tensor, mask: Tensor | None = None,
             activation: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        return ops.take(params[0], ops.cast(x, "int32"), axis=0)
