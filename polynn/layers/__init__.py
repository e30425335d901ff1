"""Layer specs in Keras's spelling: each layer's math in its docstring, written once on polynn.ops."""

from .convolutional import Conv1D, Conv2D, Convolution1D, Convolution2D
from .core import Activation, Dense, Dropout, Input, InputLayer, Layer, WeightSpec, get
from .embedding import Embedding
from .normalization import BatchNormalization, LayerNormalization
from .pooling import (
    AveragePooling1D,
    AveragePooling2D,
    AvgPool1D,
    AvgPool2D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    GlobalMaxPool1D,
    GlobalMaxPool2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    MaxPool1D,
    MaxPool2D,
    MaxPooling1D,
    MaxPooling2D,
)
from .recurrent import GRU, LSTM, SimpleRNN
from .reshaping import Flatten, Reshape

__all__ = ["Layer", "Input", "InputLayer", "Dense", "Dropout", "Activation", "WeightSpec", "get",
           # normalization
           "BatchNormalization", "LayerNormalization",
           # convolution, pooling and reshaping
           "Conv1D", "Conv2D", "Convolution1D", "Convolution2D", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D",
           "AveragePooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
           "GlobalMaxPooling2D", "MaxPool1D", "MaxPool2D", "AvgPool1D", "AvgPool2D", "GlobalAvgPool1D",
           "GlobalAvgPool2D", "GlobalMaxPool1D", "GlobalMaxPool2D", "Flatten", "Reshape",
           # embedding and recurrent
           "Embedding", "SimpleRNN", "LSTM", "GRU"]


def _present_as_public() -> None:
    """Each class names the module users import it from (polynn.layers.Dense), in reprs, errors
    and pickles, wherever in the package it is written (as Keras's keras_export does)."""
    for name in __all__:
        value = globals()[name]
        if isinstance(value, type) and value.__module__.startswith(__name__ + "."):
            value.__module__ = __name__


_present_as_public()
