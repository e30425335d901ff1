"""model.layers: a model's layer as Keras gives it, its spec's attributes plus its weights and trainable."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import PolynnError
from .layers import Layer

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike

__all__ = ["BoundLayer"]


class BoundLayer:
    """Layer i of a model, as model.layers gives it (the same object on every call).

    It reads as its spec: every attribute and method (units, activation, get_config(), ...), repr,
    equality with an equal spec or BoundLayer, and isinstance against the spec's class
    (isinstance(model.layers[1], Dense); type() is BoundLayer, `spec` the spec). On top, Keras's
    per-layer state, read from and written to the model:

    - weights, trainable_weights, non_trainable_weights: lists of NumPy arrays (copies), where Keras
      gives variables; [] while the model's input shape is unknown, as Keras's unbuilt layer;
    - get_weights(), set_weights(list): checked as model.set_weights() is (count, shapes, real
      numbers; cast to the model's dtype), and atomic: a refused list changes nothing;
    - trainable, settable: the spec's field, replaced in the model (specs are immutable). Freezing
      or unfreezing takes effect at the next fit(), evaluate() or predict(), with the weights and
      the optimizer state kept, and without compile() again (Keras needs it on some backends).

    A layer taken out of its model with pop() still reads as its spec, but has no weights or
    trainable flag to read or set: those raise.
    """

    __slots__ = ("_model", "_popped")

    def __init__(self, model: Any) -> None:
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_popped", None)

    def _detach(self, spec: Layer) -> None:
        """Called by pop(): the layer still reads as its spec (repr, isinstance, equality), but has
        no model to read weights or trainable from."""
        object.__setattr__(self, "_popped", spec)

    def _index(self) -> int:
        index = None if self._popped is not None else self._model._layer_index(self)
        if index is None:
            raise PolynnError(f"this layer was removed from model {self._model.name!r} with pop(), so it has "
                              f"no weights or trainable flag to read; use a layer of model.layers, or its spec")
        return index

    @property
    def spec(self) -> Layer:
        """The layer's spec (immutable), as the model holds it now (as it was when popped)."""
        if self._popped is not None:
            return self._popped
        return self._model._layers[self._index()]

    # ---- reading as the spec -----------------------------------------------------------

    @property  # type: ignore[misc]  # isinstance() reads __class__: the spec's class
    def __class__(self) -> type:
        return type(self.spec)

    def __getattr__(self, name: str) -> Any:
        if name in BoundLayer.__slots__:  # not yet set: no spec to ask
            raise AttributeError(name)
        return getattr(self.spec, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "trainable":
            object.__setattr__(self, name, value)
            return
        setattr(self.spec, name, value)  # specs refuse it, saying what to do instead

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self.spec)) | {"spec", "weights", "trainable_weights", "non_trainable_weights",
                                              "get_weights", "set_weights"})

    def __repr__(self) -> str:
        return repr(self.spec)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, BoundLayer):
            other = other.spec
        if not isinstance(other, Layer):
            return NotImplemented
        return self.spec == other

    def __hash__(self) -> int:
        # Equal layers have one class; the spec's fields change with trainable, its class never.
        return hash(type(self.spec))

    def __reduce_ex__(self, protocol: Any) -> Any:
        # A copy (or a pickle) of a model's layer is its spec: the weights stay with the model.
        return self.spec.__reduce_ex__(protocol)

    # ---- Keras's per-layer state ---------------------------------------------------------

    @property
    def name(self) -> str:
        """The layer's name in its model, as Keras's layer.name: the name given, else the model's
        automatic one (dense, dense_1, ...). The spec's class variable `name` stays the registry
        name that backends look implementations up by (spec.name)."""
        return str(self._model.layer_names()[self._index()])

    @property
    def trainable(self) -> bool:
        return bool(self.spec.trainable)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._model._set_layer_trainable(self._index(), value)

    def get_weights(self) -> list[np.ndarray]:
        """The layer's weights as NumPy arrays in the model's dtype, in Keras order (kernel, bias;
        gamma, beta, moving_mean, moving_variance)."""
        return self._model._layer_weights(self._index())

    def set_weights(self, weights: list[ArrayLike]) -> None:
        """Replace the layer's weights: as many arrays as get_weights() gives, of the same shapes."""
        self._model._set_layer_weights(self._index(), weights)

    @property
    def weights(self) -> list[np.ndarray]:
        return self.get_weights()

    def _weights_where(self, trainable: bool) -> list[np.ndarray]:
        positions = self._model._layer_positions(self._index()) or []
        return [w for w, (_, ws) in zip(self.get_weights(), positions)
                if (self.trainable and ws.trainable) == trainable]

    @property
    def trainable_weights(self) -> list[np.ndarray]:
        """The layer's trainable weights: none when it is frozen (Keras)."""
        return self._weights_where(True)

    @property
    def non_trainable_weights(self) -> list[np.ndarray]:
        """All the layer's weights when it is frozen, else its non-trainable ones (moving statistics)."""
        return self._weights_where(False)
