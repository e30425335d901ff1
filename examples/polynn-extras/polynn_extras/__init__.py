"""polynn-extras: RMSNormalization and squareplus, registered through polynn's component hook."""

from polynn import hookimpl

from .specs import RMSNormalization, Squareplus

__all__ = ["RMSNormalization", "Squareplus"]


@hookimpl
def polynn_register_components(register):
    from . import numpy_impl, tensorflow_impl, torch_impl

    register(RMSNormalization)
    register(Squareplus)
    for backend, module in (("numpy", numpy_impl), ("tensorflow", tensorflow_impl), ("torch", torch_impl)):
        register.implementation(backend, "layer", "rms_normalization", module.RMSNormalization)
        register.implementation(backend, "activation", "squareplus", module.SQUAREPLUS)
