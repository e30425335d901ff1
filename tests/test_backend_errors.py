"""An error a backend raises while a user's model runs names the backend and its plugin; a missing
component names every installed backend that has it."""

from __future__ import annotations

import numpy as np
import pytest

from polynn import Sequential, hookimpl, plugins
from polynn.errors import InvalidArgumentError, PluginError, UnsupportedComponentError
from polynn.layers import Dense
from polynn_numpy.backend import NumpyBackend


class _BugError(TypeError):
    pass


class FailingBackend(NumpyBackend):
    """A NumPy copy whose Runtime method `failing` raises `error` (set per test)."""

    name = "failing"
    failing = "train_steps"
    error: BaseException = _BugError("unsupported operand type(s)")

    def compile(self, plan):
        runtime = super().compile(plan)

        def fail(*args, **kwargs):
            raise type(self).error

        setattr(runtime, type(self).failing, fail)
        return runtime


class NoTanhBackend(NumpyBackend):
    name = "no_tanh"
    implementations = {**NumpyBackend.implementations,
                       "activation": {k: v for k, v in NumpyBackend.implementations["activation"].items()
                                      if k != "tanh"}}
    ops = None


class _Plugin:
    @hookimpl
    def polynn_register_backends(self, register):
        register("failing", FailingBackend, engine="numpy", install="polynn")
        register("no_tanh", NoTanhBackend, engine="numpy", install="polynn")


@pytest.fixture
def failing(fresh_plugins, monkeypatch):
    plugins.register_plugin(_Plugin(), "failing-plugin", "polynn-failing 1.0")
    return lambda method, error: (monkeypatch.setattr(FailingBackend, "failing", method),
                                  monkeypatch.setattr(FailingBackend, "error", error))


def _model(backend="failing"):
    model = Sequential([Dense(2, input_dim=3, activation="tanh")])
    model.compile("adam", "mse", backend=backend, dtype="float64", seed=0)
    return model


X, Y = np.random.RandomState(0).normal(size=(8, 3)), np.zeros((8, 2))


@pytest.mark.parametrize("method, call", [
    ("train_steps", lambda m: m.fit(X, Y, batch_size=4, verbose=0)),
    ("test_steps", lambda m: m.evaluate(X, Y, verbose=0)),
    ("predict_steps", lambda m: m.predict(X, verbose=0)),
    ("put_data", lambda m: m.fit(X, Y, verbose=0)),
])
def test_an_error_inside_a_runtime_call_names_the_backend_and_its_plugin(failing, method, call):
    failing(method, _BugError("unsupported operand type(s)"))
    model = _model()
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(PluginError) as info:
        call(model)
    message = str(info.value)
    assert message.startswith("backend 'failing' from plugin 'failing-plugin' (polynn-failing 1.0) raised "
                              "_BugError: unsupported operand type(s) in Runtime.")
    assert method in message
    assert isinstance(info.value.__cause__, _BugError)
    # fit's rollback: the model is as it was before the failing block.
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert model.iterations == 0


def test_the_failing_steps_are_named(failing):
    failing("unused", _BugError("boom"))
    model = _model()
    model.fit(X, Y, batch_size=4, verbose=0)  # steps 1 and 2
    runtime = model._compiled.runtime

    def train_steps(*args):
        raise _BugError("boom")

    runtime.train_steps = train_steps
    with pytest.raises(PluginError, match=r"train_steps during fit \(epoch 1, training steps 3 to 4\)"):
        model.fit(X, Y, batch_size=4, verbose=0)
    assert model.iterations == 2


@pytest.mark.parametrize("error", [KeyboardInterrupt(), InvalidArgumentError("x", 1, "nothing")])
def test_interrupts_and_polynns_own_errors_pass_unwrapped(failing, error):
    failing("train_steps", error)
    with pytest.raises(type(error)) as info:
        _model().fit(X, Y, verbose=0)
    assert info.value is error


def test_a_missing_component_names_backends_not_loaded_yet(fresh_plugins):
    plugins.register_plugin(_Plugin(), "failing-plugin", "polynn-failing 1.0")
    assert all(e.instance is None for e in plugins.backend_entries())  # nothing loaded yet
    with pytest.raises(UnsupportedComponentError) as info:
        _model("no_tanh")
    installed = [e.name for e in plugins.backend_entries() if e.engine_installed() and e.name != "no_tanh"]
    assert f"backends implementing it: {', '.join(sorted(installed))}" in str(info.value)
    assert "numpy" in installed
