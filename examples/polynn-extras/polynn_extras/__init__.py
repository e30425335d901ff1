"""polynn-extras: LayerNormalization and squareplus, registered through polynn's component hook."""

from polynn import hookimpl

from .specs import LayerNormalization, Squareplus

__all__ = ["LayerNormalization", "Squareplus"]


@hookimpl
def polynn_register_components(register):
    from . import numpy_impl, tensorflow_impl, torch_impl

    register(LayerNormalization)
    register(Squareplus)
    for backend, module in (("numpy", numpy_impl), ("tensorflow", tensorflow_impl), ("torch", torch_impl)):
        register.implementation(backend, "layer", "layer_normalization", module.LayerNormalization)
        register.implementation(backend, "activation", "squareplus", module.SQUAREPLUS)
