"""polynn: write a neural network once, in the Keras spelling, and train it on any backend."""

from . import (
    activations,
    callbacks,
    constraints,
    distribution,
    errors,
    initializers,
    layers,
    losses,
    metrics,
    models,
    ops,
    optimizers,
    regularizers,
    schedules,
)
from ._custom import register
from ._version import __version__
from .hookspecs import hookimpl
from .models import Sequential, load_model
from .random import get_random_seed, set_random_seed

__all__ = [
    "__version__",
    "Sequential",
    "load_model",
    "activations",
    "callbacks",
    "constraints",
    "distribution",
    "errors",
    "get_random_seed",
    "hookimpl",
    "initializers",
    "layers",
    "losses",
    "metrics",
    "models",
    "ops",
    "optimizers",
    "register",
    "regularizers",
    "schedules",
    "set_random_seed",
]
