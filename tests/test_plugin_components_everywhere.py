"""A plugin's layer or optimizer written only on polynn.ops (call, update) trains on every backend,
as the built-in it restates does: NumPy differentiates the layer with its autodiff, torch updates
its flat buffers in place with the shared rule."""

from __future__ import annotations

import dataclasses
import importlib.util
import warnings
from typing import ClassVar

import numpy as np
import pytest

from polynn import hookimpl, ops
from polynn.layers import Dense
from polynn.models import Sequential
from polynn.optimizers import SGD


@dataclasses.dataclass(frozen=True)
class OpsDense(Dense):
    """Dense restated on polynn.ops: a new component (it overrides call), the same math."""

    name: ClassVar[str] = "ops_dense"
    aliases: ClassVar[tuple] = ()

    def call(self, params, x, mask=None, activation=None):
        z = ops.matmul(x, params[0])
        if self.use_bias:
            z = z + params[1]
        return (activation or self.activation.call)(z)


@dataclasses.dataclass(frozen=True)
class OpsSGD(SGD):
    """SGD with momentum restated on polynn.ops, so no backend has a rule of its own for it."""

    name: ClassVar[str] = "ops_sgd"
    aliases: ClassVar[tuple] = ()

    def update(self, w, g, slots, scalars):
        m = slots[0] * self.effective_momentum - g * scalars["lr"]
        return w + m, (m,)


@dataclasses.dataclass(frozen=True)
class NormalizedSGD(SGD):
    """A rule that reads the whole weight: each step has length lr, w - lr * g / ||g||."""

    name: ClassVar[str] = "normalized_sgd"
    aliases: ClassVar[tuple] = ()

    def slot_names(self):
        return ()

    def update(self, w, g, slots, scalars):
        return w - scalars["lr"] * g / (ops.sqrt(ops.sum(g * g)) + 1e-12), ()


def _backends():
    return [pytest.param(name, marks=() if importlib.util.find_spec(name) else pytest.mark.skip(f"no {name}"))
            for name in ("numpy", "torch", "tensorflow")]


@pytest.fixture
def registered(fresh_plugins):
    class Plugin:
        @hookimpl
        def polynn_register_components(self, register):
            register(OpsDense)
            register(OpsSGD)
            register(NormalizedSGD)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fresh_plugins.register_plugin(Plugin(), "ops_components", "polynn-ops-components 1.0")
    assert [f for f in fresh_plugins.failures() if f.plugin == "ops_components"] == []
    return fresh_plugins


def _fit(backend, dense, optimizer):
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(48, 4)), rng.normal(size=(48, 2))
    model = Sequential([dense(6, input_dim=4, activation="tanh", activity_regularizer="l2"), dense(2)])
    model.compile(optimizer=optimizer, loss="mse", backend=backend, dtype="float64", seed=3)
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    return history.history["loss"], model.get_weights(), model.predict(x, verbose=0)


@pytest.mark.parametrize("backend", _backends())
def test_a_layer_written_only_on_ops_trains_as_the_builtin(registered, backend):
    engine = registered.get_backend(backend)
    # A new component: the shared call runs, not the built-in Dense's implementation.
    assert engine.own_implementation("layer", "ops_dense") is None
    assert engine.implementation("layer", "ops_dense") is engine.shared_implementation("layer", "ops_dense")
    losses, weights, outputs = _fit(backend, OpsDense, SGD(0.05, momentum=0.9))
    ref_losses, ref_weights, ref_outputs = _fit(backend, Dense, SGD(0.05, momentum=0.9))
    # Autodiff (NumPy) or the shared layer (torch's Dense override is one addmm) round differently.
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-12)
    for got, want in zip(weights, ref_weights):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(outputs, ref_outputs, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("backend", _backends())
def test_an_optimizer_written_only_on_ops_trains_as_the_builtin(registered, backend):
    assert registered.get_backend(backend).own_implementation("optimizer", "ops_sgd") is None
    losses, weights, _ = _fit(backend, Dense, OpsSGD(0.05, momentum=0.9))
    ref_losses, ref_weights, _ = _fit(backend, Dense, SGD(0.05, momentum=0.9))
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-12)
    for got, want in zip(weights, ref_weights):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-14)


def test_a_rule_reading_the_whole_weight_gets_one_weight_at_a_time_on_every_backend(registered):
    # NumPy and torch update flat buffers chunk by chunk; a shared rule must still see each weight.
    runs = {backend: _fit(backend, Dense, NormalizedSGD(0.05)) for backend in ("numpy", "torch", "tensorflow")
            if importlib.util.find_spec(backend)}
    reference_losses, reference_weights, _ = runs.pop("numpy")
    # One step moves each weight by exactly lr: per weight, not per concatenation of all of them.
    assert len(reference_weights) == 4
    for backend, (losses, weights, _) in runs.items():
        np.testing.assert_allclose(losses, reference_losses, rtol=1e-12, err_msg=backend)
        for got, want in zip(weights, reference_weights):
            np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-14, err_msg=backend)


def test_one_step_of_a_rule_reading_the_whole_weight_moves_each_weight_by_the_rate(registered):
    for backend in ("numpy", "torch", "tensorflow"):
        if not importlib.util.find_spec(backend):
            continue
        model = Sequential([Dense(3, input_dim=4), Dense(2)])
        model.compile(optimizer=NormalizedSGD(0.05), loss="mse", backend=backend, dtype="float64", seed=1)
        before = model.get_weights()
        x = np.linspace(-1, 1, 32).reshape(8, 4)
        model.fit(x, np.ones((8, 2)), batch_size=8, epochs=1, verbose=0, shuffle=False)
        moved = [np.sqrt(np.sum((a - b) ** 2)) for a, b in zip(model.get_weights(), before)]
        np.testing.assert_allclose(moved, 0.05, rtol=1e-9, err_msg=backend)
