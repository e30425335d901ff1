"""polynn against Keras 3 on TensorFlow, from Keras's initial weights: the same numbers, to float64 rounding.

Keras is an outside reference here (the test extra): every expected number comes from running it.
It is imported once, by the `keras` fixture, with KERAS_BACKEND=tensorflow; without Keras (or
TensorFlow) those tests skip, and the Keras-free checks of the defaults still run.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os

import numpy as np
import pytest

from polynn import _reference, activations, initializers, losses, optimizers, plugins, regularizers, schedules
from polynn.layers import Dense
from polynn.models import Sequential

F64_TOLERANCE = 1e-10
F32_TOLERANCE = 1e-6
# The schedule case in float32: TensorFlow computes a schedule's float32 rate differently in eager,
# graph and XLA code (InverseTimeDecay(0.01, 3, 0.37), steps 0-299: eager and graph differ by one ulp
# at 50 steps, XLA and polynn's graph-style folding at 79), so no one formula matches Keras's fit.
# Measured against Keras truly in float32: 3.8e-6 (numpy), 4.2e-6 (tensorflow), 5.2e-6 (torch) in
# the weights. (Until Keras's dtype policy was reset with floatx, this case compared against Keras in
# float64 and passed at 1e-6.)
SCHEDULE_F32_TOLERANCE = 1e-5

# The blog's model (../shared/reference/fundamentals-of-deep-learning-blog.txt, examples/blog.py) on
# the first rows of the blog's data: 10 steps of 32 an epoch keep Keras's share of the time small.
BLOG_UNITS = (64, 32, 16, 8, 4)
TRAIN_ROWS, VAL_ROWS, BATCH, EPOCHS = 320, 64, 32, 2


def _installed_backends() -> list[str]:
    """Every installed backend but the JAX example's: it compiles each model (30 s a run here), which
    is beyond this module's time; it runs the same shared rules through OpsRuntime (measured within
    1e-15 of Keras in float64 when this module was written)."""
    names = []
    for entry in plugins.backend_entries():
        if entry.name != "jax" and entry.error is None \
                and importlib.util.find_spec(entry.engine.split(".")[0]) is not None:
            names.append(entry.name)
    return names


BACKENDS = _installed_backends()


@pytest.fixture(scope="module")
def keras():
    if os.environ.setdefault("KERAS_BACKEND", "tensorflow") != "tensorflow":
        pytest.skip("these tests compare with Keras on TensorFlow; KERAS_BACKEND names another backend")
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    if keras.config.backend() != "tensorflow":
        pytest.skip("Keras was imported with another backend")
    return keras


def _blog_data(train_rows: int, val_rows: int) -> tuple[np.ndarray, ...]:
    np.random.seed(1000)
    x = np.random.random((10000, 10))
    y = np.random.randint(2, size=(10000, 1))
    x_val = np.random.random((2500, 10))
    y_val = np.random.randint(2, size=(2500, 1))
    return x[:train_rows], y[:train_rows], x_val[:val_rows], y_val[:val_rows]


# Each case: (hidden activation, Keras optimizer, polynn optimizer), built from the module given.
CASES = {
    "gelu": ("gelu", lambda o: o.Adam()),
    "adam": ("relu", lambda o: o.Adam()),
    "adamw": ("relu", lambda o: o.AdamW()),
    "nadam": ("relu", lambda o: o.Nadam()),
    "sgd_momentum": ("relu", lambda o: o.SGD(learning_rate=0.05, momentum=0.9)),
    "adagrad": ("relu", lambda o: o.Adagrad(learning_rate=0.05)),
    "schedule": ("relu", lambda o: o.Adam(learning_rate=o.schedules.InverseTimeDecay(0.01, 3, 0.37))),
}


class _PolynnOptimizers:
    """polynn.optimizers with Keras's `optimizers.schedules` spelling, so one lambda builds both."""

    schedules = schedules

    def __getattr__(self, name):
        return getattr(optimizers, name)


@functools.cache
def _keras_run(keras, case: str, dtype: str, units: tuple, train_rows: int, val_rows: int, epochs: int):
    activation, make_optimizer = CASES[case]
    # Keras's default layer policy is made from floatx once and then kept: set both, reset both.
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((10,))]
                                 + [keras.layers.Dense(u, activation=activation) for u in units]
                                 + [keras.layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer=make_optimizer(keras.optimizers), loss="binary_crossentropy", metrics=["accuracy"])
        initial = [w.copy() for w in model.get_weights()]
        x, y, x_val, y_val = _blog_data(train_rows, val_rows)
        history = model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, validation_data=(x_val, y_val),
                            verbose=0)
        return initial, model.get_weights(), history.history
    finally:
        keras.config.set_floatx("float32")
        keras.config.set_dtype_policy("float32")


def _polynn_run(case: str, dtype: str, backend: str, initial, units: tuple, train_rows: int, val_rows: int,
                epochs: int):
    activation, make_optimizer = CASES[case]
    model = Sequential()
    model.add(Dense(units[0], input_dim=10, activation=activation))
    for u in units[1:]:
        model.add(Dense(u, activation=activation))
    model.add(Dense(1, activation="sigmoid"))
    model.compile(optimizer=make_optimizer(_PolynnOptimizers()), loss="binary_crossentropy", metrics=["accuracy"],
                  backend=backend, dtype=dtype, seed=0)
    model.set_weights(initial)
    x, y, x_val, y_val = _blog_data(train_rows, val_rows)
    history = model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, validation_data=(x_val, y_val),
                        verbose=0)
    return model.get_weights(), history.history


def _deviations(keras_weights, keras_history, weights, history) -> tuple[float, float]:
    weight_gap = max(float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
                     for a, b in zip(keras_weights, weights, strict=True))
    assert set(history) == set(keras_history)
    history_gap = max(abs(float(a) - float(b)) for key in keras_history
                      for a, b in zip(keras_history[key], history[key], strict=True))
    return weight_gap, history_gap


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", list(CASES))
def test_blog_model_trains_as_keras(keras, case, dtype, backend):
    """2 epochs of the blog model, unshuffled, from Keras's initial weights: weights and History."""
    shape = (BLOG_UNITS, TRAIN_ROWS, VAL_ROWS, EPOCHS)
    initial, keras_weights, keras_history = _keras_run(keras, case, dtype, *shape)
    weights, history = _polynn_run(case, dtype, backend, initial, *shape)
    tolerance = F64_TOLERANCE if dtype == "float64" else SCHEDULE_F32_TOLERANCE if case == "schedule" \
        else F32_TOLERANCE
    weight_gap, history_gap = _deviations(keras_weights, keras_history, weights, history)
    assert weight_gap <= tolerance, f"weights {weight_gap:.2e} from Keras's"
    assert history_gap <= tolerance, f"History {history_gap:.2e} from Keras's"


@pytest.mark.slow
def test_readme_blog_style_model_float32_val_loss_as_keras(keras):
    """The README's blog-style model (Dense 64 relu, 32 relu, 1 sigmoid; Dropout left out, as its
    masks come from each library's own random stream), float32, Adam(), 5 epochs on the README's
    data, on the reference backend (the blog-model tests above cover every backend)."""
    shape = ((64, 32), 10000, 2500, 5)
    initial, _, keras_history = _keras_run(keras, "adam", "float32", *shape)
    _, history = _polynn_run("adam", "float32", "numpy", initial, *shape)
    gap = max(abs(a - b) for a, b in zip(keras_history["val_loss"], history["val_loss"], strict=True))
    assert gap <= 1e-5, f"val_loss {gap:.2e} from Keras's"


def test_components_compute_as_keras_in_float64(keras):
    """Each float32-formed constant, read off Keras's own functions in float64."""
    ops = keras.ops
    x = np.linspace(-4.0, 3.0, 57)
    as_keras = functools.partial(ops.convert_to_tensor, dtype="float64")

    def same(polynn_value, keras_value):
        # Rounding apart (gelu's 1 + erf(u) where TensorFlow computes erfc(-u): 6e-16 at x = -4); the
        # constants' float32 rounding moves these values by 1e-9 to 1e-8.
        np.testing.assert_allclose(np.asarray(polynn_value), np.asarray(keras_value), rtol=1e-15, atol=1e-15)

    same(activations.gelu(x), keras.activations.gelu(as_keras(x)))
    same(activations.GELU(approximate=True)(x), keras.activations.gelu(as_keras(x), approximate=True))
    same(activations.leaky_relu(x), keras.activations.leaky_relu(as_keras(x)))
    y = np.linspace(-1.0, 2.0, 57).reshape(3, 19)
    same(losses.log_cosh(y, y[::-1] * 1.5), keras.losses.log_cosh(as_keras(y), as_keras(y[::-1] * 1.5)))
    same(initializers.Constant(0.3).sample((2, 3), np.random.default_rng(0)),
         keras.initializers.Constant(0.3)((2, 3), dtype="float64"))
    for penalty, keras_penalty in ((regularizers.L1(0.03), keras.regularizers.L1(0.03)),
                                   (regularizers.L2(0.03), keras.regularizers.L2(0.03)),
                                   (regularizers.L1L2(0.01, 0.03), keras.regularizers.L1L2(0.01, 0.03))):
        penalty_of, _ = _reference.implementation("regularizer", penalty.name)  # the NumPy backend's
        same(penalty_of(penalty, y), keras_penalty(as_keras(y)))
    adagrad = keras.optimizers.Adagrad()
    variable = keras.Variable(np.zeros(3), dtype="float64")
    adagrad.build([variable])
    same(optimizers.Adagrad().slot_initial_values()[0], adagrad.variables[-1].numpy()[0])
    steps = np.arange(0, 200)
    for polynn_schedule, keras_schedule in (
            (schedules.PiecewiseConstantDecay((10, 100), (0.1, 0.013, 0.001)),
             keras.optimizers.schedules.PiecewiseConstantDecay([10, 100], [0.1, 0.013, 0.001])),
            (schedules.InverseTimeDecay(0.013, 11, 0.3, staircase=True),
             keras.optimizers.schedules.InverseTimeDecay(0.013, 11, 0.3, staircase=True))):
        same(polynn_schedule(steps), [float(keras_schedule(ops.convert_to_tensor(np.int64(t)))) for t in steps])


def test_gelu_defaults_to_the_exact_erf_form():
    """activation="gelu", activations.gelu and GELU() are Keras 3's keras.activations.gelu: erf."""
    x = np.array([-3.0, -0.5, 0.0, 1.25])
    scale = float(np.float32(1 / math.sqrt(2)))
    exact = np.array([0.5 * v * (1 + math.erf(v * scale)) for v in x])
    np.testing.assert_allclose(activations.gelu(x), exact, rtol=1e-15, atol=1e-15)  # erf vs erfc rounding
    assert activations.get("gelu") == activations.GELU(approximate=False)
    assert Dense(2, activation="gelu").activation == activations.GELU(approximate=False)
    tanh_form = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + float(np.float32(0.044715)) * x ** 3)))
    np.testing.assert_allclose(activations.GELU(approximate=True)(x), tanh_form, rtol=1e-15, atol=0)


def test_a_gelu_saved_before_the_default_changed_keeps_the_tanh_form():
    """Configs have always spelled the field out, so an old file's gelu stays the tanh approximation."""
    old_config = {"class_name": "gelu", "config": {"approximate": True}}  # as 24eac91's get_config wrote it
    assert activations.get(old_config) == activations.GELU(approximate=True)
    layer = Dense.from_config({"units": 2, "activation": old_config})
    assert layer.activation.approximate is True
    assert activations.serialize(activations.GELU())["config"] == {"approximate": False}
