"""A NaN or infinite loss: fit stops at the last finite step by default (or raises, or trains on),
the same on every backend; checkpoints and best-weight callbacks never take NaN for a good model."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from test_training_transactions import BACKENDS

from polynn.callbacks import Callback, EarlyStopping, ModelCheckpoint, ReduceLROnPlateau
from polynn.errors import InvalidArgumentError, NonFiniteLossError
from polynn.layers import Dense, Input
from polynn.models import Sequential, load_model
from polynn.optimizers import SGD

RNG = np.random.default_rng(0)
X = RNG.normal(size=(64, 3))
Y = X.sum(axis=1, keepdims=True) * 10
DIVERGING = 0.3  # SGD's rate on this data: the loss overflows to inf in the first epoch


def make_model(backend: str, policy: str | None = None, steps_per_execution="auto", rate=DIVERGING) -> Sequential:
    model = Sequential([Input((3,)), Dense(4, activation="relu"), Dense(1)])
    options = {} if policy is None else {"nonfinite_loss": policy}
    model.compile(SGD(learning_rate=rate), "mse", backend=backend, dtype="float64", seed=1,
                  steps_per_execution=steps_per_execution, **options)
    return model


class Recorder(Callback):
    """Each step's weights and loss, one step per call."""

    def __init__(self):
        super().__init__()
        self.weights, self.losses = {0: None}, {}

    def on_train_begin(self, logs=None):
        self.weights[0] = self.model.get_weights()

    def on_train_batch_end(self, batch, logs=None):
        self.weights[self.model.iterations] = self.model.get_weights()


def first_nonfinite_step(backend: str) -> tuple[int, dict]:
    """From a run that trains on in NaN: the 1-based step whose loss was first non-finite, and the
    weights after every step."""
    recorder, losses = Recorder(), []

    class Losses(Callback):
        def on_train_batch_end(self, batch, logs=None):
            losses.append(logs["loss"] * (batch + 1) - sum(losses))  # the step's own loss from the running mean

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        make_model(backend, "continue", 1).fit(X, Y, batch_size=8, epochs=2, verbose=0, shuffle=False,
                                               callbacks=[recorder, Losses()])
    bad = next(i for i, loss in enumerate(losses) if not math.isfinite(loss))
    return bad + 1, recorder.weights


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("per_call", ["auto", 1, 3])
def test_by_default_fit_stops_at_the_last_finite_step_and_says_where(backend, per_call):
    """Before: training ran on in NaN and inf, with only NumPy's overflow warnings."""
    bad, trajectory = first_nonfinite_step(backend)
    model = make_model(backend, steps_per_execution=per_call)
    with pytest.warns(RuntimeWarning, match=rf"epoch 1, batch {bad} \(training step {bad}\); training stopped"):
        history = model.fit(X, Y, batch_size=8, epochs=5, verbose=0, shuffle=False)
    assert model.iterations == bad - 1  # the state after the last step whose loss was finite
    for got, want in zip(model.get_weights(), trajectory[bad - 1]):
        np.testing.assert_array_equal(got, want)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert len(history.history["loss"]) == 1 and math.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_raise_policy_raises_a_polynn_error_after_keeping_the_last_finite_step(backend):
    bad, trajectory = first_nonfinite_step(backend)
    model = make_model(backend, "raise")
    with pytest.raises(NonFiniteLossError, match=rf"batch {bad} .*keeps its state after step {bad - 1}"):
        model.fit(X, Y, batch_size=8, epochs=5, verbose=0, shuffle=False)
    assert model.iterations == bad - 1
    for got, want in zip(model.get_weights(), trajectory[bad - 1]):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_continue_policy_trains_on_as_keras_does(backend):
    model = make_model(backend, "continue")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no stop warning from polynn
        warnings.filterwarnings("ignore", "overflow|invalid value", RuntimeWarning)
        history = model.fit(X, Y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    assert model.iterations == 16
    assert not all(math.isfinite(v) for v in history.history["loss"])


def test_the_policy_is_checked_at_compile():
    with pytest.raises(InvalidArgumentError, match="nonfinite_loss.*'stop', 'raise', 'continue'|nonfinite_loss"):
        make_model("numpy", "ignore")


def test_a_finite_run_is_the_same_under_every_policy():
    runs = []
    for policy in ("stop", "raise", "continue"):
        model = make_model("numpy", policy, rate=0.001)
        history = model.fit(X, Y, batch_size=8, epochs=3, verbose=0)
        runs.append((history.history, [w.tolist() for w in model.get_weights()], model.iterations))
    assert runs[0] == runs[1] == runs[2]


# ---- callbacks watching non-finite values -----------------------------------------------


def nan_from_the_first_epoch(tmp_path, callbacks):
    """A model whose weights and loss are NaN from epoch 1 on, trained under "continue"."""
    model = make_model("numpy", "continue", rate=50.0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "overflow|invalid value", RuntimeWarning)
        model.fit(X, Y, batch_size=8, epochs=3, verbose=0, shuffle=False, callbacks=callbacks)
    return model


def test_model_checkpoint_never_replaces_a_finite_checkpoint_with_nan(tmp_path):
    """Before: the every-epoch checkpoint was overwritten with NaN weights."""
    path = tmp_path / "last.safetensors"
    good = make_model("numpy", rate=0.001)
    good.fit(X, Y, batch_size=8, epochs=1, verbose=0)
    good.save(path)
    before = path.read_bytes()
    with pytest.warns(RuntimeWarning, match=r"weights are not finite; .*last.safetensors' was not written"):
        model = nan_from_the_first_epoch(tmp_path, [ModelCheckpoint(str(path), monitor="loss")])
    assert not all(np.isfinite(w).all() for w in model.get_weights())
    assert path.read_bytes() == before
    loaded = load_model(path)
    for got, want in zip(loaded.get_weights(), good.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_save_best_only_never_takes_nan_as_the_best(tmp_path):
    """Before: a NaN first epoch became the best, and no later epoch could beat it."""
    checkpoint = ModelCheckpoint(str(tmp_path / "best.safetensors"), monitor="loss", save_best_only=True)
    nan_from_the_first_epoch(tmp_path, [checkpoint])
    assert checkpoint.best is None
    assert not (tmp_path / "best.safetensors").exists()


def test_restore_best_weights_never_restores_nan_weights(tmp_path):
    """Before: EarlyStopping kept the NaN weights of the first epoch as the fallback best and restored them."""
    stopper = EarlyStopping(monitor="loss", patience=1, restore_best_weights=True)
    nan_from_the_first_epoch(tmp_path, [stopper])
    assert stopper.best is None and stopper.best_weights is None


def test_a_nan_monitor_is_no_improvement_for_reduce_lr_on_plateau(tmp_path):
    reducer = ReduceLROnPlateau(monitor="loss", patience=0, factor=0.5)
    model = nan_from_the_first_epoch(tmp_path, [reducer])
    assert model.learning_rate < 50.0  # NaN never improves, as in Keras (its best starts at inf)
