"""Layer specs in Keras's spelling: each layer's math in its docstring, written once on polynn.ops."""

from .core import Activation, Dense, Dropout, Input, InputLayer, Layer, WeightSpec, get
from .embedding import Embedding
from .recurrent import GRU, LSTM, SimpleRNN

__all__ = ["Layer", "Input", "InputLayer", "Dense", "Dropout", "Activation", "WeightSpec", "get",
           "Embedding", "SimpleRNN", "LSTM", "GRU"]
