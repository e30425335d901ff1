"""Layer specs in Keras's spelling: each layer's math in its docstring, written once on polynn.ops."""

from .convolutional import Conv1D, Conv2D, Convolution1D, Convolution2D
from .core import Activation, Dense, Dropout, Input, InputLayer, Layer, WeightSpec, get
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
from .reshaping import Flatten, Reshape

__all__ = ["Layer", "Input", "InputLayer", "Dense", "Dropout", "Activation", "WeightSpec", "get",
           # convolution, pooling and reshaping
           "Conv1D", "Conv2D", "Convolution1D", "Convolution2D", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D",
           "AveragePooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
           "GlobalMaxPooling2D", "MaxPool1D", "MaxPool2D", "AvgPool1D", "AvgPool2D", "GlobalAvgPool1D",
           "GlobalAvgPool2D", "GlobalMaxPool1D", "GlobalMaxPool2D", "Flatten", "Reshape"]
