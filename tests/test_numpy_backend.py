"""The NumPy reference backend's forward values and optimizer updates against the Keras 3 formulas,
written out independently here, in float64 and float32."""

from __future__ import annotations

import math

import numpy as np
import pytest

from polynn import _registry, constraints, losses, optimizers, schedules
from polynn import random as _random
from polynn.layers import Dense, Dropout
from polynn.models import Sequential
from polynn_numpy.backend import NumpyBackend


def f32(value):
    """Keras 3's float32 rounding of a constant it casts (see polynn._float32)."""
    return float(np.float32(value))

BACKEND = NumpyBackend()


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def softplus(x):
    return np.log1p(np.exp(x))


erf = np.vectorize(math.erf)

# Keras 3's formulas (keras/src/activations/activations.py), written independently.
SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946  # Keras backends
KERAS_ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "relu6": lambda x: np.clip(x, 0, 6),
    "leaky_relu": lambda x: np.where(x >= 0, x, f32(0.2) * x),
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x)),
    "sigmoid": sigmoid,
    "hard_sigmoid": lambda x: np.clip(x + 3, 0, 6) / 6,
    "hard_silu": lambda x: x * np.clip(x + 3, 0, 6) / 6,
    "silu": lambda x: x * sigmoid(x),
    "tanh": np.tanh,
    "softplus": softplus,
    "softsign": lambda x: x / (1 + np.abs(x)),
    "exponential": np.exp,
    "mish": lambda x: x * np.tanh(softplus(x)),
    "gelu": lambda x: 0.5 * x * (1 + erf(x * f32(1 / math.sqrt(2)))),
    "softmax": lambda x: np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True),
    "log_softmax": lambda x: x - np.log(np.sum(np.exp(x), axis=-1, keepdims=True)),
}


@pytest.mark.parametrize("name", sorted(cls.name for cls in _registry.builtin_specs("activation")))
def test_activation_forward_matches_keras_formula(name):
    assert name in KERAS_ACTIVATIONS, f"no independent formula for the new activation {name!r}"
    forward, _ = BACKEND.implementation("activation", name)
    x = np.linspace(-8, 8, 161).reshape(7, 23)
    np.testing.assert_allclose(forward(_registry.lookup("activation", name)(), x), KERAS_ACTIVATIONS[name](x),
                               rtol=1e-12, atol=1e-15)


def test_gelu_exact():
    forward, _ = BACKEND.implementation("activation", "gelu")
    x = np.linspace(-6, 6, 121)
    expected = 0.5 * x * (1 + erf(x * f32(1 / math.sqrt(2))))
    spec = _registry.lookup("activation", "gelu")(approximate=False)
    # the backend's vectorized erf is a rational approximation: measured absolute deviation 1.4e-15
    # (relative 3.6e-12 where gelu crosses ~4e-4), so the absolute bound is 1e-14
    np.testing.assert_allclose(forward(spec, x), expected, rtol=1e-12, atol=1e-14)


def test_sigmoid_and_softmax_are_stable_at_extremes():
    sig, _ = BACKEND.implementation("activation", "sigmoid")
    soft, _ = BACKEND.implementation("activation", "softmax")
    spec_s, spec_m = _registry.lookup("activation", "sigmoid")(), _registry.lookup("activation", "softmax")()
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is the right answer
        np.testing.assert_array_equal(sig(spec_s, np.array([-1000.0, 0.0, 1000.0])), [0.0, 0.5, 1.0])
        out = soft(spec_m, np.array([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(out, [[0.5, 0.5, 0.0]])


# ---- one-layer linear models: updates by hand ---------------------------------------------

def linear_problem(seed=0, n=16, d=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(n, 1)), rng.normal(size=(d, 1))


def linear_model(optimizer, kernel, **dense_kwargs):
    model = Sequential([Dense(1, input_dim=kernel.shape[0], use_bias=False, **dense_kwargs)])
    model.compile(optimizer=optimizer, loss="mse", dtype="float64", seed=0)
    model.set_weights([kernel])
    return model


def mse_gradient(x, y, w):
    """d/dw of mean((x @ w - y)**2) over the batch (one output unit)."""
    return 2 * x.T @ (x @ w - y) / len(x)


def fit_steps(model, x, y, steps):
    model.fit(x, y, batch_size=len(x), epochs=steps, shuffle=False, verbose=0)
    return model.get_weights()[0]


def keras_adam(x, y, w, steps, lr=1e-3, b1=0.9, b2=0.999, eps=1e-7, amsgrad=False):
    m, v, v_hat = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for t in range(1, steps + 1):
        g = mse_gradient(x, y, w)
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        alpha = lr * math.sqrt(1 - f32(b2) ** t) / (1 - f32(b1) ** t)
        if amsgrad:
            v_hat = np.maximum(v_hat, v)
        w = w - m * alpha / (np.sqrt(v_hat if amsgrad else v) + eps)
    return w


def torch_adam(x, y, w, steps, lr=1e-3, b1=0.9, b2=0.999, eps=1e-7):
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t in range(1, steps + 1):
        g = mse_gradient(x, y, w)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    return w


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_update_is_keras(amsgrad):
    x, y, w = linear_problem()
    got = fit_steps(linear_model(optimizers.Adam(learning_rate=0.01, amsgrad=amsgrad), w), x, y, 5)
    np.testing.assert_allclose(got, keras_adam(x, y, w, 5, lr=0.01, amsgrad=amsgrad), rtol=1e-12)


def test_adam_epsilon_is_outside_the_root_of_the_uncorrected_moment():
    # gradients of ~4e-12: sqrt(v) is far below epsilon, so where epsilon goes decides the step
    # (measured: Keras's formula matches exactly; torch's moves the weights ~20x further)
    x, y, w = linear_problem()
    x, y = x * 1e-4, x @ w * 1e-4 + 1e-4 * 1e-3
    got = fit_steps(linear_model("adam", w), x, y, 3)
    keras, torch = keras_adam(x, y, w, 3), torch_adam(x, y, w, 3)
    np.testing.assert_allclose(got, keras, rtol=1e-12, atol=0)
    assert np.max(np.abs(got - torch)) > 100 * np.max(np.abs(got - keras)) + 1e-12


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_update(momentum, nesterov):
    x, y, w = linear_problem(1)
    got = fit_steps(linear_model(optimizers.SGD(0.05, momentum=momentum, nesterov=nesterov), w), x, y, 4)
    m, expected = np.zeros_like(w), w.copy()
    for _ in range(4):
        g = mse_gradient(x, y, expected)
        m = f32(momentum) * m - 0.05 * g
        expected = expected + (f32(momentum) * m - 0.05 * g if nesterov else m)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("centered,momentum", [(False, 0.0), (True, 0.0), (True, 0.5), (False, 0.5)])
def test_rmsprop_update(centered, momentum):
    x, y, w = linear_problem(2)
    spec = optimizers.RMSprop(0.01, rho=0.8, momentum=momentum, centered=centered)
    got = fit_steps(linear_model(spec, w), x, y, 4)
    v, a, m, expected = 0 * w, 0 * w, 0 * w, w.copy()
    for _ in range(4):
        g = mse_gradient(x, y, expected)
        v = 0.8 * v + 0.2 * g * g
        a = 0.8 * a + 0.2 * g
        step = 0.01 * g / np.sqrt((v - a * a if centered else v) + 1e-7)
        m = momentum * m + step
        expected = expected - (m if momentum else step)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("option", [{"clipvalue": 0.05}, {"clipnorm": 0.05}, {"global_clipnorm": 0.05},
                                    {"weight_decay": 0.1}], ids=lambda o: next(iter(o)))
def test_clipping_and_weight_decay(option):
    x, y, w = linear_problem(3)
    got = fit_steps(linear_model(optimizers.SGD(0.1, **option), w), x, y, 3)
    expected = w.copy()
    for _ in range(3):
        g = mse_gradient(x, y, expected)
        norm = np.sqrt(np.sum(g * g))
        if "clipvalue" in option:
            g = np.clip(g, -0.05, 0.05)
        elif "clipnorm" in option or "global_clipnorm" in option:  # one weight: both norms agree
            g = g * 0.05 / max(norm, 0.05)
        else:
            expected = expected - expected * (f32(0.1) * 0.1)
        expected = expected - 0.1 * g
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_schedule_sets_the_rate_of_each_step():
    x, y, w = linear_problem(4)
    schedule = schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    got = fit_steps(linear_model(optimizers.SGD(schedule), w), x, y, 4)
    expected = w.copy()
    for t in range(4):
        rate = np.float32(0.1) * np.float32(np.float64(np.float32(0.5)) ** np.float64(np.float32(t) / np.float32(2)))
        expected = expected - float(rate) * mse_gradient(x, y, expected)  # in float32, as Keras
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_constraints_project_after_each_update():
    x, y, w = linear_problem(5)
    model = linear_model(optimizers.SGD(0.5), np.abs(w), kernel_constraint=constraints.NonNeg())
    model.fit(x, -np.abs(y) * 10, epochs=3, verbose=0)
    assert np.all(model.get_weights()[0] >= 0) and np.any(model.get_weights()[0] == 0)
    model = linear_model(optimizers.SGD(0.5), w * 10, kernel_constraint=constraints.MaxNorm(1.0))
    model.fit(x, y, epochs=1, batch_size=len(x), verbose=0)
    assert np.linalg.norm(model.get_weights()[0], axis=0) <= 1.0 + 1e-12


# ---- losses and metrics through evaluate -----------------------------------------------------

def test_binary_crossentropy_clips_probabilities():
    model = Sequential([Dense(1, input_dim=1, activation="sigmoid", use_bias=False)])
    model.compile(optimizer="sgd", loss="binary_crossentropy", dtype="float64")
    model.set_weights([np.array([[1000.0]])])  # outputs exactly 0 and 1
    x, y = np.array([[1.0], [-1.0]]), np.array([[0.0], [1.0]])
    loss = model.evaluate(x, y, verbose=0)
    eps = 1e-7
    assert loss == pytest.approx(-np.log(1 - np.clip(1.0, eps, 1 - eps)), rel=1e-9)
    assert loss == pytest.approx(-np.log(eps), rel=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_crossentropy_values(smoothing):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(10, 4))
    labels = rng.integers(0, 3, size=10)
    model = Sequential([Dense(3, input_dim=4, activation="softmax")])
    model.compile(optimizer="sgd", loss=losses.CategoricalCrossentropy(label_smoothing=smoothing),
                  metrics=["accuracy"], dtype="float64", seed=0)
    p = model.predict(x, verbose=0)
    y = np.eye(3)[labels]
    smooth = y * (1 - smoothing) + smoothing / 3
    loss, accuracy = model.evaluate(x, y, batch_size=10, verbose=0)
    assert loss == pytest.approx(np.mean(-np.sum(smooth * np.log(p), axis=-1)), rel=1e-12)
    assert accuracy == pytest.approx(np.mean(np.argmax(p, -1) == labels), rel=1e-12)
    sparse = Sequential([Dense(3, input_dim=4, activation="softmax")])
    sparse.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                   dtype="float64", seed=0)
    s_loss, s_accuracy = sparse.evaluate(x, labels, batch_size=10, verbose=0)
    assert s_loss == pytest.approx(np.mean(-np.log(p[np.arange(10), labels])), rel=1e-12)
    assert s_accuracy == accuracy
    assert sparse._compiled.metric_names == ["accuracy"]


def test_regression_metrics():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(12, 3)), rng.normal(size=(12, 2))
    model = Sequential([Dense(2, input_dim=3)])
    model.compile(optimizer="sgd", loss="mae", metrics=["mse", "mae"], dtype="float64", seed=0)
    loss, mse, mae = model.evaluate(x, y, batch_size=12, verbose=0)
    p = model.predict(x, verbose=0)
    assert mse == pytest.approx(np.mean((p - y) ** 2), rel=1e-12)
    assert mae == pytest.approx(np.mean(np.abs(p - y)), rel=1e-12) and loss == pytest.approx(mae, rel=1e-12)


# ---- dropout ---------------------------------------------------------------------------------

def test_dropout_uses_the_shared_inverted_mask_in_training_only():
    rate, n, d, seed = 0.4, 32, 6, 9
    model = Sequential([Dense(d, input_dim=d, use_bias=False), Dropout(rate), Dense(1, use_bias=False)])
    model.compile(optimizer=optimizers.SGD(0.0), loss="mse", dtype="float64", seed=seed)
    model.set_weights([np.eye(d), np.ones((d, 1))])
    x = np.random.default_rng(8).normal(size=(n, d))
    y = np.zeros((n, 1))
    history = model.fit(x, y, batch_size=n, shuffle=False, verbose=0)
    mask = _random.dropout_mask(seed, 0, 1, (n, d), rate, np.float64)
    assert set(np.unique(mask)) <= {0.0, 1 / (1 - rate)}
    assert np.mean(mask == 0) == pytest.approx(rate, abs=0.1)
    trained = np.mean(np.sum(x * mask, axis=1) ** 2)
    assert history.history["loss"][0] == pytest.approx(trained, rel=1e-12)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(np.mean(np.sum(x, axis=1) ** 2), rel=1e-12)


# ---- dtypes ----------------------------------------------------------------------------------

def test_float32_and_float64_agree():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(64, 5))
    y = (x[:, :1] > 0).astype(float)
    runs = {}
    for dtype in ("float32", "float64"):
        model = Sequential([Dense(8, input_dim=5, activation="tanh"), Dense(1, activation="sigmoid")])
        model.compile(optimizer="adam", loss="binary_crossentropy", dtype=dtype, seed=3)
        history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        out = model.predict(x, verbose=0)
        assert out.dtype == np.dtype(dtype) and all(w.dtype == np.dtype(dtype) for w in model.get_weights())
        runs[dtype] = (model.get_weights(), history.history["loss"], out)
    # float32 against float64 after 8 Adam steps, measured: weights 9.0e-8, outputs 8.6e-8 apart,
    # epoch losses 4.5e-8 relative; the bounds leave a factor of ~10
    for w32, w64 in zip(runs["float32"][0], runs["float64"][0]):
        np.testing.assert_allclose(w32, w64, rtol=0, atol=1e-6)
    np.testing.assert_allclose(runs["float32"][1], runs["float64"][1], rtol=5e-7)
    np.testing.assert_allclose(runs["float32"][2], runs["float64"][2], rtol=0, atol=1e-6)


# ---- reused step arrays ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_workspace_reuse_changes_no_bit(dtype, monkeypatch, assert_identical_runs):
    """Training steps write large arrays into arrays kept from step to step; allocating every array
    afresh gives the same bits (a partial last batch, dropout, an Activation layer and a validation
    split included). The size threshold is lowered so this small model uses every workspace."""
    from polynn.activations import ReLU
    from polynn.layers import Activation
    from polynn_numpy import runtime as numpy_runtime

    rng = np.random.default_rng(11)
    x = rng.normal(size=(203, 12))
    y = (rng.random((203, 1)) > 0.5).astype(float)
    runs = []
    for threshold in (0, float("inf")):
        monkeypatch.setattr(numpy_runtime, "WORKSPACE_MIN_BYTES", threshold)
        model = Sequential([Dense(16, input_dim=12, activation=ReLU(threshold=0.1, max_value=0.8, negative_slope=0.05)),
                            Dropout(0.3), Dense(8, activation="tanh"), Activation("relu"),
                            Dense(1, activation="sigmoid")])
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"], dtype=dtype, seed=3)
        history = model.fit(x, y, epochs=3, batch_size=32, verbose=0, validation_split=0.2)
        in_use = model._compiled.runtime.workspaces
        assert all(w is not None for w in in_use) if threshold == 0 else all(w is None for w in in_use)
        runs.append((model.get_weights(), history.history, model.predict(x, batch_size=32, verbose=0)))
    assert_identical_runs(*runs)


def test_workspaces_are_chosen_by_size():
    """At batch 64 a 1024-wide array is 256 KB: the layers that output one or take one as input
    (and so return an input gradient of that size) use a workspace; the 4-unit layer, whose input
    and output are 2 KB and 1 KB, allocates."""
    rng = np.random.default_rng(13)
    x = rng.normal(size=(128, 8)).astype(np.float32)
    y = (rng.random((128, 1)) > 0.5).astype(np.float32)
    model = Sequential([Dense(4, input_dim=8), Dense(1024, activation="relu"), Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    in_use = model._compiled.runtime.workspaces
    assert in_use[0] is None and in_use[1] is not None and in_use[2] is not None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("use_workspace", [False, True])
def test_products_over_one_term_equal_matmul(use_workspace, dtype):
    """A 1-input layer's forward product, a 1-unit layer's input gradient and a 1-sample kernel
    gradient have inner size 1: the layer multiplies them out by broadcasting, and the values are
    those of matmul (array_equal: the two may differ in the sign of a zero)."""
    from polynn_numpy.workspace import Workspace

    dense = BACKEND.implementation("layer", "dense")
    rng = np.random.default_rng(5)
    shapes = ((1, 6, (4,)), (3, 1, (4,)), (5, 6, (1,)), (1, 1, (1,)), (1, 6, (2, 3)), (4, 1, (2, 3)))
    for units, fan_in, batch in shapes:
        layer = dense(BACKEND, Dense(units, activation="tanh"))
        kernel, bias = rng.normal(size=(fan_in, units)).astype(dtype), rng.normal(size=units).astype(dtype)
        x, dy = rng.normal(size=(*batch, fan_in)).astype(dtype), rng.normal(size=(*batch, units)).astype(dtype)
        workspace = {"workspace": Workspace()} if use_workspace else {}
        y, cache = layer.forward([kernel, bias], x, **workspace)
        dx, (d_kernel, d_bias) = layer.backward([kernel, bias], cache, dy, **workspace)
        dz = dy * (1 - np.tanh(np.matmul(x, kernel) + bias) ** 2)
        assert y.dtype == dx.dtype == d_kernel.dtype == np.dtype(dtype)
        assert np.array_equal(y, np.tanh(np.matmul(x, kernel) + bias))
        assert np.array_equal(d_kernel, np.matmul(x.reshape(-1, fan_in).T, dz.reshape(-1, units)))
        assert np.array_equal(dx, np.matmul(dz, kernel.T))


def test_relu_backward_stays_in_the_plan_dtype():
    """negative_slope * (x < threshold) is a float64 array; the gradient must stay float32."""
    from polynn.activations import ReLU

    forward, backward = BACKEND.implementation("activation", "relu")
    spec = ReLU(threshold=0.1, negative_slope=0.05)
    x = np.linspace(-1, 1, 7, dtype=np.float32)
    dy = np.ones_like(x)
    assert forward(spec, x).dtype == np.float32 and backward(spec, x, forward(spec, x), dy).dtype == np.float32


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_relu_against_a_zero_array_changes_no_bit(dtype):
    """From ZEROS_FROM elements relu takes the maximum against an array of zeros (NumPy's vector
    loop); the bits are those of np.maximum(x, 0), with NaN, -0.0 and infinities, written into
    `out` or not, on shapes that grow and shrink, and the shared zero block stays zero."""
    from polynn.activations import ReLU
    from polynn_numpy import activations

    forward, _ = BACKEND.implementation("activation", "relu")
    spec = ReLU()
    rng = np.random.default_rng(11)
    for shape in ((3, 5), (activations.ZEROS_FROM,), (64, 1024), (7, activations.ZEROS_FROM // 4), (2, 3, 4096)):
        x = rng.normal(size=shape).astype(dtype)
        flat = x.reshape(-1)
        spots = rng.choice(flat.size, size=(5, 3), replace=False)
        for spot, value in zip(spots, (-0.0, 0.0, np.nan, -np.inf, np.inf)):
            flat[spot] = value
        expected = np.maximum(x, 0)
        out = np.full(shape, 7, dtype=dtype)
        for y in (forward(spec, x), forward(spec, x, out=out)):
            assert y.dtype == np.dtype(dtype) and y.shape == shape
            assert y.tobytes() == expected.tobytes()
        assert out.tobytes() == expected.tobytes()
    block = activations._zero_blocks[np.dtype(dtype)]
    assert not block.flags.writeable and not block.any() and not np.signbit(block).any()


NUMPY_UPDATE_CASES = {
    "sgd": optimizers.SGD(0.05), "sgd_nesterov": optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "adam_amsgrad": optimizers.Adam(amsgrad=True), "adamw": optimizers.AdamW(),
    "rmsprop_centered_momentum": optimizers.RMSprop(centered=True, momentum=0.5), "adagrad": optimizers.Adagrad(0.05),
    "adadelta": optimizers.Adadelta(1.0), "adamax": optimizers.Adamax(), "nadam": optimizers.Nadam(),
    "adam_global_clipnorm": optimizers.Adam(global_clipnorm=0.1, weight_decay=0.01),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(NUMPY_UPDATE_CASES))
def test_update_pieces_change_no_bit(case, dtype, monkeypatch):
    """The update walks the flat buffers in pieces with two scratch arrays; pieces of 7 elements,
    which split every weight, give the very bits of one piece for the whole model."""
    from polynn_numpy import optimizers as numpy_optimizers

    rng = np.random.default_rng(12)
    x = rng.normal(size=(48, 5))
    y = x[:, :1] - 2 * x[:, 1:2]
    trained = []
    for chunk in (numpy_optimizers.CHUNK, 7):
        monkeypatch.setattr(numpy_optimizers, "CHUNK", chunk)
        model = Sequential([Dense(6, input_dim=5, activation="tanh"), Dense(1)])
        model.compile(optimizer=NUMPY_UPDATE_CASES[case], loss="mse", dtype=dtype, seed=11)
        model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        trained.append((model.get_weights(), model._compiled.runtime.get_optimizer_state()))
    (weights, state), (pieced_weights, pieced_state) = trained
    assert all(a.tobytes() == b.tobytes() for a, b in zip(weights, pieced_weights))
    assert all(a.tobytes() == b.tobytes() for slots, pieced in zip(state, pieced_state) for a, b in zip(slots, pieced))
