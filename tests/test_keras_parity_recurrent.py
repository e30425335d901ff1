"""Embedding, SimpleRNN, LSTM and GRU against Keras 3 on TensorFlow, from Keras's initial weights: the
predictions, the losses of a short fit and the final weights, to float64 rounding; and .keras files
both ways. Keras is an outside reference (the test extra), imported once by the `keras` fixture with
KERAS_BACKEND=tensorflow. Keras on torch is left out: it computes float64 in float32 somewhere on its
way (a Dense's predict is off by 1e-7 in float64, measured with Keras 3.15.1 and torch 2.13).

Keras on TensorFlow hands an Embedding's gradient to its optimizer as IndexedSlices, one slice per
occurrence of an index, and Adam squares each slice before summing them: where an index repeats in
a batch, its second moment is the sum of squares, where polynn's (and Keras's on torch and JAX) is
the square of the sum. So the Adam case draws each batch's indices without repeats; SGD's update is
the same either way and takes repeats.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import types
import zipfile

import numpy as np
import pytest

from polynn import constraints, layers, optimizers, regularizers
from polynn.models import Sequential, load_model

F64_TOLERANCE = 1e-10
BACKENDS = [pytest.param(name, marks=() if importlib.util.find_spec(name) else pytest.mark.skip(f"no {name}"))
            for name in ("numpy", "torch", "tensorflow")]
SAMPLES, STEPS, BATCH, EPOCHS = 16, 5, 4, 2


@pytest.fixture(scope="module")
def keras():
    if os.environ.setdefault("KERAS_BACKEND", "tensorflow") != "tensorflow":
        pytest.skip("these tests compare with Keras on TensorFlow; KERAS_BACKEND names another backend")
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    if keras.config.backend() != "tensorflow":
        pytest.skip("Keras was imported with another backend")
    return keras


def _polynn_namespace():
    """polynn's modules under Keras's names, so one function builds both models."""
    return types.SimpleNamespace(Input=layers.Input, layers=layers, optimizers=optimizers,
                                 regularizers=regularizers, constraints=constraints)


def _unrepeated_indices(vocabulary: int, rng: np.random.Generator) -> np.ndarray:
    """SAMPLES sequences of STEPS indices, no index twice within a batch."""
    return np.concatenate([rng.permutation(vocabulary)[:BATCH * STEPS].reshape(BATCH, STEPS)
                           for _ in range(SAMPLES // BATCH)])


# Each case: (the layers from a namespace k, the optimizer from k, the inputs from a generator).
CASES = {
    "embedding_lstm_dense_sgd": (
        lambda k: [k.Input((STEPS,)), k.layers.Embedding(7, 4), k.layers.LSTM(5), k.layers.Dense(2)],
        lambda k: k.optimizers.SGD(learning_rate=0.3),
        lambda rng: rng.integers(7, size=(SAMPLES, STEPS))),
    "embedding_lstm_dense_adam": (
        lambda k: [k.Input((STEPS,)), k.layers.Embedding(BATCH * STEPS + 3, 4),
                   k.layers.LSTM(5, return_sequences=True), k.layers.LSTM(3), k.layers.Dense(2)],
        lambda k: k.optimizers.Adam(learning_rate=0.02),
        lambda rng: _unrepeated_indices(BATCH * STEPS + 3, rng)),
    "gru": (
        lambda k: [k.Input((STEPS, 3)), k.layers.GRU(4, return_sequences=True),
                   k.layers.GRU(3, reset_after=False, go_backwards=True), k.layers.Dense(2)],
        lambda k: k.optimizers.Adam(learning_rate=0.02),
        lambda rng: rng.normal(size=(SAMPLES, STEPS, 3))),
    "simple_rnn_go_backwards": (
        lambda k: [k.Input((STEPS, 3)), k.layers.SimpleRNN(4, return_sequences=True, go_backwards=True),
                   k.layers.LSTM(3, go_backwards=True, return_sequences=True, unit_forget_bias=False,
                                 recurrent_regularizer=k.regularizers.L2(0.01),
                                 kernel_constraint=k.constraints.MaxNorm(1.0)),
                   k.layers.SimpleRNN(2, activation="relu", use_bias=False)],
        lambda k: k.optimizers.Adam(learning_rate=0.02),
        lambda rng: rng.normal(size=(SAMPLES, STEPS, 3))),
}


def _data(case: str):
    rng = np.random.default_rng(7)
    x = CASES[case][2](rng)
    return x, rng.normal(size=(SAMPLES, 2))


@functools.cache
def _keras_run(keras, case: str):
    make_layers, make_optimizer, _ = CASES[case]
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        keras.utils.set_random_seed(0)
        model = keras.Sequential(make_layers(keras))
        model.compile(optimizer=make_optimizer(keras), loss="mse")
        initial = [w.copy() for w in model.get_weights()]
        x, y = _data(case)
        before = model.predict(x, verbose=0)
        history = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0).history["loss"]
        return initial, before, history, model.get_weights(), model.predict(x, verbose=0)
    finally:
        keras.config.set_floatx("float32")
        keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(CASES))
def test_a_short_fit_matches_keras(keras, case, backend):
    initial, before, history, weights, after = _keras_run(keras, case)
    make_layers, make_optimizer, _ = CASES[case]
    k = _polynn_namespace()
    model = Sequential(make_layers(k))
    model.compile(optimizer=make_optimizer(k), loss="mse", backend=backend, dtype="float64", seed=0)
    model.set_weights(initial)
    x, y = _data(case)
    np.testing.assert_allclose(model.predict(x, verbose=0), before, rtol=0, atol=F64_TOLERANCE)
    ours = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(ours, history, rtol=0, atol=F64_TOLERANCE)
    for a, b in zip(model.get_weights(), weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=F64_TOLERANCE)
    np.testing.assert_allclose(model.predict(x, verbose=0), after, rtol=0, atol=F64_TOLERANCE)


def test_initial_biases_are_laid_out_as_keras_draws_them(keras):
    """LSTM's unit_forget_bias block and GRU's (2, 3 units) bias: polynn draws what Keras draws."""
    for case in ("simple_rnn_go_backwards", "gru", "embedding_lstm_dense_adam"):
        make_layers = CASES[case][0]
        model = Sequential(make_layers(_polynn_namespace()))
        model.compile(loss="mse", dtype="float64", seed=0)
        model.build()
        initial = _keras_run(keras, case)[0]
        assert [w.shape for w in model.get_weights()] == [w.shape for w in initial]
        for ours, theirs, spec in zip(model.get_weights(), initial, model._weight_specs(model.input_shape)):
            if spec[1].name == "bias":
                assert np.array_equal(ours, theirs)


# ---- .keras files both ways ----------------------------------------------------------------------


def _keras_float64(keras):
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")


def _keras_float32(keras):
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")


def test_keras_reads_polynns_file(keras, tmp_path):
    x = np.random.default_rng(1).integers(9, size=(6, 5))
    model = Sequential([layers.Input((5,)), layers.Embedding(9, 3),
                        layers.LSTM(4, return_sequences=True, go_backwards=True),
                        layers.GRU(3, reset_after=False, return_sequences=True, recurrent_activation="hard_sigmoid"),
                        layers.GRU(3, return_sequences=True, use_bias=False),
                        layers.SimpleRNN(2, activation="relu", recurrent_regularizer="l2")])
    model.compile(loss="mse", optimizer="adam", dtype="float64", seed=0)
    model.fit(x, np.ones((6, 2)), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    _keras_float64(keras)
    try:
        theirs = keras.models.load_model(tmp_path / "m.keras")
        np.testing.assert_allclose(theirs.predict(x, verbose=0), model.predict(x, verbose=0), rtol=0, atol=1e-14)
        assert [v.path for v in theirs.weights][1:4] == ["lstm/lstm_cell/kernel", "lstm/lstm_cell/recurrent_kernel",
                                                         "lstm/lstm_cell/bias"]
        assert len(theirs.optimizer.variables) == 2 + 2 * len(model.get_weights())
        model.save_weights(tmp_path / "w.weights.h5")
        theirs.load_weights(tmp_path / "w.weights.h5")
        assert all(np.array_equal(a, b) for a, b in zip(theirs.get_weights(), model.get_weights(), strict=True))
    finally:
        _keras_float32(keras)


@pytest.mark.parametrize("input_dtype", ["int32", "int64", "float32"])
def test_polynn_reads_keras_file(keras, tmp_path, input_dtype):
    x = np.random.default_rng(2).integers(9, size=(6, 5))
    y = np.random.default_rng(3).normal(size=(6, 2))
    _keras_float64(keras)
    try:
        theirs = keras.Sequential([keras.Input((5,), dtype=input_dtype), keras.layers.Embedding(9, 3),
                                   keras.layers.LSTM(4, return_sequences=True),
                                   keras.layers.GRU(3, go_backwards=True, return_sequences=True, unroll=True),
                                   keras.layers.SimpleRNN(2)])
        theirs.compile(loss="mse", optimizer=keras.optimizers.SGD(0.1))
        theirs.fit(x, y, epochs=1, verbose=0)
        theirs.save(tmp_path / "k.keras")
        theirs.save_weights(tmp_path / "k.weights.h5")
        expected = theirs.predict(x, verbose=0)
        trained = theirs.fit(x, y, epochs=1, shuffle=False, verbose=0).history["loss"]
    finally:
        _keras_float32(keras)
    model = load_model(tmp_path / "k.keras")
    assert [type(layer.spec).__name__ for layer in model.layers] == ["Input", "Embedding", "LSTM", "GRU", "SimpleRNN"]
    assert model.layers[3].spec.unroll and model.layers[3].spec.go_backwards
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=0, atol=1e-14)
    ours = model.fit(x, y, epochs=1, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(ours, trained, rtol=0, atol=F64_TOLERANCE)
    fresh = load_model(tmp_path / "k.keras")
    fresh.load_weights(tmp_path / "k.weights.h5")
    np.testing.assert_allclose(fresh.predict(x, verbose=0), expected, rtol=0, atol=1e-14)


def test_polynns_configs_are_keras_own(keras, tmp_path):
    """The layers' configs in polynn's .keras file are those Keras serializes for the same layers."""
    model = Sequential([layers.Input((5,)), layers.Embedding(9, 3), layers.LSTM(4, return_sequences=True),
                        layers.GRU(3, return_sequences=True), layers.SimpleRNN(2)])
    model.compile(loss="mse", optimizer="adam", dtype="float32", seed=0)
    model.save(tmp_path / "m.keras")
    theirs = keras.models.load_model(tmp_path / "m.keras")
    ours = json.loads(zipfile.ZipFile(tmp_path / "m.keras").read("config.json"))["config"]["layers"][1:]
    for layer, config in zip(theirs.layers, ours, strict=True):
        serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
        for entry in (serialized, config):
            for value in entry["config"].values():
                if isinstance(value, dict):
                    value.pop("shared_object_id", None)
        assert serialized["config"] == config["config"], layer.name


def test_an_input_of_integer_dtype_is_kept_and_written_to_keras_files(keras, tmp_path):
    """Input((8,), dtype="int32"), as Keras text models write it: the config keeps it, a .keras file
    declares an int32 InputLayer that Keras loads, and polynn reads it back."""
    model = Sequential([layers.Input((8,), dtype="int32"), layers.Embedding(50, 4), layers.LSTM(3),
                        layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", dtype="float64", seed=0)
    x = np.random.RandomState(0).randint(50, size=(16, 8))
    model.fit(x, np.zeros((16, 1)), verbose=0)
    assert Sequential.from_config(model.get_config())._layers[0].dtype == "int32"
    path = tmp_path / "text.keras"
    model.save(path)
    theirs = keras.models.load_model(path)
    assert theirs.inputs[0].dtype == "int32"
    np.testing.assert_allclose(theirs.predict(x, verbose=0), model.predict(x, verbose=0), rtol=0, atol=F64_TOLERANCE)
    assert load_model(path)._layers[0].dtype == "int32"
    with pytest.raises(Exception, match=r"Input: invalid dtype='uint8'; accepted: None or one of float32"):
        layers.Input((8,), dtype="uint8")
