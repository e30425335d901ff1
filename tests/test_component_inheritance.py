"""A plugin's spec class that subclasses a built-in without changing its math is computed as that built-in."""

from __future__ import annotations

import dataclasses
import warnings
from typing import ClassVar

import numpy as np

from polynn import hookimpl
from polynn.losses import BinaryCrossentropy


@dataclasses.dataclass(frozen=True)
class RenamedCrossentropy(BinaryCrossentropy):
    """The same loss under another name."""

    name: ClassVar[str] = "renamed_crossentropy"
    aliases: ClassVar[tuple] = ()


@dataclasses.dataclass(frozen=True)
class DoubledCrossentropy(BinaryCrossentropy):
    """Another loss: it overrides the math, so the parent's implementations must not serve it."""

    name: ClassVar[str] = "doubled_crossentropy"
    aliases: ClassVar[tuple] = ()

    def call(self, y_true, y_pred):
        return 2 * super().call(y_true, y_pred)


def _register(plugins):
    class Plugin:
        @hookimpl
        def polynn_register_components(self, register):
            register(RenamedCrossentropy)
            register(DoubledCrossentropy)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        plugins.register_plugin(Plugin(), "inheriting_plugin", "polynn-inheriting 1.0")
    assert [f for f in plugins.failures() if f.plugin == "inheriting_plugin"] == []


def test_a_subclass_that_keeps_the_math_gets_the_parents_implementation(fresh_plugins):
    _register(fresh_plugins)
    numpy = fresh_plugins.get_backend("numpy")
    assert numpy.implementation("loss", "renamed_crossentropy") is numpy.implementation("loss", "binary_crossentropy")


def test_a_subclass_that_changes_the_math_gets_its_own_shared_call(fresh_plugins):
    _register(fresh_plugins)
    numpy = fresh_plugins.get_backend("numpy")
    value, vjp = numpy.implementation("loss", "doubled_crossentropy")
    parent_value, parent_vjp = numpy.implementation("loss", "binary_crossentropy")
    y = np.array([[0.0], [1.0], [1.0]])
    p = np.array([[0.2], [0.7], [0.4]])
    g = np.ones(3)
    np.testing.assert_allclose(value(DoubledCrossentropy(), y, p), 2 * parent_value(BinaryCrossentropy(), y, p),
                               rtol=1e-15)
    np.testing.assert_allclose(vjp(DoubledCrossentropy(), y, p, g), 2 * parent_vjp(BinaryCrossentropy(), y, p, g),
                               rtol=1e-15)
