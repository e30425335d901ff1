"""polynn -> Keras 3 file -> polynn: a model saved as .keras comes back as its polynn file does, on every
backend and dtype: predictions, optimizer state, iterations and further training, to the bit."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytest.importorskip("h5py")

from polynn import optimizers, plugins, regularizers, schedules  # noqa: E402
from polynn.layers import Dense, Dropout, Input  # noqa: E402
from polynn.models import Sequential, load_model  # noqa: E402

BACKENDS = [e.name for e in plugins.backend_entries()
            if e.name != "jax" and e.error is None and importlib.util.find_spec(e.engine.split(".")[0]) is not None]
# Keras keeps a constant learning rate in a float32 variable, which rounds 0.001 (see
# test_a_float32_model_keeps_keras_float32_learning_rate); a power of two passes unchanged.
RATE = 2.0**-9
OPTIMIZERS = {
    "adam_amsgrad": lambda: optimizers.Adam(RATE, amsgrad=True),
    "sgd_nesterov": lambda: optimizers.SGD(RATE, momentum=0.9, nesterov=True),
    "rmsprop_centered": lambda: optimizers.RMSprop(RATE, momentum=0.5, centered=True),
    "adagrad": lambda: optimizers.Adagrad(RATE),
    "adadelta": lambda: optimizers.Adadelta(1.0),
    "adamax": lambda: optimizers.Adamax(RATE),
    "nadam": lambda: optimizers.Nadam(RATE),
    "adamw": lambda: optimizers.AdamW(RATE, weight_decay=0.01),
    "schedule": lambda: optimizers.Adam(schedules.ExponentialDecay(0.01, 3, 0.5)),
}


def _data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(40, 5))
    return x, (x @ rng.normal(size=5) > 0).astype(float), np.linspace(0.5, 1.5, 40)


def _trained(backend, dtype, optimizer, dropout=0.0):
    # A Keras file holds no seed: the loaded model draws its own, so the runs compared use no
    # shuffling, and Dropout only where predictions alone are compared.
    model = Sequential([Input((5,)), Dense(6, activation="relu", kernel_regularizer=regularizers.L2(0.01)),
                        Dropout(dropout), Dense(4, activation="tanh", trainable=False),
                        Dense(1, activation="sigmoid")])
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=["accuracy"],
                  weighted_metrics=["mse"], backend=backend, dtype=dtype, seed=3)
    x, y, w = _data()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, shuffle=False, sample_weight=w)
    return model


def _both(model, tmp_path, backend):
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.safetensors")
    return load_model(tmp_path / "m.keras", backend=backend), load_model(tmp_path / "m.safetensors", backend=backend)


def _same(a, b):
    assert len(a) == len(b)
    for p, q in zip(a, b):
        if isinstance(p, list | tuple):
            _same(p, q)
        else:
            np.testing.assert_array_equal(np.asarray(p), np.asarray(q))


def _continued(model):
    x, y, w = _data()
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, shuffle=False, sample_weight=w).history
    return history, model.get_weights(), model._compiled.runtime.get_optimizer_state(), model.optimizer.iterations


def _check(model, tmp_path, backend, dtype):
    via_keras, via_polynn = _both(model, tmp_path, backend)
    assert via_keras.dtype == dtype and via_keras.backend == backend
    assert via_keras.optimizer.iterations == model.optimizer.iterations
    assert [layer.trainable for layer in via_keras.layers] == [layer.trainable for layer in model.layers]
    x, _, _ = _data()
    np.testing.assert_array_equal(via_keras.predict(x, verbose=0), model.predict(x, verbose=0))
    _same(via_keras._compiled.runtime.get_optimizer_state(), via_polynn._compiled.runtime.get_optimizer_state())
    keras_run, polynn_run = _continued(via_keras), _continued(via_polynn)
    assert keras_run[0] == polynn_run[0]
    _same(keras_run[1:3], polynn_run[1:3])
    assert keras_run[3] == polynn_run[3]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_keras_file_comes_back_as_the_polynn_file_does(tmp_path, backend, dtype):
    _check(_trained(backend, dtype, OPTIMIZERS["adam_amsgrad"]()), tmp_path, backend, dtype)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_state_comes_back(tmp_path, name):
    _check(_trained("numpy", "float64", OPTIMIZERS[name]()), tmp_path, "numpy", "float64")


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_comes_back_and_predicts_as_the_model(tmp_path, backend):
    model = _trained(backend, "float64", OPTIMIZERS["adam_amsgrad"](), dropout=0.25)
    via_keras, _ = _both(model, tmp_path, backend)
    # The same layers and settings; the names are the ones Keras files carry (dense, dense_1, ...).
    def unnamed(config):
        return [{**layer, "config": {k: v for k, v in layer["config"].items() if k != "name"}}
                for layer in config["layers"]]

    assert unnamed(via_keras.get_config()) == unnamed(model.get_config())
    assert via_keras.layers[2].rate == 0.25
    x, _, _ = _data()
    np.testing.assert_array_equal(via_keras.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_float32_model_keeps_keras_float32_learning_rate(tmp_path):
    # Keras stores a constant learning rate as a float32 variable; a float32 model's file holds
    # float32(0.001), which the loaded optimizer then uses (as Keras would).
    model = _trained("numpy", "float32", optimizers.Adam(0.001))
    via_keras, _ = _both(model, tmp_path, "numpy")
    assert via_keras.optimizer.learning_rate == float(np.float32(0.001))


def test_weights_files_come_back(tmp_path):
    model = _trained("numpy", "float64", OPTIMIZERS["adam_amsgrad"]())
    model.save_weights(tmp_path / "w.weights.h5")
    fresh = Sequential.from_config(model.get_config())
    fresh.compile(loss="mse", dtype="float64")
    fresh.build((5,))
    fresh.load_weights(tmp_path / "w.weights.h5")
    _same(fresh.get_weights(), model.get_weights())
