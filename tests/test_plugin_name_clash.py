"""A plugin naming a component as one of polynn's own (a name polynn took up in a later release): polynn's
wins, the plugin's spec under that name and its implementations are left out with one warning naming
the plugin, and the rest of the plugin loads and works (docs/plugins.md, "Name clashes")."""

from __future__ import annotations

import dataclasses
import json
import warnings
from typing import ClassVar

import numpy as np
import pytest

import polynn
from polynn import _registry, hookimpl
from polynn.activations import Activation, ReLU
from polynn.errors import PluginError
from polynn.layers import Dense, Layer, LayerNormalization
from polynn.models import Sequential

DIST = "polynn-clasher 2.1"


@dataclasses.dataclass(frozen=True)
class OldLayerNorm(Layer):
    """A plugin's layer written before polynn had its own 'layer_normalization': y = x - mean(x)."""

    name: ClassVar[str] = "layer_normalization"

    def call(self, params, x, mask=None, activation=None):
        from polynn import ops

        return x - ops.mean(x, axis=-1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class Cube(Activation):
    """y = x**3; dy/dx = 3 x**2."""

    name: ClassVar[str] = "test_clash_cube"

    def call(self, x):
        return x * x * x


def _cube_numpy():
    return (lambda spec, x: x ** 3, lambda spec, x, y, dy: dy * 3 * x ** 2)


def _layer_numpy(backend, spec):
    raise AssertionError("the plugin's implementation of a name polynn owns must never run")


def register_old_plugin(plugins, *, raise_after=None, name="clasher"):
    """Register a plugin like polynn-extras 0.1.0: a spec polynn now has, one it has not, and their
    implementations (some before the spec, as a plugin may order them); return the warnings."""

    class Plugin:
        @hookimpl
        def polynn_register_components(self, register):
            register.implementation("numpy", "layer", "layer_normalization", _layer_numpy)
            register(OldLayerNorm)
            register(Cube)
            register.implementation("tensorflow", "layer", "LAYER_NORMALIZATION", _layer_numpy)
            register.implementation("jax", "layer", "layer_normalization", _layer_numpy)
            register.implementation("numpy", "activation", "test_clash_cube", _cube_numpy())
            if raise_after is not None:
                raise raise_after

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plugins.register_plugin(Plugin(), name, DIST)
    return [w for w in caught if not issubclass(w.category, RuntimeWarning)], plugins.failures()


def test_polynn_keeps_its_name_and_the_rest_of_the_plugin_loads(fresh_plugins):
    caught, failures = register_old_plugin(fresh_plugins)
    assert failures == []
    (warning,) = caught
    assert warning.category is UserWarning
    assert str(warning.message) == (
        "plugin 'clasher' (polynn-clasher 2.1): polynn now provides layer 'layer_normalization' itself "
        "(polynn.layers.LayerNormalization): the plugin's spec under that name "
        "(test_plugin_name_clash.OldLayerNorm) is ignored, and so are the implementations the plugin "
        "registers under that name (for backends 'jax', 'numpy', 'tensorflow'); "
        "use polynn.layers.LayerNormalization")
    assert _registry.lookup("layer", "layer_normalization") is LayerNormalization
    assert _registry.source_of(LayerNormalization) == "polynn"
    for backend in ("numpy", "tensorflow", "jax"):
        assert fresh_plugins.component_implementation(backend, "layer", "layer_normalization") is None
    # the plugin's other component and its implementation are there, and train
    assert _registry.lookup("activation", "test_clash_cube") is Cube
    assert fresh_plugins.component_implementation("numpy", "activation", "test_clash_cube") is not None
    model = Sequential([Dense(3, input_dim=2, activation="test_clash_cube"), LayerNormalization()])
    model.compile(optimizer="sgd", loss="mse", backend="numpy", dtype="float64", seed=0)
    x = np.random.default_rng(0).normal(size=(5, 2))
    kernel, bias, gamma, beta = model.get_weights()
    z = (x @ kernel + bias) ** 3
    centered = z - z.mean(axis=-1, keepdims=True)
    expected = gamma * centered / np.sqrt((centered ** 2).mean(axis=-1, keepdims=True) + 1e-3) + beta
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-12)
    model.fit(x, np.zeros((5, 3)), verbose=0)


def test_the_plugins_own_class_is_refused_by_name_when_used(fresh_plugins):
    register_old_plugin(fresh_plugins)
    expected = ("test_plugin_name_clash.OldLayerNorm: layer 'layer_normalization' of plugin 'clasher' "
                "(polynn-clasher 2.1) was left out when the plugins loaded, because polynn itself now provides "
                "layer 'layer_normalization' (polynn.layers.LayerNormalization), which wins over a plugin's "
                "spec of the same name; accepted: polynn.layers.LayerNormalization, or the name "
                "'layer_normalization'")
    layer = OldLayerNorm()  # building one is harmless: a plugin's module may, at import
    with pytest.raises(PluginError) as caught:
        Sequential([Dense(3, input_dim=2), layer])
    assert str(caught.value) == expected
    model = Sequential([Dense(3, input_dim=2)])
    with pytest.raises(PluginError, match="left out when the plugins loaded"):
        model.add(layer)
    with pytest.raises(PluginError, match="left out when the plugins loaded"):
        _registry.serialize(layer)  # as a model's config would name it: it would load as polynn's

    class Subclass(OldLayerNorm):
        pass

    with pytest.raises(PluginError, match="OldLayerNorm"):
        Sequential([Dense(3, input_dim=2), Subclass()])


def test_a_model_assembled_before_the_plugins_loaded_is_refused_at_compile(fresh_plugins):
    # Assembled before any plugin loaded, the class was unknown then; the plan is checked once they have.
    fresh_plugins.reset()
    model = Sequential([Dense(3, input_dim=2), OldLayerNorm()])
    model_clean = Sequential([Dense(3, input_dim=2), LayerNormalization()])
    register_old_plugin(fresh_plugins)
    with pytest.raises(PluginError, match=r"OldLayerNorm: layer 'layer_normalization' of plugin 'clasher'"):
        model.compile(optimizer="sgd", loss="mse", backend="numpy")
    model_clean.compile(optimizer="sgd", loss="mse", backend="numpy")


def test_a_config_naming_it_loads_polynns_class(fresh_plugins):
    register_old_plugin(fresh_plugins)
    config = {"layers": [{"class_name": "dense", "config": {"units": 3, "input_dim": 2}},
                         {"class_name": "layer_normalization", "config": {"epsilon": 0.01}}]}
    model = Sequential.from_config(json.loads(json.dumps(config)))
    assert type(model.layers[1].spec) is LayerNormalization and model.layers[1].spec.epsilon == 0.01


def test_a_hook_failing_after_the_clash_keeps_nothing(fresh_plugins):
    fresh_plugins.load()
    before = _registry.snapshot()
    caught, failures = register_old_plugin(fresh_plugins, raise_after=ValueError("later"))
    assert caught == []  # its failure is reported (a RuntimeWarning), not what it would have yielded
    (failure,) = failures
    assert "ValueError: later" in str(failure)
    assert _registry.snapshot() == before
    assert fresh_plugins.component_implementation("numpy", "activation", "test_clash_cube") is None
    assert fresh_plugins._state.dropped == {}
    # the same plugin, fixed, registers afterwards under another name as if nothing happened
    caught, failures = register_old_plugin(fresh_plugins, name="clasher_fixed")
    assert [f.plugin for f in failures] == ["clasher"]
    assert len(caught) == 1 and "plugin 'clasher_fixed'" in str(caught[0].message)


def test_strict_plugins_leave_the_clash_a_warning(fresh_plugins, monkeypatch):
    monkeypatch.setenv("POLYNN_STRICT_PLUGINS", "1")
    caught, failures = register_old_plugin(fresh_plugins)
    assert failures == [] and len(caught) == 1
    assert _registry.lookup("activation", "test_clash_cube") is Cube


def test_reset_forgets_what_was_left_out(fresh_plugins):
    register_old_plugin(fresh_plugins)
    fresh_plugins.reset()
    assert _registry.yielded(OldLayerNorm) == {} and not _registry.left_out(OldLayerNorm)
    assert not _registry.known("activation", "test_clash_cube")
    caught, _ = register_old_plugin(fresh_plugins)
    assert len(caught) == 1


@dataclasses.dataclass(frozen=True)
class LayerNormalization2(Activation):
    """Its class name is its own; one alias is polynn's: y = |x|."""

    name: ClassVar[str] = "test_clash_abs"
    aliases: ClassVar[tuple[str, ...]] = ("relu", "test_clash_absolute")

    def call(self, x):
        from polynn import ops

        return ops.abs(x)


@dataclasses.dataclass(frozen=True)
class Sigmoid(Activation):
    """Its name is its own; its class name, lower-cased, is polynn's sigmoid's key: y = 2 x."""

    name: ClassVar[str] = "test_clash_double"

    def call(self, x):
        return 2 * x


def test_a_spec_keeps_its_own_name_when_only_an_alias_or_class_name_is_polynns(fresh_plugins):
    class Plugin:
        @hookimpl
        def polynn_register_components(self, register):
            register(LayerNormalization2)
            register(Sigmoid)
            register.implementation("numpy", "activation", "relu", _layer_numpy)  # under the lost alias
            register.implementation("numpy", "activation", "test_clash_abs", (
                lambda spec, x: np.abs(x), lambda spec, x, y, dy: dy * np.sign(x)))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fresh_plugins.register_plugin(Plugin(), "aliaser", DIST)
    assert fresh_plugins.failures() == []
    assert [str(w.message) for w in caught] == [
        "plugin 'aliaser' (polynn-clasher 2.1): its activation 'test_clash_abs' "
        "(test_plugin_name_clash.LayerNormalization2) is registered under its name, but polynn's own activations "
        "now hold 'relu' (polynn.activations.ReLU): those names mean polynn's, and so are the implementations the "
        "plugin registers under those names (for backends 'numpy')",
        "plugin 'aliaser' (polynn-clasher 2.1): its activation 'test_clash_double' "
        "(test_plugin_name_clash.Sigmoid) is registered under its name, but polynn's own activations now hold "
        "'sigmoid' (polynn.activations.Sigmoid): those names mean polynn's"]
    assert _registry.lookup("activation", "relu") is ReLU
    assert _registry.lookup("activation", "test_clash_abs") is LayerNormalization2
    assert _registry.lookup("activation", "test_clash_absolute") is LayerNormalization2
    assert _registry.lookup("activation", "sigmoid") is polynn.activations.Sigmoid
    assert _registry.lookup("activation", "test_clash_double") is Sigmoid
    assert fresh_plugins.component_implementation("numpy", "activation", "relu") is None
    model = Sequential([Dense(2, input_dim=2, activation=LayerNormalization2())])
    model.compile(optimizer="sgd", loss="mse", backend="numpy", dtype="float64")
    assert Sequential.from_config(json.loads(json.dumps(model.get_config()))).layers == model.layers
    x = np.array([[1.0, -2.0]])
    kernel, bias = model.get_weights()
    np.testing.assert_allclose(model.predict(x, verbose=0), np.abs(x @ kernel + bias), rtol=1e-14)


def test_an_implementation_for_polynns_own_component_is_still_accepted(fresh_plugins):
    # A plugin without a spec of that name adds implementations of polynn's components (§5).
    class Plugin:
        @hookimpl
        def polynn_register_components(self, register):
            register.implementation("test_clash_backend", "layer", "layer_normalization", _layer_numpy)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fresh_plugins.register_plugin(Plugin(), "adder", DIST)
    assert fresh_plugins.component_implementation("test_clash_backend", "layer", "layer_normalization") is _layer_numpy


def test_polynns_own_class_handed_to_register_stays_polynns(fresh_plugins):
    class Plugin:
        @hookimpl
        def polynn_register_components(self, register):
            register(ReLU)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fresh_plugins.register_plugin(Plugin(), "reuser", DIST)
    assert fresh_plugins.failures() == [] and _registry.source_of(ReLU) == "polynn"
    fresh_plugins.reset()
    assert _registry.lookup("activation", "relu") is ReLU
