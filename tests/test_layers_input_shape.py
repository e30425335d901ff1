"""Keras's input_shape keyword on the first layer, for every layer family of issue 20: the model
it starts is the one an Input of that shape starts, in files too; a shape of the wrong rank is
refused when the layer is made."""

from __future__ import annotations

import numpy as np
import pytest

from polynn.errors import InvalidArgumentError
from polynn.layers import (
    AveragePooling1D,
    AveragePooling2D,
    BatchNormalization,
    Conv1D,
    Conv2D,
    Dense,
    Flatten,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    Input,
    LayerNormalization,
    MaxPooling1D,
    MaxPooling2D,
    Reshape,
)
from polynn.models import Sequential, load_model

FIRST = [
    (lambda **k: Conv2D(3, (3, 2), padding="same", **k), (6, 5, 2)),
    (lambda **k: Conv1D(3, 2, strides=2, **k), (7, 2)),
    (lambda **k: MaxPooling2D(2, **k), (6, 5, 2)),
    (lambda **k: AveragePooling1D(2, padding="same", **k), (7, 2)),
    (lambda **k: MaxPooling1D(3, **k), (7, 2)),
    (lambda **k: AveragePooling2D((2, 1), **k), (6, 5, 2)),
    (lambda **k: GlobalAveragePooling2D(keepdims=True, **k), (6, 5, 2)),
    (lambda **k: GlobalMaxPooling2D(**k), (6, 5, 2)),
    (lambda **k: GlobalAveragePooling1D(**k), (7, 2)),
    (lambda **k: GlobalMaxPooling1D(**k), (7, 2)),
    (lambda **k: Flatten(**k), (3, 4)),
    (lambda **k: Reshape((2, 6), **k), (3, 4)),
    (lambda **k: BatchNormalization(momentum=0.5, **k), (3, 4)),
    (lambda **k: LayerNormalization(axis=(1, 2), **k), (3, 4)),
]


def _trained(layers, weights=None):
    """The model of `layers` + Flatten + Dense(2), from `weights` if given, after a short fit."""
    model = Sequential([*layers, Flatten(), Dense(2)])
    model.compile("adam", "mse", backend="numpy", dtype="float64", seed=4)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, *model.input_shape))
    if weights is not None:
        model.set_weights(weights)
    start = model.get_weights()
    model.fit(x, rng.normal(size=(10, 2)), epochs=2, batch_size=4, verbose=0, shuffle=False)
    return model, x, start


@pytest.mark.parametrize("make, shape", FIRST, ids=[type(make()).__name__ for make, _ in FIRST])
def test_input_shape_on_the_first_layer_is_an_input_of_that_shape(make, shape, tmp_path):
    keyed, x, start = _trained([make(input_shape=list(shape))])  # Keras takes a list too
    assert keyed.input_shape == shape and keyed.layers[0].input_shape == shape
    plain, _, _ = _trained([Input(shape), make()], start)
    for a, b in zip(keyed.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(keyed.predict(x, verbose=0), plain.predict(x, verbose=0))
    # The keyword travels in the config and in polynn's model files.
    assert Sequential.from_config(keyed.get_config()).input_shape == shape
    path = tmp_path / "model.polynn"
    keyed.save(path)
    loaded = load_model(path)
    assert loaded.input_shape == shape
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), keyed.predict(x, verbose=0))


@pytest.mark.parametrize("make, shape, message", [
    (lambda: Conv2D(2, 3, input_shape=(8, 8)), (8, 8), r"Conv2D: invalid input shape=\(8, 8\); accepted: a per-sample "
                                                       r"shape of 3 axes"),
    (lambda: Conv1D(2, 3, input_shape=(8, 8, 1)), None, r"Conv1D: invalid input shape=\(8, 8, 1\)"),
    (lambda: MaxPooling2D(input_shape=(4,)), None, r"MaxPooling2D: invalid input shape=\(4,\)"),
    (lambda: GlobalMaxPooling1D(input_shape=(4, 4, 4)), None, r"GlobalMaxPooling1D: invalid input shape"),
    (lambda: Conv2D(2, 3, input_shape=(8, 0, 1)), None, r"Conv2D: invalid input_shape=\(8, 0, 1\); accepted: a tuple "
                                                        r"of positive integers"),
    (lambda: Flatten(input_shape="x"), None, r"Flatten: invalid input_shape='x'"),
    (lambda: Reshape((5,), input_shape=(2, 3)), None, r"Reshape: invalid input shape=\(2, 3\)"),
    (lambda: BatchNormalization(axis=2, input_shape=(4,)), None, r"BatchNormalization: invalid axis=2"),
    (lambda: LayerNormalization(axis=(1, 3), input_shape=(4, 2)), None, r"LayerNormalization: invalid axis=3"),
], ids=lambda v: None)
def test_an_input_shape_the_layer_cannot_take_is_refused_when_it_is_made(make, shape, message):
    with pytest.raises(InvalidArgumentError, match=message):
        make()
