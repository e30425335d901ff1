"""polynn-extras on every backend it implements: agreement with the NumPy reference, gradients, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import polynn
from polynn import plugins
from polynn.errors import UnsupportedComponentError
from polynn.layers import Dense
from polynn.models import Sequential

pytest.importorskip("polynn_extras", reason="the example plugin is not installed: pip install ./examples/polynn-extras")
from polynn_extras import (  # noqa: E402
    RMSNormalization,
    Squareplus,
    numpy_impl,  # noqa: E402
)

BACKENDS = ["numpy", "tensorflow", "torch"]


def _available(name):
    entry = {e.name: e for e in plugins.backend_entries()}.get(name)
    return entry is not None and entry.engine_installed()


def _train(backend, dtype, layers, epochs=2):
    rng = np.random.default_rng(0)
    x, y = rng.random((96, 6)), rng.random((96, 2))
    model = Sequential(layers)
    model.compile(optimizer="adam", loss="mse", backend=backend, dtype=dtype, seed=4)
    history = model.fit(x, y, epochs=epochs, batch_size=16, verbose=0)
    return history.history["loss"], model.get_weights(), model.predict(x, verbose=0)


def _model():
    return [Dense(8, input_dim=6, activation=Squareplus(b=2.0)), RMSNormalization(), Dense(2)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_agrees_with_numpy_in_float64(backend):
    if not _available(backend):
        pytest.skip(f"{backend} is not installed")
    ref_loss, ref_weights, ref_pred = _train("numpy", "float64", _model())
    loss, weights, pred = _train(backend, "float64", _model())
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-9)
    for w, r in zip(weights, ref_weights):
        np.testing.assert_allclose(w, r, atol=1e-9, rtol=0)
    np.testing.assert_allclose(pred, ref_pred, atol=1e-9, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_runs_close_to_the_reference(backend):
    if not _available(backend):
        pytest.skip(f"{backend} is not installed")
    ref_loss, _, ref_pred = _train("numpy", "float32", _model())
    loss, _, pred = _train(backend, "float32", _model())
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-4)  # the conformance kit's float32 loss tolerance
    np.testing.assert_allclose(pred, ref_pred, atol=2e-2)


def _finite_difference(f, x, h=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        grad[i] = (f(x + e) - f(x - e)) / (2 * h)
    return grad


@pytest.mark.parametrize("spec", [RMSNormalization(), RMSNormalization(epsilon=0.1), RMSNormalization(axis=1)])
def test_rms_normalization_gradients_match_finite_differences(spec):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 4, 5))
    params = [rng.normal(size=w.shape) for w in spec.weight_specs((4, 5))]
    dy = rng.normal(size=x.shape)
    layer = numpy_impl.RMSNormalization(None, spec)
    y, cache = layer.forward(params, x)
    dx, grads = layer.backward(params, cache, dy)
    np.testing.assert_allclose(dx, _finite_difference(lambda v: np.sum(dy * layer.forward(params, v)[0]), x),
                               atol=1e-8)
    for k, p in enumerate(params):
        def f(v, k=k):
            changed = list(params)
            changed[k] = v
            return np.sum(dy * layer.forward(changed, x)[0])
        np.testing.assert_allclose(grads[k], _finite_difference(f, p), atol=1e-8)


def test_rms_normalization_computes_as_its_docstring_says():
    x = np.random.default_rng(2).normal(size=(4, 3, 5))
    scale = np.array([0.5, 1.0, 2.0])
    y, _ = numpy_impl.RMSNormalization(None, RMSNormalization(axis=1, epsilon=0.25)).forward([scale], x)
    expected = x / np.sqrt(np.mean(x * x, axis=1, keepdims=True) + 0.25) * scale.reshape(1, 3, 1)
    np.testing.assert_allclose(y, expected, rtol=1e-14)


def test_rms_normalization_refuses_the_batch_axis_and_axes_outside_the_input():
    from polynn.errors import InvalidArgumentError

    for axis in (0, 3, -3):
        with pytest.raises(InvalidArgumentError, match="feature axis"):
            RMSNormalization(axis=axis).output_shape((4, 5))
    with pytest.raises(InvalidArgumentError, match="epsilon"):
        RMSNormalization(epsilon=0)


def test_squareplus_gradient_matches_finite_differences():
    spec = Squareplus(b=3.0)
    forward, backward = numpy_impl.SQUAREPLUS
    x = np.linspace(-4, 4, 17)
    dy = np.cos(x)
    np.testing.assert_allclose(backward(spec, x, forward(spec, x), dy),
                               _finite_difference(lambda v: np.sum(dy * forward(spec, v)), x), atol=1e-8)


def test_specs_resolve_by_name_and_round_trip_through_json():
    dense = Dense(4, activation="squareplus")
    assert dense.activation == Squareplus()
    model = Sequential([Dense(4, input_dim=3), RMSNormalization(epsilon=1e-5, axis=1)])
    config = json.loads(json.dumps(model.get_config()))
    assert Sequential.from_config(config).layers == model.layers


def test_compiling_on_a_backend_without_an_implementation_names_component_and_backend():
    from polynn_numpy.backend import NumpyBackend

    class BareBackend(NumpyBackend):
        name = "bare"

    class Plugin:
        @polynn.hookimpl
        def polynn_register_backends(self, register):
            register("bare", BareBackend, engine="numpy", install="polynn")

    plugins.register_plugin(Plugin(), name="bare-backend-for-test")
    try:
        model = Sequential([Dense(4, input_dim=3), RMSNormalization()])
        with pytest.raises(UnsupportedComponentError) as caught:
            model.compile(loss="mse", backend="bare")
    finally:
        plugins.reset()  # the next use rescans the installed plugins, without the test's backend
    message = str(caught.value)
    assert "rms_normalization" in message and "'bare'" in message


def test_rms_normalization_takes_numpy_integers_as_integers():
    layer = RMSNormalization(axis=np.int64(1))
    assert layer.axis == 1 and type(layer.axis) is int
    assert RMSNormalization.from_config(json.loads(json.dumps(layer.get_config()))) == layer
