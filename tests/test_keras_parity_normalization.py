"""BatchNormalization and LayerNormalization against Keras 3 on TensorFlow, from Keras's initial weights.

Keras is the outside reference (the test extra): every expected number comes from running it, in
float64. A short fit (8 Adam steps) must give Keras's step losses, final weights (the moving
statistics included), predictions and evaluate() loss within 1e-10 on every installed backend;
.keras files go both ways; summary() prints Keras's table.

Only Keras on TensorFlow: Keras 3.15 on torch computes float64 models in float32 (its
dtypes.result_type("float64", "float64") is "float32" there, so keras.ops.matmul casts float64
operands down: a Dense layer alone is 2e-7 from float64 arithmetic), which no 1e-10 comparison
survives.
"""

from __future__ import annotations

import importlib.util
import os
import warnings

import numpy as np
import pytest

from polynn import plugins
from polynn.constraints import NonNeg
from polynn.layers import BatchNormalization, Dense, LayerNormalization
from polynn.models import Sequential, load_model
from polynn.optimizers import Adam
from polynn.regularizers import L2

TOLERANCE = 1e-10
ROWS, BATCH, EPOCHS = 24, 6, 2  # 8 steps


def _installed_backends() -> list[str]:
    """polynn's own backends that are installed (the JAX example runs the same OpsRuntime rules; its
    kit cases check it against NumPy)."""
    return [e.name for e in plugins.backend_entries()
            if e.name in ("numpy", "tensorflow", "torch") and importlib.util.find_spec(e.engine) is not None]


BACKENDS = _installed_backends()
pytestmark = pytest.mark.slow  # Keras and TensorFlow: seconds to import and trace


@pytest.fixture(scope="module")
def keras():
    if os.environ.setdefault("KERAS_BACKEND", "tensorflow") != "tensorflow":
        pytest.skip("these tests compare with Keras on TensorFlow; KERAS_BACKEND names another backend")
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    if keras.config.backend() != "tensorflow":
        pytest.skip("Keras was imported with another backend")
    # Keras's default layer policy is made from floatx once and then kept: set both, reset both.
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    yield keras
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")


# Each case: (sample shape, the normalization layer in Keras, the same in polynn).
CASES = {
    "batch_normalization": ((4,), lambda k: k.layers.BatchNormalization(momentum=0.8),
                            lambda: BatchNormalization(momentum=0.8)),
    "batch_normalization_axis_1": (
        (3, 4), lambda k: k.layers.BatchNormalization(axis=1, momentum=0.7, epsilon=0.01, center=False),
        lambda: BatchNormalization(axis=1, momentum=0.7, epsilon=0.01, center=False)),
    "batch_normalization_penalized": (
        (4,), lambda k: k.layers.BatchNormalization(gamma_regularizer=k.regularizers.L2(0.05),
                                                    beta_constraint=k.constraints.NonNeg(), scale=True, momentum=0.5),
        lambda: BatchNormalization(gamma_regularizer=L2(0.05), beta_constraint=NonNeg(), momentum=0.5)),
    "batch_normalization_frozen": (
        (4,), lambda k: k.layers.BatchNormalization(
            trainable=False, moving_mean_initializer=k.initializers.RandomUniform(-0.5, 0.5),
            moving_variance_initializer=k.initializers.RandomUniform(0.5, 1.5)),
        lambda: BatchNormalization(trainable=False)),
    "layer_normalization": ((4,), lambda k: k.layers.LayerNormalization(), lambda: LayerNormalization()),
    "layer_normalization_axes": ((3, 4), lambda k: k.layers.LayerNormalization(axis=[1, 2], scale=False, epsilon=0.1),
                                 lambda: LayerNormalization(axis=(1, 2), scale=False, epsilon=0.1)),
    "layer_normalization_rms_scaling": ((3, 4), lambda k: k.layers.LayerNormalization(axis=1, rms_scaling=True),
                                        lambda: LayerNormalization(axis=1, rms_scaling=True)),
}


def _data(shape: tuple) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(11)
    return rng.normal(size=(ROWS, *shape)), rng.normal(size=(ROWS, *shape[:-1], 2))


def _keras_model(keras, case: str):
    shape, make, _ = CASES[case]
    keras.utils.set_random_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rms_scaling's deprecation
        model = keras.Sequential([keras.Input(shape), keras.layers.Dense(5, activation="tanh"), make(keras),
                                  keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.05), loss="mse")
    return model


_KERAS_RUNS: dict[str, dict] = {}


def _keras_run(keras, case: str) -> dict:
    if case not in _KERAS_RUNS:
        model = _keras_model(keras, case)
        x, y = _data(CASES[case][0])
        initial = [w.copy() for w in model.get_weights()]
        history = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
        _KERAS_RUNS[case] = {"initial": initial, "weights": model.get_weights(), "loss": history.history["loss"],
                             "predictions": model.predict(x, verbose=0), "evaluate": model.evaluate(x, y, verbose=0)}
    return _KERAS_RUNS[case]


def _polynn_model(case: str, backend: str) -> Sequential:
    shape, _, make = CASES[case]
    model = Sequential([Dense(5, input_shape=shape, activation="tanh"), make(), Dense(2)])
    model.compile(Adam(learning_rate=0.05), "mse", backend=backend, dtype="float64")
    return model


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(CASES))
def test_a_short_fit_gives_keras_numbers_moving_statistics_included(keras, case, backend):
    reference = _keras_run(keras, case)
    model = _polynn_model(case, backend)
    model.set_weights(reference["initial"])
    x, y = _data(CASES[case][0])
    history = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], reference["loss"], rtol=0, atol=TOLERANCE)
    weights = model.get_weights()
    assert [w.shape for w in weights] == [w.shape for w in reference["weights"]]
    for got, want in zip(weights, reference["weights"]):
        np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(model.predict(x, verbose=0), reference["predictions"], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), reference["evaluate"], rtol=0, atol=TOLERANCE)


def test_the_moving_statistics_did_move_and_keras_orders_them_as_polynn(keras):
    """The comparison above is of something: Keras's statistics left their start, and Keras's
    variables are polynn's weights, in the same order."""
    reference = _keras_run(keras, "batch_normalization")
    assert not np.allclose(reference["weights"][4], reference["initial"][4])
    model = _keras_model(keras, "batch_normalization")
    names = [v.path.split("/")[-1] for v in model.weights]
    polynn_names = [ws.name for _, ws in _polynn_model("batch_normalization", "numpy")._weight_specs((4,))]
    assert names == polynn_names
    trainable = [v.path.split("/")[-1] for v in model.layers[1].trainable_weights]
    assert trainable == ["gamma", "beta"]


def test_defaults_are_keras_defaults(keras):
    for keras_layer, layer in ((keras.layers.BatchNormalization(), BatchNormalization()),
                               (keras.layers.LayerNormalization(), LayerNormalization())):
        config = keras_layer.get_config()
        for key in layer.get_config():
            value = getattr(layer, key)
            if key.endswith("_initializer"):
                assert type(value).__name__ == config[key]["class_name"], key
            elif key not in ("trainable", "input_shape"):  # Keras keeps a first layer's input shape elsewhere
                assert config[key] == value, key


@pytest.mark.parametrize("case", ["batch_normalization_axis_1", "layer_normalization_axes",
                                  "batch_normalization_penalized"])
def test_keras_loads_polynns_file_and_polynn_loads_keras(keras, tmp_path, case):
    pytest.importorskip("h5py")
    x, y = _data(CASES[case][0])
    model = _polynn_model(case, "numpy")
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    model.save(tmp_path / "polynn.keras")
    theirs = keras.models.load_model(tmp_path / "polynn.keras")
    for got, want in zip(theirs.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(theirs.predict(x, verbose=0), model.predict(x, verbose=0), rtol=0, atol=TOLERANCE)
    # Both continue the same training from the file.
    keras_history = theirs.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    ours = load_model(tmp_path / "polynn.keras")
    history = ours.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], keras_history.history["loss"], rtol=0, atol=TOLERANCE)
    for got, want in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE)
    # And back: Keras's file, read by polynn.
    theirs.save(tmp_path / "keras.keras")
    again = load_model(tmp_path / "keras.keras", backend="numpy")
    for got, want in zip(again.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(again.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=0, atol=TOLERANCE)


def test_summary_prints_keras_table(keras):
    """Layers named alike in both (Keras numbers its names process-wide), after a fit (the
    optimizer's variables join the table)."""
    x, y = _data((4,))
    names = ["dense", "batch_normalization", "layer_normalization", "dense_1"]
    theirs = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, name=names[0]),
                               keras.layers.BatchNormalization(name=names[1]),
                               keras.layers.LayerNormalization(name=names[2]), keras.layers.Dense(2, name=names[3])],
                              name="sequential")
    theirs.compile(keras.optimizers.Adam(), "mse")
    theirs.fit(x, y, batch_size=BATCH, verbose=0)
    keras_lines: list[str] = []
    theirs.summary(print_fn=lambda line, **_: keras_lines.append(line))
    ours = Sequential([Dense(5, input_dim=4), BatchNormalization(), LayerNormalization(), Dense(2)])
    ours.compile(Adam(), "mse", dtype="float64")
    ours.fit(x, y, batch_size=BATCH, verbose=0)
    lines: list[str] = []
    ours.summary(print_fn=lines.append)
    assert "\n".join(lines).splitlines() == "\n".join(keras_lines).splitlines()
