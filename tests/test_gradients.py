"""Every gradient of the NumPy reference backend against central finite differences in float64:
its own component functions first, then the whole model through its runtime."""

from __future__ import annotations

import numpy as np
import pytest

from polynn import _registry, activations, losses, optimizers, regularizers
from polynn.layers import Activation, Dense, Dropout
from polynn.models import Sequential
from polynn_numpy import layers as np_layers
from polynn_numpy.backend import NumpyBackend

BACKEND = NumpyBackend()
EPS = 1e-6
# Central differences in float64 with step 1e-6: truncation ~1e-12 and rounding ~1e-10 relative,
# so agreement to 1e-6 relative leaves a wide margin while catching any wrong term.
RTOL, ATOL = 1e-6, 1e-9


def enumerable_specs(kind):
    """polynn's own spec classes a default instance stands for; custom-function wrappers
    (enumerable False) need a user function and plugin components (polynn-extras, when
    installed) are tested by their own packages."""
    return _registry.builtin_specs(kind)


def numeric_gradient(f, x: np.ndarray) -> np.ndarray:
    """d f / d x by central differences, one element at a time (x is restored afterwards)."""
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + EPS
        up = f()
        flat[i] = keep - EPS
        down = f()
        flat[i] = keep
        gflat[i] = (up - down) / (2 * EPS)
    return grad


def away_from(values: np.ndarray, points, margin=0.05) -> np.ndarray:
    """Push values at least `margin` away from each kink in `points`."""
    for p in points:
        close = np.abs(values - p) < margin
        values = np.where(close, p + np.where(values >= p, margin, -margin) * 2, values)
    return values


# ---- activations ------------------------------------------------------------------------

# every registered activation at its defaults, plus the options that change the formula
ACTIVATIONS = [cls() for cls in enumerable_specs("activation")] + [
    activations.Softmax(axis=0),
    activations.ReLU(negative_slope=0.1, max_value=2.0, threshold=0.5),
    activations.ReLU(max_value=6.0),
    _registry.lookup("activation", "leaky_relu")(negative_slope=0.3),
    _registry.lookup("activation", "elu")(alpha=0.5),
    _registry.lookup("activation", "gelu")(approximate=False),
    _registry.lookup("activation", "log_softmax")(axis=0),
]
# where a piecewise activation has a kink (relu thresholds and caps, relu6, hard_sigmoid/hard_silu)
KINKS = [0.0, 0.5, 2.0, 6.0, -3.0, 3.0, -2.5, 2.5]


def activation_id(spec):
    options = {k: v for k, v in spec.get_config().items() if v != type(spec)().get_config()[k]}
    return spec.name + "".join(f"-{k}={v}" for k, v in options.items())


@pytest.mark.parametrize("spec", ACTIVATIONS, ids=activation_id)
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4)])
def test_activation_gradient(spec, shape):
    forward, backward = BACKEND.implementation("activation", spec.name)
    rng = np.random.default_rng(1)
    x = away_from(rng.normal(scale=3.0, size=shape), KINKS)
    r = rng.normal(size=shape)
    analytic = backward(spec, x, forward(spec, x), r)
    numeric = numeric_gradient(lambda: np.sum(forward(spec, x) * r), x)
    np.testing.assert_allclose(analytic, numeric, rtol=RTOL, atol=ATOL)


def test_every_registered_activation_is_covered():
    assert {s.name for s in ACTIVATIONS} == {cls.name for cls in enumerable_specs("activation")}


# ---- losses: the per-sample value and its vector-Jacobian product -----------------------

def loss_inputs(spec, shape, rng):
    """(y_true, y_pred) valid for `spec`, away from clip boundaries and kinks."""
    k = shape[-1]
    name = spec.name
    if name in ("mean_squared_error", "mean_absolute_error", "log_cosh", "huber", "cosine_similarity"):
        y = rng.normal(size=shape)
        delta = getattr(spec, "delta", 1.0)
        return y, y + away_from(rng.normal(size=shape), [0.0, delta, -delta], 0.05)
    if name == "mean_absolute_percentage_error":
        y = rng.uniform(0.5, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
        return y, y + away_from(rng.normal(size=shape), [0.0], 0.05)
    if name in ("mean_squared_logarithmic_error", "poisson"):
        return rng.uniform(0.0, 3.0, size=shape), rng.uniform(0.1, 3.0, size=shape)
    if name == "kl_divergence":
        return rng.uniform(0.05, 0.95, size=shape), rng.uniform(0.05, 0.95, size=shape)
    if name in ("hinge", "squared_hinge"):
        y = rng.choice([-1.0, 1.0], size=shape)
        return y, away_from(rng.normal(size=shape), [1.0, -1.0], 0.05)
    if name == "binary_crossentropy":
        y = rng.integers(0, 2, size=shape).astype(np.float64)
        p = rng.normal(scale=2.0, size=shape) if spec.from_logits else rng.uniform(0.05, 0.95, size=shape)
        return y, p
    labels = rng.integers(0, k, size=shape[:-1])
    if name == "categorical_hinge":
        # positive scores keep neg - pos + 1 > 0 and the max of the others away from 0
        return np.eye(k)[labels], rng.uniform(0.2, 1.0, size=shape)
    # unnormalized positive scores for the probability losses: the loss normalizes them
    p = rng.normal(size=shape) if spec.from_logits else rng.uniform(0.2, 2.0, size=shape)
    if name == "sparse_categorical_crossentropy":
        return labels.astype(np.float64), p
    return np.eye(k)[labels], p


# every registered loss at its defaults, plus each option that changes the formula
LOSSES = [cls() for cls in enumerable_specs("loss")] + [
    losses.BinaryCrossentropy(from_logits=True),
    losses.BinaryCrossentropy(label_smoothing=0.2), losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.2),
    losses.CategoricalCrossentropy(from_logits=True),
    losses.CategoricalCrossentropy(label_smoothing=0.1),
    losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
    losses.SparseCategoricalCrossentropy(from_logits=True),
    _registry.lookup("loss", "huber")(delta=0.5),
]


def loss_id(spec):
    defaults = type(spec)().get_config()
    return spec.name + "".join(f"-{k}={v}" for k, v in spec.get_config().items() if v != defaults[k])


@pytest.mark.parametrize("spec", LOSSES, ids=loss_id)
@pytest.mark.parametrize("shape", [(6, 3), (2, 4, 3)])
def test_loss_vjp(spec, shape):
    value, vjp = BACKEND.implementation("loss", spec.name)
    rng = np.random.default_rng(2)
    y, p = loss_inputs(spec, shape, rng)
    g = rng.uniform(0.5, 1.5, size=shape[:-1])  # upstream gradient of each per-sample value
    assert value(spec, y, p).shape == shape[:-1]
    analytic = vjp(spec, y, p, g)
    numeric = numeric_gradient(lambda: np.sum(value(spec, y, p) * g), p)
    np.testing.assert_allclose(analytic, numeric, rtol=RTOL, atol=ATOL)


def test_every_registered_loss_is_covered():
    assert {s.name for s in LOSSES} == {cls.name for cls in enumerable_specs("loss")}


def test_hinge_maps_binary_labels():
    spec = _registry.lookup("loss", "hinge")()
    value, vjp = BACKEND.implementation("loss", spec.name)
    rng = np.random.default_rng(3)
    y, p = loss_inputs(spec, (6, 2), rng)
    zero_one = (y + 1) / 2
    np.testing.assert_allclose(value(spec, zero_one, p), value(spec, y, p), rtol=1e-15)
    np.testing.assert_allclose(vjp(spec, zero_one, p, np.ones(6)), vjp(spec, y, p, np.ones(6)), rtol=1e-15)


def test_sparse_labels_with_trailing_axis():
    spec = losses.SparseCategoricalCrossentropy(from_logits=True)
    value, vjp = BACKEND.implementation("loss", spec.name)
    rng = np.random.default_rng(3)
    y, p = loss_inputs(spec, (5, 4), rng)
    g = np.ones(5)
    np.testing.assert_array_equal(value(spec, y[:, None], p), value(spec, y, p))
    np.testing.assert_array_equal(vjp(spec, y[:, None], p, g), vjp(spec, y, p, g))


def test_binary_crossentropy_gradient_is_zero_where_clipped():
    spec = losses.BinaryCrossentropy()
    _, vjp = BACKEND.implementation("loss", spec.name)
    p = np.array([[0.0, 1e-9, 1.0, 0.5]])
    d = vjp(spec, np.array([[1.0, 1.0, 0.0, 1.0]]), p, np.ones(1))
    assert np.all(d[0, :3] == 0) and d[0, 3] != 0


# ---- layers -----------------------------------------------------------------------------

def check_layer(layer, params, x, mask=None, penalty=False):
    """Compare kernel, bias and input gradients of f = sum(y * r) (+ the activity penalty)."""
    rng = np.random.default_rng(4)
    y, _ = layer.forward(params, x, mask)
    r = rng.normal(size=y.shape)

    def f():
        out, cache = layer.forward(params, x, mask)
        total = np.sum(out * r)
        return total + (layer.penalty(cache) if penalty else 0.0)

    _, cache = layer.forward(params, x, mask)
    dx, grads = layer.backward(params, cache, r, need_dx=True)
    np.testing.assert_allclose(dx, numeric_gradient(f, x), rtol=RTOL, atol=ATOL)
    assert len(grads) == len(params)
    for g, w in zip(grads, params):
        np.testing.assert_allclose(g, numeric_gradient(f, w), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("x_shape", [(5, 3), (4, 2, 3), (2, 3, 2, 3)], ids=["rank2", "rank3", "rank4"])
@pytest.mark.parametrize("activation", ["linear", "tanh", "sigmoid", "softmax", "relu"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_gradients(x_shape, activation, use_bias):
    spec = Dense(4, activation=activation, use_bias=use_bias)
    layer = np_layers.Dense(BACKEND, spec)
    for seed in range(100):
        rng = np.random.default_rng(seed)
        params = [rng.normal(size=(3, 4))] + ([rng.normal(size=4)] if use_bias else [])
        x = rng.normal(size=x_shape)
        z = x @ params[0] + (params[1] if use_bias else 0)
        # relu: draw until every pre-activation is away from the kink, so differences stay on one side
        if activation != "relu" or np.abs(z).min() > 0.02:
            break
    check_layer(layer, params, x)


@pytest.mark.parametrize("reg", [regularizers.L2(0.3), regularizers.L1(0.2), regularizers.L1L2(0.1, 0.2)], ids=str)
def test_dense_activity_regularizer_gradient(reg):
    spec = Dense(4, activation="tanh", activity_regularizer=reg)
    layer = np_layers.Dense(BACKEND, spec)
    rng = np.random.default_rng(6)
    check_layer(layer, [rng.normal(size=(3, 4)), rng.normal(size=4)], rng.normal(size=(5, 3)), penalty=True)


@pytest.mark.parametrize("shape,noise", [((5, 4), None), ((3, 2, 4), (None, 1, 4))])
def test_dropout_gradient_with_fixed_mask(shape, noise):
    spec = Dropout(0.4, noise_shape=noise)
    layer = np_layers.Dropout(BACKEND, spec)
    rng = np.random.default_rng(7)
    mask_shape = spec.mask_shape(shape)
    mask = np.where(rng.random(mask_shape) >= spec.rate, 1 / (1 - spec.rate), 0.0)
    x = rng.normal(size=shape)
    check_layer(layer, [], x, mask=mask)
    # without a mask (inference) it is the identity, and so is its gradient
    y, cache = layer.forward([], x, None)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(layer.backward([], cache, x * 2)[0], x * 2)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "softmax", "relu", "linear"])
def test_activation_layer_gradient(activation):
    layer = np_layers.Activation(BACKEND, Activation(activation))
    x = away_from(np.random.default_rng(8).normal(size=(4, 5)), [0.0])
    check_layer(layer, [], x)


@pytest.mark.parametrize("reg", [regularizers.L1(0.3), regularizers.L2(0.2), regularizers.L1L2(0.1, 0.4)], ids=str)
def test_regularizer_gradients(reg):
    penalty, gradient = BACKEND.implementation("regularizer", reg.name)
    w = away_from(np.random.default_rng(9).normal(size=(4, 3)), [0.0])  # l1's kink
    np.testing.assert_allclose(gradient(reg, w), numeric_gradient(lambda: penalty(reg, w), w), rtol=RTOL, atol=ATOL)


# ---- the whole model through the runtime ------------------------------------------------

def model_gradient_case(loss, units, reduction_weights=True, dropout=0.3):
    """A compiled float64 model with every regularizer kind and a Dropout, and its data."""
    rng = np.random.default_rng(10)
    layers = [
        Dense(5, input_dim=3, activation="tanh", kernel_regularizer=regularizers.L1L2(0.01, 0.02),
              bias_regularizer=regularizers.L2(0.05), activity_regularizer=regularizers.L2(0.03)),
    ]
    if dropout:
        layers.append(Dropout(dropout))
    out_activation = {"binary_crossentropy": "sigmoid", "categorical_crossentropy": "softmax",
                      "sparse_categorical_crossentropy": "softmax", "kl_divergence": "softmax",
                      "poisson": "softplus", "mean_squared_logarithmic_error": "softplus"}.get(loss.name, "linear")
    if getattr(loss, "from_logits", False):
        out_activation = "linear"
    layers.append(Dense(units, activation=out_activation, kernel_regularizer=regularizers.L1(0.01)))
    model = Sequential(layers)
    # SGD with lr 1 and no momentum: w_after = w_before - gradient, so the runtime's gradient can
    # be read off its update through the public Runtime interface
    model.compile(optimizer=optimizers.SGD(learning_rate=1.0), loss=loss, dtype="float64", seed=3)
    n = 7
    x = rng.normal(size=(n, 3))
    y, _ = loss_inputs(loss, (n, units), rng)
    w = rng.uniform(0.2, 2.0, size=n) if reduction_weights else None
    return model, x, y, w


def runtime_loss_and_gradient(model, x, y, w):
    runtime = model._compiled.runtime
    data = runtime.put_data(x, y, w)
    batches = np.arange(len(x))[None]
    plan_layers = model.layers
    masks = []
    for index, layer in enumerate(plan_layers):
        if isinstance(layer, Dropout):
            shape = layer.mask_shape((len(x), *model._shapes(model.input_shape)[index]))
            keep = np.random.default_rng(11).random(shape) >= layer.rate
            masks.append(np.where(keep, 1 / (1 - layer.rate), 0.0)[None])
    weights = runtime.get_weights()

    def loss_at():
        runtime.set_weights(weights)
        return runtime.train_steps(data, batches, masks, {"lr": np.zeros(1)}).losses[0]

    runtime.set_weights(weights)
    loss = runtime.train_steps(data, batches, masks, {"lr": np.ones(1)}).losses[0]
    gradient = [before - after for before, after in zip(weights, runtime.get_weights())]
    numeric = [numeric_gradient(loss_at, v) for v in weights]
    runtime.set_weights(weights)
    return loss, gradient, numeric


# every registered loss at its defaults, the options, and each reduction
MODEL_LOSSES = [cls() for cls in enumerable_specs("loss")] + [
    losses.MeanSquaredError(reduction="sum"), losses.MeanSquaredError(reduction="mean_with_sample_weight"),
    losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1), losses.BinaryCrossentropy(reduction="mean"),
    losses.CategoricalCrossentropy(label_smoothing=0.1), losses.CategoricalCrossentropy(from_logits=True),
    losses.CategoricalCrossentropy(reduction="sum"), losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="mean_with_sample_weight"),
]


@pytest.mark.parametrize("loss", MODEL_LOSSES, ids=loss_id)
@pytest.mark.parametrize("weighted", [True, False], ids=["sample_weight", "unweighted"])
def test_whole_model_loss_gradient_through_runtime(loss, weighted):
    units = 1 if loss.name == "binary_crossentropy" else 3
    model, x, y, w = model_gradient_case(loss, units, reduction_weights=weighted)
    _, gradient, numeric = runtime_loss_and_gradient(model, x, y, w)
    for k, (g, n) in enumerate(zip(gradient, numeric)):
        # the SGD read-out w - (w - g) rounds each entry to within ~1e-16 of |w|
        np.testing.assert_allclose(g, n, rtol=RTOL, atol=1e-8, err_msg=f"weight {k}")


def test_whole_model_on_rank3_inputs():
    model = Sequential([Dense(4, input_shape=(2, 3), activation="tanh", activity_regularizer="l2"), Dense(2)])
    model.compile(optimizer=optimizers.SGD(learning_rate=1.0), loss="mse", dtype="float64", seed=1)
    rng = np.random.default_rng(12)
    x, y = rng.normal(size=(5, 2, 3)), rng.normal(size=(5, 2, 2))
    _, gradient, numeric = runtime_loss_and_gradient(model, x, y, None)
    for g, n in zip(gradient, numeric):
        np.testing.assert_allclose(g, n, rtol=RTOL, atol=1e-8)
