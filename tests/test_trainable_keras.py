"""A frozen layer trained as Keras 3 trains it: from Keras's initial weights, polynn and Keras (on
TensorFlow, float64) agree on every weight and loss, frozen from the start and after changing trainable."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
keras = pytest.importorskip("keras")

from polynn.layers import Dense  # noqa: E402
from polynn.models import Sequential  # noqa: E402
from polynn.optimizers import SGD  # noqa: E402

pytestmark = pytest.mark.slow  # Keras and TensorFlow: seconds to import and trace

# Powers of two throughout, so the float32 values Keras forms its constants from (item 2 of issue
# 18) are the float64 ones: the comparison is of what freezing does, not of constants.
LR, MOMENTUM, DECAY, L2, CLIP = 0.125, 0.5, 0.0625, 0.0625, 0.5


def _data():
    rng = np.random.RandomState(11)
    x = rng.normal(size=(48, 3))
    return x, np.tanh(x @ rng.normal(size=(3, 1))) + 0.1 * rng.normal(size=(48, 1))


@pytest.fixture(autouse=True)
def _float64():
    """Keras in float64 for the whole test: its loss reads floatx at fit time, not only at compile."""
    saved, saved_policy = keras.config.floatx(), keras.config.dtype_policy()
    # The default layer policy is made from floatx once and then kept: set both, restore both.
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    yield
    keras.config.set_floatx(saved)
    keras.config.set_dtype_policy(saved_policy)


def _keras_model(trainable):
    model = keras.Sequential([
        keras.Input((3,)),
        keras.layers.Dense(4, activation="tanh", kernel_regularizer=keras.regularizers.L2(L2),
                           kernel_constraint="non_neg", trainable=trainable[0]),
        keras.layers.Dense(3, activation="relu", kernel_regularizer=keras.regularizers.L2(L2),
                           trainable=trainable[1]),
        keras.layers.Dense(1, trainable=trainable[2]),
    ])
    model.compile(_keras_optimizer(), "mse")
    return model


def _keras_optimizer():
    return keras.optimizers.SGD(LR, momentum=MOMENTUM, weight_decay=DECAY, global_clipnorm=CLIP)


def _polynn_model(trainable, weights):
    model = Sequential([
        Dense(4, input_dim=3, activation="tanh", kernel_regularizer={"class_name": "l2", "config": {"l2": L2}},
              kernel_constraint="non_neg", trainable=trainable[0]),
        Dense(3, activation="relu", kernel_regularizer={"class_name": "l2", "config": {"l2": L2}},
              trainable=trainable[1]),
        Dense(1, trainable=trainable[2]),
    ])
    model.compile(SGD(LR, momentum=MOMENTUM, weight_decay=DECAY, global_clipnorm=CLIP), "mse", dtype="float64")
    model.set_weights(weights)
    return model


def _fit(model, x, y):
    return model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history["loss"]


def _assert_close(ours, theirs):
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_a_frozen_layer_trains_as_in_keras():
    x, y = _data()
    theirs = _keras_model((False, True, True))
    ours = _polynn_model((False, True, True), theirs.get_weights())
    start = ours.get_weights()
    np.testing.assert_allclose(_fit(ours, x, y), _fit(theirs, x, y), rtol=1e-12)
    _assert_close(ours.get_weights(), theirs.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(ours.get_weights()[:2], start[:2]))
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), rtol=1e-12)


def test_trainable_changed_between_fits_as_keras_after_compile_again():
    # Keras on TensorFlow needs compile() again for the change (on torch it acts at once; on JAX
    # the next fit fails); polynn takes it at the next fit. Keras's compile() with the same
    # optimizer object keeps its momentum slots, as polynn keeps them.
    x, y = _data()
    theirs = _keras_model((True, True, True))
    ours = _polynn_model((True, True, True), theirs.get_weights())
    _fit(ours, x, y), _fit(theirs, x, y)
    for model in (ours, theirs):
        model.layers[0].trainable = False
        model.layers[2].trainable = False
    theirs.compile(theirs.optimizer, "mse")
    np.testing.assert_allclose(_fit(ours, x, y), _fit(theirs, x, y), rtol=1e-12)
    _assert_close(ours.get_weights(), theirs.get_weights())
    for model in (ours, theirs):
        model.layers[0].trainable = True
    theirs.compile(theirs.optimizer, "mse")
    np.testing.assert_allclose(_fit(ours, x, y), _fit(theirs, x, y), rtol=1e-12)
    _assert_close(ours.get_weights(), theirs.get_weights())
