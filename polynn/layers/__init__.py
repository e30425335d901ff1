"""Layer specs in Keras's spelling: each layer's math in its docstring, written once on polynn.ops."""

from .core import Activation, Dense, Dropout, Input, InputLayer, Layer, WeightSpec, get
from .normalization import BatchNormalization, LayerNormalization

__all__ = ["Layer", "Input", "InputLayer", "Dense", "Dropout", "Activation", "WeightSpec", "get",
           "BatchNormalization", "LayerNormalization"]
