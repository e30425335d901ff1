"""Inputs a user can get wrong get a polynn error naming the value; the loop's Keras edge behaviours hold."""

from __future__ import annotations

import json

import numpy as np
import pytest

import polynn
from polynn import losses, metrics
from polynn.callbacks import Callback, History
from polynn.constraints import MaxNorm, UnitNorm
from polynn.errors import InvalidArgumentError, ShapeMismatchError
from polynn.layers import Dense, Dropout
from polynn.models import Sequential
from polynn.optimizers import Nadam

RNG = np.random.default_rng(0)
X = RNG.random((40, 3))
Y = (X.sum(axis=1, keepdims=True) > 1.5).astype(float)


def _model(**compile_kwargs):
    model = Sequential([Dense(4, input_dim=3, activation="tanh"), Dense(1, activation="sigmoid")])
    compile_kwargs.setdefault("loss", "binary_crossentropy")
    model.compile(seed=1, **compile_kwargs)
    return model


class _Counter(Callback):
    def __init__(self):
        super().__init__()
        self.begins, self.ends = [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.begins.append(batch)

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(batch)


def test_batch_hooks_run_once_per_call_with_several_steps_per_execution():
    model = _model(steps_per_execution=2)
    counter = _Counter()
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0, callbacks=[counter])  # 5 steps: calls of 2, 2, 1
    assert counter.begins == [0, 2, 4]
    assert counter.ends == [1, 3, 4]


@pytest.mark.parametrize("bad", [np.array([[np.nan, 0, 0]]), np.array([[np.inf, 0, 0]]), np.array([[1e300, 0, 0]])])
def test_non_finite_inputs_are_refused(bad):
    model = _model()  # float32: 1e300 does not fit
    x = np.vstack([X[:-1], bad])
    with pytest.raises(InvalidArgumentError, match="NaN or infinite"):
        model.fit(x, Y, verbose=0)
    with pytest.raises(InvalidArgumentError, match="NaN or infinite"):
        model.fit(X, np.vstack([Y[:-1], [[np.nan]]]), verbose=0)


def test_finite_inputs_whose_sum_overflows_are_taken_and_bad_ones_counted():
    """The finiteness check sums first; a sum that overflows (float32 values near its maximum) must
    not refuse finite data, and refused data names how many values are bad, +inf and -inf together
    included (their sum is NaN)."""
    model = _model()
    big = np.full((40, 3), 3e38)
    big[::2] *= -1
    big[:2] = 3e38  # partial sums overflow both ways: the sum is NaN
    assert not np.isfinite(np.add.reduce(big.astype(np.float32), axis=None))
    model.fit(big, Y, epochs=1, verbose=0)
    x = X.copy()
    x[0, 0], x[1, 1], x[2, 2] = np.inf, -np.inf, np.nan
    with pytest.raises(InvalidArgumentError, match="3 values that are NaN or infinite"):
        model.fit(x, Y, verbose=0)


def test_complex_inputs_are_refused():
    with pytest.raises(InvalidArgumentError, match="real numbers"):
        _model().fit(X + 1j, Y, verbose=0)


def test_errors_name_the_method_that_got_the_bad_batch_size():
    model = _model()
    with pytest.raises(InvalidArgumentError, match="^predict: invalid batch_size=0"):
        model.predict(X, batch_size=0)
    with pytest.raises(InvalidArgumentError, match="^evaluate: invalid batch_size=0"):
        model.evaluate(X, Y, batch_size=0)


def test_verbose_accepts_booleans_as_keras():
    history = _model().fit(X, Y, epochs=1, verbose=False)
    assert history.params["verbose"] == 0


@pytest.mark.parametrize("callbacks", [History(), [3], "history"])
def test_callbacks_must_be_a_list_of_callbacks(callbacks):
    with pytest.raises(InvalidArgumentError, match="callbacks"):
        _model().fit(X, Y, verbose=0, callbacks=callbacks)


def test_metrics_must_read_the_labels_they_are_given():
    labels = RNG.integers(0, 4, size=(40,))
    onehot = np.eye(4)[labels]
    model = Sequential([Dense(4, input_dim=3, activation="softmax")])
    model.compile(loss="categorical_crossentropy", metrics=["sparse_categorical_accuracy"])
    with pytest.raises(ShapeMismatchError, match="sparse_categorical_accuracy"):
        model.fit(X, onehot, verbose=0)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["categorical_accuracy"])
    with pytest.raises(ShapeMismatchError, match="categorical_accuracy"):
        model.fit(X, labels, verbose=0)
    model.compile(loss="categorical_crossentropy", metrics=[metrics.Precision(class_id=7)])
    with pytest.raises(InvalidArgumentError, match="class_id=7"):
        model.evaluate(X, onehot, verbose=0)


@pytest.mark.parametrize("layer", [Dense(2, input_dim=3, kernel_constraint=MaxNorm(axis=2)),
                                   Dense(2, input_dim=3, bias_constraint=UnitNorm(axis=1))])
def test_constraint_axes_are_checked_at_compile(layer):
    model = Sequential([layer])
    with pytest.raises(InvalidArgumentError, match="axis"):
        model.compile(loss="mse")


def test_numpy_scalars_in_configs_become_python_numbers(tmp_path):
    model = Sequential([Dense(np.int64(4), input_dim=np.int32(3)), Dropout(np.float32(0.5))])
    assert type(model.layers[0].units) is int and type(model.layers[1].rate) is float
    model.compile(loss="mse")
    json.dumps(model.get_config())
    model.save(tmp_path / "scalars.safetensors")
    assert polynn.load_model(tmp_path / "scalars.safetensors").layers == model.layers


def test_saving_into_a_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidArgumentError, match="existing directory"):
        _model().save(tmp_path / "missing" / "model.safetensors")


def test_a_device_the_backend_lacks_is_refused():
    model = Sequential([Dense(1, input_dim=3)])
    with pytest.raises(InvalidArgumentError, match="device"):
        model.compile(loss="mse", backend="numpy", device="cuda:0")


@pytest.mark.parametrize("layers", ["dense", Dense(3)])
def test_sequential_takes_a_list_of_layers(layers):
    with pytest.raises(InvalidArgumentError, match="invalid layers=.*accepted: a list or tuple of layers"):
        Sequential(layers)


def test_epochs_zero_trains_nothing_and_returns_an_empty_history():
    x = np.random.default_rng(0).random((20, 3))
    model = Sequential([Dense(1, input_dim=3)])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"], backend="numpy", seed=1)
    before = model.get_weights()
    history = model.fit(x, x[:, :1], epochs=0, verbose=0)
    assert history.history == {} and history.epoch == [] and model.iterations == 0
    np.testing.assert_array_equal(model.get_weights()[0], before[0])
    with pytest.raises(InvalidArgumentError, match=r"invalid epochs=-1; accepted: an integer >= 0"):
        model.fit(x, x[:, :1], epochs=-1, verbose=0)


def test_empty_validation_data_is_refused():
    x = np.random.default_rng(0).random((20, 3))
    model = Sequential([Dense(1, input_dim=3)])
    model.compile(optimizer="adam", loss="mse", backend="numpy", seed=1)
    with pytest.raises(InvalidArgumentError, match="invalid validation_data='0 samples'"):
        model.fit(x, x[:, :1], validation_data=(x[:0], x[:0, :1]), verbose=0)


def test_a_failed_compile_leaves_the_model_as_it_was():
    x = np.random.default_rng(0).random((20, 3))
    y = x.sum(axis=1, keepdims=True)
    model = Sequential([Dense(1, input_dim=3)])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"], backend="numpy", seed=1)
    model.fit(x, y, epochs=2, verbose=0)
    optimizer, iterations, predictions = model.optimizer, model.iterations, model.predict(x, verbose=0)
    with pytest.raises(InvalidArgumentError, match="device"):
        model.compile(optimizer="sgd", loss="mae", backend="numpy", device="cuda:0")
    assert model.optimizer is optimizer and model.iterations == iterations
    np.testing.assert_array_equal(model.predict(x, verbose=0), predictions)
    # Training goes on from where it was, Adam's slots included.
    again = Sequential([Dense(1, input_dim=3)])
    again.compile(optimizer="adam", loss="mse", metrics=["mae"], backend="numpy", seed=1)
    again.fit(x, y, epochs=3, verbose=0)
    model.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(model.get_weights()[0], again.get_weights()[0])


def test_nadam_scalars_stay_cheap_and_exact_at_large_steps():
    beta_1 = float(np.float32(0.9))  # Keras's float32-rounded beta_1 in mu_s (polynn.optimizers.Nadam)
    t = 10**6
    scalars = Nadam().step_scalars(np.array([t]))
    # Past 2000 steps mu_s == beta_1 in double precision, so the running product is
    # prod(mu_1..mu_2000) * beta_1**(s - 2000): here it has underflowed to 0.
    s = t + 1
    assert scalars["c_m"][0] == beta_1
    assert scalars["c_g"][0] == 1 - beta_1
    assert scalars["c_v"][0] == 1 / (1 - float(np.float32(0.999)) ** s)


def test_standalone_losses_and_metrics_check_shapes():
    with pytest.raises(ShapeMismatchError):
        losses.MeanSquaredError()(np.zeros((3, 2)), np.zeros((3, 5)))
    with pytest.raises(ShapeMismatchError, match="sample_weight"):
        losses.MeanSquaredError()(np.zeros((3, 2)), np.zeros((3, 2)), sample_weight=[1, 2])
    with pytest.raises(InvalidArgumentError, match="labels"):
        losses.SparseCategoricalCrossentropy()([5], [[0.5, 0.5]])
    with pytest.raises(ShapeMismatchError):
        metrics.BinaryAccuracy().update_state(np.zeros((3, 1)), np.zeros((4, 1)))
