"""Regularizers, constraints and layers written once on polynn.ops, checked on NumPy against its own versions."""

from __future__ import annotations

import numpy as np
import pytest

from polynn import _registry, plugins
from polynn import ops as polynn_ops
from polynn._spec import Component
from polynn.backend import Backend, SharedLayer
from polynn.conformance import options
from polynn.layers import Activation, Dense, Dropout, Input
from polynn.models import Sequential
from polynn_numpy import autodiff
from polynn_numpy import ops as numpy_ops

DTYPES = ("float64", "float32")


def _kit_specs(kind):
    """Every spec of `kind` the kit's option tables build: each built-in class in each of its
    configurations, and those the layer configurations hand to a layer."""
    found = []
    for cls in _registry.builtin_specs(kind):
        found += [cls(**dict(config.kwargs)) for config in options.configs(kind, cls)]
    nested = [value for config in options.LAYER for _, value in config.kwargs]
    found += [value for value in nested if isinstance(value, Component) and value.kind == kind]
    return list(dict.fromkeys(found))


REGULARIZERS = _kit_specs("regularizer")
CONSTRAINTS = _kit_specs("constraint")


def _bounds(spec):
    return sorted({v for v in (getattr(spec, "min_value", None), getattr(spec, "max_value", None)) if v is not None})


def _probe(spec, dtype):
    """A weight whose slices along the spec's axis (the reduced one) include all zeros, -0.0, a single
    entry of each norm bound (so the norm is exactly the bound) and its negative, and random values."""
    rng = np.random.default_rng(7)
    slices = [np.zeros(4), np.array([-0.0, 0.0, 0.5, -0.25])]
    for bound in _bounds(spec):
        slices += [np.array([bound, 0.0, 0.0, 0.0]), np.array([0.0, -bound, 0.0, 0.0])]
    slices += list(rng.normal(size=(3, 4))) + list(rng.normal(size=(2, 4)) * 3)
    w = np.stack(slices, axis=1).astype(dtype)  # slices are columns: reduced over axis 0
    if getattr(spec, "axis", 0) in (1, -1):
        w = np.ascontiguousarray(w.T)
    return w


def test_the_kit_specs_cover_every_builtin_and_bound():
    assert {type(s).__name__ for s in REGULARIZERS} == {c.__name__ for c in _registry.builtin_specs("regularizer")}
    assert {type(s).__name__ for s in CONSTRAINTS} == {c.__name__ for c in _registry.builtin_specs("constraint")}
    assert any(getattr(s, "axis", 0) == 1 for s in CONSTRAINTS)
    w = _probe(CONSTRAINTS[0], "float64")
    norms = np.sqrt(np.sum(w * w, axis=0))
    assert 0.0 in norms and all(b in norms for b in _bounds(CONSTRAINTS[0]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", REGULARIZERS, ids=repr)
def test_shared_regularizer_matches_numpy_values_and_gradients(spec, dtype):
    backend = plugins.get_backend("numpy")
    own_penalty, own_gradient = backend.implementations["regularizer"][spec.name]
    penalty, gradient = backend.shared_implementation("regularizer", spec.name)
    w = _probe(spec, dtype)
    assert np.count_nonzero(w == 0) >= 5
    value, own_value = penalty(spec, w), own_penalty(spec, w)
    assert value.dtype == own_value.dtype == np.dtype(dtype)
    assert value == own_value
    g, own_g = gradient(spec, w), own_gradient(spec, w)
    assert g.dtype == own_g.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(g, own_g)
    # abs's slope at 0 is 0: a zero weight gets only the L2 part of the gradient, which is 0 there.
    assert np.all(g[w == 0] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", CONSTRAINTS, ids=repr)
def test_shared_constraint_matches_numpy(spec, dtype):
    backend = plugins.get_backend("numpy")
    own = backend.implementations["constraint"][spec.name]
    project = backend.shared_implementation("constraint", spec.name)
    w = _probe(spec, dtype)
    got, expected = project(spec, w), own(spec, w)
    assert got.dtype == expected.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))


def test_shared_constraint_keeps_a_norm_at_its_bound():
    """A slice whose norm is exactly max_value keeps its norm up to the epsilon of the division."""
    backend = plugins.get_backend("numpy")
    for spec in CONSTRAINTS:
        if spec.name not in ("max_norm", "min_max_norm") or spec.axis != 0:
            continue
        w = _probe(spec, "float64")
        got = backend.shared_implementation("constraint", spec.name)(spec, w)
        column = next(k for k in range(w.shape[1]) if w[0, k] == spec.max_value)
        assert got[0, column] == pytest.approx(spec.max_value * spec.max_value / (1e-7 + spec.max_value), rel=1e-15)


# ---- layers ----------------------------------------------------------------------------------


def _numpy_call(function, like, *args):
    with polynn_ops.using(numpy_ops), numpy_ops.float_dtype(like.dtype):
        return function(*args)


def _layer_cases(dtype):
    rng = np.random.default_rng(3)
    x2 = rng.normal(size=(5, 6)).astype(dtype)
    x3 = rng.normal(size=(5, 3, 6)).astype(dtype)
    x2[0, :2] = 0
    kernel, bias = rng.normal(size=(6, 4)).astype(dtype), rng.normal(size=(4,)).astype(dtype)
    mask = (rng.random((5, 6)) > 0.3).astype(dtype) / np.asarray(0.7, dtype)
    return [
        (Dense(4, activation="relu"), [kernel, bias], x2, None),
        (Dense(4, activation="tanh", use_bias=False), [kernel], x2, None),
        (Dense(4, activation="softplus"), [kernel, bias], x3, None),
        (Dense(1, activation="sigmoid"), [kernel[:, :1], bias[:1]], x2, None),
        (Dropout(0.3), [], x2, mask),
        (Dropout(0.3), [], x2, None),
        (Activation("elu"), [], x2, None),
        (Input(shape=(6,)), [], x2, None),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_shared_layer_calls_match_numpy_layers(dtype):
    """Each layer's call on NumPy's ops, differentiated by its autodiff, against NumPy's hand-written
    layer: the same outputs, and the same input and weight gradients to rounding."""
    backend = plugins.get_backend("numpy")
    rtol = 1e-13 if dtype == "float64" else 1e-5
    for spec, params, x, mask in _layer_cases(dtype):
        own = backend.implementations["layer"][spec.name](backend, spec)
        y, cache = own.forward(params, x, mask)
        got = np.asarray(autodiff.value_of(_numpy_call(spec.call, x, params, x, mask)))
        assert got.dtype == y.dtype, spec
        np.testing.assert_array_equal(got, y, err_msg=repr(spec))
        dy = np.random.default_rng(4).normal(size=y.shape).astype(dtype)
        dx, grads = own.backward(params, cache, dy)
        # the lambda runs within this pass of the loop, so it sees this spec and mask
        shared = _numpy_call(autodiff.vjp, x, lambda xt, *ps: spec.call(list(ps), xt, mask),  # noqa: B023
                             (x, *params), dy)
        for a, b in zip(shared, [dx, *grads], strict=True):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.max(np.abs(b)), err_msg=repr(spec))


def test_layer_call_takes_the_runtime_activation():
    """The activation a runtime passes replaces the spec's own (an override or a user function)."""
    x = np.linspace(-2, 2, 12).reshape(3, 4)
    kernel = np.eye(4)
    seen = []

    def activation(z):
        seen.append(z)
        return z * 3

    y = _numpy_call(Dense(4, activation="relu").call, x, [kernel, np.zeros(4)], x, None, activation)
    np.testing.assert_array_equal(y, 3 * x)
    np.testing.assert_array_equal(seen[0], x)
    np.testing.assert_array_equal(_numpy_call(Activation("relu").call, x, [], x, None, activation), 3 * x)


def test_numpy_runs_a_layer_without_its_own_through_autodiff():
    """NumPy's runtime needs a backward for each layer: without its own Dense it differentiates the
    shared call (polynn_numpy.shared.SharedLayer) and trains as its hand-written Dense does."""
    backend = plugins.get_backend("numpy")
    assert backend.implementation("layer", "dense") is backend.implementations["layer"]["dense"]

    def fit():
        x = np.linspace(-1, 1, 24).reshape(8, 3)
        model = Sequential([Dense(4, input_dim=3, activation="tanh", kernel_regularizer="l2"), Dense(2)])
        model.compile(optimizer="adam", loss="mse", backend="numpy", dtype="float64", seed=2)
        history = model.fit(x, np.ones((8, 2)), batch_size=4, epochs=2, verbose=0)
        return history.history["loss"], model.get_weights()

    own_losses, own_weights = fit()
    saved = backend.implementations
    backend.implementations = {**saved, "layer": {k: v for k, v in saved["layer"].items() if k != "dense"}}
    try:
        assert backend.implementation("layer", "dense") is backend.shared_implementation("layer", "dense")
        losses, weights = fit()
    finally:
        backend.implementations = saved
    np.testing.assert_allclose(losses, own_losses, rtol=1e-13)
    for got, want in zip(weights, own_weights):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_engines_with_autodiff_adapt_layers_to_the_shared_layer():
    """Backend.adapt, as torch and TensorFlow inherit it, gives the SharedLayer class for a layer."""
    assert Backend.adapt(plugins.get_backend("numpy"), "layer", Dense) is SharedLayer
