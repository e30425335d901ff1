"""polynn -> Keras 3 file -> polynn, beside test_keras_files_export's training round trip: Dropout and the
other settings come back, and a .weights.h5 file gives back the weights bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("h5py")

from test_keras_parity import BACKENDS  # noqa: E402

from polynn import optimizers, regularizers  # noqa: E402
from polynn.layers import Dense, Dropout, Input  # noqa: E402
from polynn.models import Sequential, load_model  # noqa: E402


def _data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(40, 5))
    return x, (x @ rng.normal(size=5) > 0).astype(float)


def _trained(backend, dtype):
    model = Sequential([Input((5,)), Dense(6, activation="relu", kernel_regularizer=regularizers.L2(0.01)),
                        Dropout(0.25, noise_shape=(None, 6), seed=4), Dense(4, activation="tanh", trainable=False),
                        Dense(1, activation="sigmoid")])
    model.compile(optimizer=optimizers.Adam(0.01), loss="binary_crossentropy", metrics=["accuracy"],
                  backend=backend, dtype=dtype, seed=3)
    x, y = _data()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    return model


def _unnamed(config):
    """The layers' configs without their names (a Keras file names them: input_layer, dense, ...)."""
    return [{**layer, "config": {k: v for k, v in layer["config"].items() if k != "name"}}
            for layer in config["layers"]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_and_every_setting_come_back(tmp_path, backend):
    model = _trained(backend, "float64")
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras", backend=backend)
    assert _unnamed(loaded.get_config()) == _unnamed(model.get_config())
    x, _ = _data()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_weights_file_gives_back_the_weights(tmp_path, dtype):
    model = _trained("numpy", dtype)
    model.save_weights(tmp_path / "w.weights.h5")
    fresh = Sequential.from_config(model.get_config())
    fresh.compile(loss="mse", dtype=dtype)
    fresh.build((5,))
    fresh.load_weights(tmp_path / "w.weights.h5")
    for a, b in zip(fresh.get_weights(), model.get_weights(), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
