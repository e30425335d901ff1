"""polynn.ops on the NumPy backend: every op's value and its autodiff gradient, and user functions as components."""

from __future__ import annotations

import json

import numpy as np
import pytest

import polynn
from polynn import _custom, ops
from polynn.errors import InvalidArgumentError, PluginError, UnknownComponentError
from polynn.layers import Dense
from polynn.models import Sequential
from polynn_numpy import ops as numpy_ops
from polynn_numpy.autodiff import Tensor, gradient

RNG = np.random.default_rng(0)
X = RNG.normal(size=(4, 5))
Y = RNG.normal(size=(4, 5))
INDICES = RNG.integers(0, 5, size=(4, 1))

# One differentiable use of each op (inputs kept away from ties and kinks).
DIFFERENTIABLE = {
    "abs": lambda x: ops.abs(x),
    "square": ops.square,
    "sqrt": lambda x: ops.sqrt(ops.square(x) + 1),
    "exp": ops.exp,
    "log": lambda x: ops.log(ops.square(x) + 0.5),
    "log1p": lambda x: ops.log1p(ops.square(x)),
    "tanh": ops.tanh,
    "sigmoid": ops.sigmoid,
    "softplus": ops.softplus,
    "negative": ops.negative,
    "sign": lambda x: ops.sign(x) * x,
    "power": lambda x: ops.power(ops.square(x) + 1, 1.5) + ops.power(2.0, x),
    "maximum": lambda x: ops.maximum(x, Y),
    "minimum": lambda x: ops.minimum(x, 0.1),
    "clip": lambda x: ops.clip(x, -0.5, 0.5),
    "where": lambda x: ops.where(ops.greater(x, 0), x * 2, ops.exp(x)),
    "cast": lambda x: ops.cast(x, "float64") * 3,
    "sum": lambda x: ops.sum(x * x, axis=1),
    "mean": lambda x: ops.mean(x, axis=0, keepdims=True) * x,
    "max": lambda x: ops.max(x, axis=-1),
    "min": lambda x: ops.min(x, axis=0),
    "prod": lambda x: ops.prod(x, axis=1),
    "matmul": lambda x: ops.matmul(x, Y.T),
    "reshape": lambda x: ops.reshape(x, (5, 4)) * np.arange(20).reshape(5, 4),
    "expand_dims": lambda x: ops.expand_dims(x, 1) * 2,
    "squeeze": lambda x: ops.squeeze(ops.expand_dims(x, 0), 0) ** 2,
    "concatenate": lambda x: ops.concatenate([x, x * x], axis=1) + ops.sum(ops.concatenate([x, x], axis=None)),
    "stack": lambda x: ops.stack([x, ops.exp(x)], axis=0),
    "take_along_axis": lambda x: ops.take_along_axis(x, INDICES, axis=1) + ops.take_along_axis(
        x, np.array([[1, 2]]), axis=1),
    "cumsum": lambda x: ops.cumsum(x, axis=1) ** 2 + ops.sum(ops.cumsum(x) ** 2),
    "sort": lambda x: ops.sort(x, axis=-1) * np.arange(5),
    "one_hot": lambda x: x * ops.one_hot(ops.argmax(x, axis=-1), 5),
    "argmax": lambda x: x * ops.cast(ops.equal(ops.expand_dims(ops.argmax(x, axis=-1), -1), np.arange(5)), "float64"),
    "convert_to_tensor": lambda x: x * ops.convert_to_tensor(Y, "float64"),
    "zeros_like": lambda x: x + ops.zeros_like(x),
    "ones_like": lambda x: x * ops.ones_like(x) * 2,
    "logical_and": lambda x: ops.where(ops.logical_and(ops.greater(x, -1), ops.less(x, 1)), x, -x),
    "logical_or": lambda x: ops.where(ops.logical_or(ops.less(x, -1), ops.greater_equal(x, 1)), x, 2 * x),
    "logical_not": lambda x: ops.where(ops.logical_not(ops.less_equal(x, 0)), x, 3 * x),
    "not_equal": lambda x: ops.where(ops.not_equal(x, 0.0), x * x, x),
}


def _finite_difference(f, x, seed, h=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        grad[i] = np.sum(seed * (np.asarray(f(x + e)) - np.asarray(f(x - e)))) / (2 * h)
    return grad


def test_every_op_is_exercised():
    covered = set(DIFFERENTIABLE) | {"equal", "greater", "greater_equal", "less", "less_equal", "shape",
                                     "stop_gradient"}
    assert covered == set(ops.OP_NAMES)
    assert all(callable(getattr(numpy_ops, name)) for name in ops.OP_NAMES)


@pytest.mark.parametrize("name", sorted(DIFFERENTIABLE))
def test_op_value_and_gradient(name):
    f = DIFFERENTIABLE[name]
    t = Tensor(X)
    out = f(t)
    np.testing.assert_allclose(out.value, np.asarray(f(X)), rtol=1e-15, atol=1e-15)  # traced == plain NumPy
    seed = RNG.normal(size=out.value.shape)
    (analytic,) = gradient(out, [t], seed)
    # central differences with h = 1e-6 are good to about 1e-9 on these O(1) functions
    np.testing.assert_allclose(analytic, _finite_difference(f, X, seed), atol=2e-8)


def test_stop_gradient_and_shape():
    t = Tensor(X)
    out = t * ops.stop_gradient(t)
    (g,) = gradient(out, [t], np.ones_like(X))
    np.testing.assert_array_equal(g, X)  # d(x * c)/dx = c, with c = x held constant
    assert ops.shape(t) == X.shape == ops.shape(X)


def _blog_data(n=2000):
    np.random.seed(1000)
    x = np.random.random((n, 10))
    y = np.random.randint(2, size=(n, 1)).astype(float)
    return x, y


def _train(loss, activation="relu", metrics=(), epochs=2):
    x, y = _blog_data()
    model = Sequential([Dense(16, input_dim=10, activation=activation), Dense(8, activation="relu"),
                        Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss=loss, metrics=list(metrics), dtype="float64", seed=3)
    history = model.fit(x, y, epochs=epochs, verbose=0)
    return history.history, model.get_weights()


def test_custom_loss_trains_exactly_as_the_builtin():
    builtin, builtin_weights = _train("mean_absolute_error")
    custom, custom_weights = _train(lambda y, p: ops.mean(ops.abs(y - p), axis=-1))
    np.testing.assert_allclose(custom["loss"], builtin["loss"], rtol=1e-9)
    for a, b in zip(custom_weights, builtin_weights):
        np.testing.assert_allclose(a, b, atol=1e-9, rtol=0)


def test_custom_activation_and_metric_match_builtins():
    builtin, builtin_weights = _train("binary_crossentropy", activation="mish", metrics=["mse"], epochs=1)
    custom, custom_weights = _train("binary_crossentropy", activation=lambda x: x * ops.tanh(ops.softplus(x)),
                                    metrics=[lambda y, p: ops.mean(ops.square(y - p), axis=-1)], epochs=1)
    np.testing.assert_allclose(custom["loss"], builtin["loss"], rtol=1e-9)
    np.testing.assert_allclose(custom["<lambda>"], builtin["mse"], rtol=1e-9)
    for a, b in zip(custom_weights, builtin_weights):
        np.testing.assert_allclose(a, b, atol=1e-9, rtol=0)


@pytest.fixture
def registered():
    names = []

    def register(name, **kwargs):
        names.append(name)
        return polynn.register(name, **kwargs)

    yield register
    for name in names:
        _custom.unregister(name)


def test_registered_functions_resolve_by_name_and_round_trip(registered):
    @registered("ops_test_mish")
    def mish(x):
        return x * ops.tanh(ops.softplus(x))

    @registered("ops_test_abs_error")
    def abs_error(y_true, y_pred):
        return ops.mean(ops.abs(y_true - y_pred), axis=-1)

    model = Sequential([Dense(4, input_dim=3, activation="ops_test_mish"), Dense(1, activation=mish)])
    config = json.loads(json.dumps(model.get_config()))
    assert config["layers"][0]["config"]["activation"] == {"class_name": "custom_activation",
                                                           "config": {"function": "ops_test_mish"}}
    assert Sequential.from_config(config).layers == model.layers
    model.compile(loss="ops_test_abs_error", metrics=["ops_test_abs_error"])
    assert model.loss.function is abs_error


def test_register_infers_kinds_and_refuses_clashes(registered):
    @registered("ops_test_act")
    def act(x):
        return x

    assert _custom.function("activation", "ops_test_act") is act
    assert _custom.function("loss", "ops_test_act") is None
    with pytest.raises(PluginError, match="registered twice"):
        polynn.register("relu", kind="activation")(act)
    with pytest.raises(PluginError, match="registered twice"):
        polynn.register("ops_test_act")(lambda x: x)
    with pytest.raises(InvalidArgumentError, match="identifier"):
        polynn.register("not a name")


def test_unknown_function_name_and_unsaveable_lambda_are_clear():
    with pytest.raises(UnknownComponentError):
        Sequential.from_config({"layers": [{"class_name": "dense", "config": {
            "units": 1, "activation": {"class_name": "custom_activation", "config": {"function": "nowhere"}}}}]})
    model = Sequential([Dense(1, input_dim=2, activation=lambda x: x)])
    with pytest.raises(InvalidArgumentError, match="polynn.register"):
        model.get_config()


def test_ops_outside_a_model_are_plain_numpy():
    out = ops.mean(ops.abs(X - Y), axis=-1)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, np.mean(np.abs(X - Y), axis=-1))


def test_outside_a_model_the_ops_are_the_numpy_backends_found_through_the_plugins():
    assert polynn.backend.Backend.ops is None  # a backend without an ops namespace says so
    assert polynn.plugins.get_backend("numpy").ops is numpy_ops
    assert ops.current() is numpy_ops
    with ops.using(numpy_ops) as namespace:
        assert ops.current() is namespace


@pytest.mark.parametrize("name", ["numpy", "tensorflow", "torch"])
def test_every_first_party_backend_publishes_its_ops(name):
    pytest.importorskip(name)
    namespace = polynn.plugins.get_backend(name).ops
    assert namespace.__name__ == f"polynn_{name}.ops"
    assert all(callable(getattr(namespace, op)) for op in ops.OP_NAMES)
