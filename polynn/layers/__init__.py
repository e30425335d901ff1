"""Layer specs in Keras's spelling: each layer's math in its docstring, written once on polynn.ops."""

from .core import Activation, Dense, Dropout, Input, InputLayer, Layer, WeightSpec, get
from .normalization import BatchNormalization, LayerNormalization

__all__ = ["Layer", "Input", "InputLayer", "Dense", "Dropout", "Activation", "WeightSpec", "get",
           "BatchNormalization", "LayerNormalization"]


def _present_as_public() -> None:
    """Each class names the module users import it from (polynn.layers.Dense), in reprs, errors
    and pickles, wherever in the package it is written (as Keras's keras_export does)."""
    for name in __all__:
        value = globals()[name]
        if isinstance(value, type) and value.__module__.startswith(__name__ + "."):
            value.__module__ = __name__


_present_as_public()
