"""Callbacks behave as Keras documents them, and fit's epoch/weighting arguments work with them."""

from __future__ import annotations

import csv
import errno
import math

import numpy as np
import pytest

from polynn.callbacks import (
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
)
from polynn.errors import FileAccessError, InvalidArgumentError, ModelFileError
from polynn.layers import Dense
from polynn.models import Sequential, load_model
from polynn.optimizers import SGD, Adam
from polynn.schedules import ExponentialDecay

rng = np.random.default_rng(99)
X = rng.random((64, 4))
Y = rng.integers(0, 2, size=(64, 1))
X_VAL = rng.random((16, 4))
Y_VAL = rng.integers(0, 2, size=(16, 1))
STEPS = 4  # batches per epoch at batch_size=16


def make_model(optimizer=None, seed=5):
    model = Sequential([Dense(6, input_dim=4, activation="tanh"), Dense(1, activation="sigmoid")])
    model.compile(optimizer=optimizer if optimizer is not None else SGD(learning_rate=0.1),
                  loss="binary_crossentropy", metrics=["accuracy"], dtype="float64", seed=seed)
    return model


def fit(model, epochs=1, callbacks=(), **kwargs):
    kwargs.setdefault("batch_size", 16)
    return model.fit(X, Y, epochs=epochs, verbose=0, callbacks=list(callbacks), **kwargs)


def scripted(values, key="score"):
    """A callback that logs values[epoch] as `key`, standing in for a monitored metric."""
    def on_epoch_end(epoch, logs):
        logs[key] = values[epoch]
    return LambdaCallback(on_epoch_end=on_epoch_end)


class Recorder(LambdaCallback):
    """Keeps each epoch's logs and weights."""

    def __init__(self):
        self.logs, self.weights, self.epochs = [], [], []
        super().__init__(on_epoch_end=self._end)

    def _end(self, epoch, logs):
        self.epochs.append(epoch)
        self.logs.append(dict(logs))
        self.weights.append(self.model.get_weights())


# ---- EarlyStopping ------------------------------------------------------------------------------


def test_early_stopping_stops_after_patience_without_improvement():
    # With a zero learning rate and a fixed batch order the loss never changes (shuffling would
    # reorder the sums and move it by an ulp, which min_delta=0 counts as an improvement).
    model = make_model(SGD(learning_rate=0.0))
    stopper = EarlyStopping(monitor="loss", patience=3)
    history = fit(model, 10, [stopper], shuffle=False)
    assert len(history.history["loss"]) == 4
    assert stopper.stopped_epoch == 3 and model.iterations == 4 * STEPS


def test_early_stopping_restores_the_best_weights():
    model = make_model()
    recorder = Recorder()
    stopper = EarlyStopping(monitor="score", mode="min", patience=2, restore_best_weights=True)
    fit(model, 10, [scripted([3.0, 1.0, 2.0, 2.0, 0.0]), recorder, stopper])
    assert recorder.epochs == [0, 1, 2, 3]
    assert stopper.best_epoch == 1 and stopper.best == 1.0
    for restored, best in zip(model.get_weights(), recorder.weights[1]):
        np.testing.assert_array_equal(restored, best)
    assert not np.array_equal(model.get_weights()[0], recorder.weights[3][0])


def test_early_stopping_min_delta_baseline_and_start_from_epoch():
    # Improvements smaller than min_delta do not count.
    stopper = EarlyStopping(monitor="score", mode="min", patience=1, min_delta=0.5)
    fit(make_model(), 10, [scripted([3.0, 2.8, 2.6, 1.0]), stopper])
    assert stopper.stopped_epoch == 1
    # A baseline not beaten does not reset the wait: the first epoch counts towards patience.
    stopper = EarlyStopping(monitor="score", mode="max", patience=2, baseline=0.9)
    history = fit(make_model(), 10, [scripted([0.5] * 10), stopper])
    assert len(history.history["loss"]) == 2
    stopper = EarlyStopping(monitor="score", mode="max", patience=2)
    history = fit(make_model(), 10, [scripted([0.5] * 10), stopper])
    assert len(history.history["loss"]) == 3
    # Epochs before start_from_epoch are not watched.
    stopper = EarlyStopping(monitor="score", mode="min", patience=1, start_from_epoch=3)
    history = fit(make_model(), 10, [scripted([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), stopper])
    assert len(history.history["loss"]) == 5


def test_early_stopping_mode_auto():
    stopper = EarlyStopping(monitor="val_accuracy", patience=1)
    fit(make_model(), 2, [stopper], validation_data=(X_VAL, Y_VAL))
    assert stopper.monitor_op is np.greater
    stopper = EarlyStopping(monitor="val_loss", patience=1)
    fit(make_model(), 2, [stopper], validation_data=(X_VAL, Y_VAL))
    assert stopper.monitor_op is np.less
    with pytest.raises(InvalidArgumentError, match="mode"):
        fit(make_model(), 1, [EarlyStopping(monitor="score")])
    with pytest.raises(InvalidArgumentError, match="mode"):
        EarlyStopping(mode="up")


def test_early_stopping_warns_on_missing_monitor():
    with pytest.warns(UserWarning, match="val_loss"):
        history = fit(make_model(), 2, [EarlyStopping(patience=0)])
    assert len(history.history["loss"]) == 2


# ---- ModelCheckpoint ----------------------------------------------------------------------------


def test_model_checkpoint_save_best_only_writes_on_improvement(tmp_path):
    template = str(tmp_path / "ckpt-{epoch:02d}-{score:.3f}.safetensors")
    checkpoint = ModelCheckpoint(template, monitor="score", mode="min", save_best_only=True)
    model = make_model()
    fit(model, 4, [scripted([3.0, 1.0, 2.0, 0.5]), checkpoint])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt-01-3.000.safetensors", "ckpt-02-1.000.safetensors", "ckpt-04-0.500.safetensors"]
    second = load_model(tmp_path / "ckpt-02-1.000.safetensors")
    assert second.iterations == 2 * STEPS
    last = load_model(tmp_path / "ckpt-04-0.500.safetensors")
    for a, b in zip(last.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_model_checkpoint_every_epoch_and_weights_only(tmp_path):
    checkpoint = ModelCheckpoint(str(tmp_path / "w-{epoch}.safetensors"), save_weights_only=True)
    model = make_model()
    fit(model, 2, [checkpoint])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w-1.safetensors", "w-2.safetensors"]
    with pytest.raises(ModelFileError, match="weights only"):
        load_model(tmp_path / "w-2.safetensors")
    fresh = make_model(seed=123)
    fresh.load_weights(tmp_path / "w-2.safetensors")
    for a, b in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_model_checkpoint_by_batches(tmp_path):
    checkpoint = ModelCheckpoint(str(tmp_path / "e{epoch}-b{batch}.safetensors"), save_freq=3)
    fit(make_model(), 2, [checkpoint])
    # 8 batches: saves after the 3rd and the 6th (epoch 2, its 2nd batch).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e1-b3.safetensors", "e2-b2.safetensors"]
    assert load_model(tmp_path / "e2-b2.safetensors").iterations == 6


def test_model_checkpoint_rejects_bad_arguments(tmp_path):
    with pytest.raises(InvalidArgumentError, match="save_freq"):
        ModelCheckpoint(str(tmp_path / "x"), save_freq="batch")
    with pytest.raises(InvalidArgumentError, match="filepath"):
        fit(make_model(), 1, [ModelCheckpoint(str(tmp_path / "{nope}.safetensors"))])


# ---- TerminateOnNaN -----------------------------------------------------------------------------


def test_terminate_on_nan_stops_at_the_first_nan_batch():
    y = Y.astype(float)
    y[40] = 1e200  # in the third batch of the first epoch, unshuffled: its squared error overflows to inf
    model = Sequential([Dense(1, input_dim=4)])
    # Keras's behaviour, under the policy that trains on: polynn's default stops by itself
    # (tests/test_nonfinite_loss.py).
    model.compile(optimizer=SGD(learning_rate=0.1), loss="mse", dtype="float64", seed=5, nonfinite_loss="continue")
    history = model.fit(X, y, batch_size=16, epochs=5, shuffle=False, verbose=0, callbacks=[TerminateOnNaN()])
    assert model.iterations == 3
    assert len(history.history["loss"]) == 1 and not math.isfinite(history.history["loss"][0])


# ---- learning-rate callbacks --------------------------------------------------------------------


def test_learning_rate_scheduler_sets_and_logs_the_rate():
    model = make_model(SGD(learning_rate=0.1))
    scheduler = LearningRateScheduler(lambda epoch, lr: lr if epoch < 2 else lr * 0.5)
    history = fit(model, 4, [scheduler])
    assert history.history["learning_rate"] == [0.1, 0.1, 0.05, 0.025]
    assert model.learning_rate == 0.025


def test_learning_rate_scheduler_rate_is_the_one_used():
    # A zero rate from epoch 1 on freezes plain SGD: the weights stay those after epoch 0.
    model = make_model(SGD(learning_rate=0.1))
    recorder = Recorder()
    fit(model, 3, [LearningRateScheduler(lambda epoch: 0.1 if epoch == 0 else 0.0), recorder])
    assert not np.array_equal(recorder.weights[0][0], make_model().get_weights()[0])
    for a, b in zip(recorder.weights[0], recorder.weights[2]):
        np.testing.assert_array_equal(a, b)


def test_learning_rate_scheduler_refuses_a_schedule_optimizer():
    model = make_model(SGD(learning_rate=ExponentialDecay(0.1, 10, 0.5)))
    with pytest.raises(InvalidArgumentError, match="LearningRateSchedule"):
        fit(model, 1, [LearningRateScheduler(lambda epoch, lr: lr)])


def test_reduce_lr_on_plateau_reduces_after_patience_with_cooldown():
    model = make_model(SGD(learning_rate=1.0))
    reducer = ReduceLROnPlateau(monitor="score", mode="min", factor=0.5, patience=2, cooldown=2, min_lr=0.2)
    history = fit(model, 9, [scripted([1.0] * 9), reducer])
    # Rates logged at each epoch's end, before that epoch's reduction (as Keras). After a
    # reduction, the cooldown's last epoch already counts towards the next patience (as Keras).
    assert history.history["learning_rate"] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]
    assert model.learning_rate == 0.2  # floored at min_lr


def test_reduce_lr_on_plateau_improvement_resets_the_wait():
    model = make_model(SGD(learning_rate=1.0))
    reducer = ReduceLROnPlateau(monitor="score", mode="min", factor=0.1, patience=2, min_delta=0.1)
    fit(model, 5, [scripted([5.0, 4.0, 3.0, 2.95, 2.0]), reducer])
    assert model.learning_rate == 1.0
    with pytest.raises(InvalidArgumentError, match="factor"):
        ReduceLROnPlateau(factor=1.0)


def test_reduced_rate_is_saved_and_resumed(tmp_path):
    def run(interrupt):
        model = make_model(Adam(learning_rate=0.05))
        fit(model, 2, [scripted([1.0, 1.0]), ReduceLROnPlateau(monitor="score", mode="min", patience=1, factor=0.5)])
        assert model.learning_rate == 0.025
        if interrupt:
            model.save(tmp_path / "m.safetensors")
            model = load_model(tmp_path / "m.safetensors")
        fit(model, 3, initial_epoch=2)
        return model

    resumed, straight = run(True), run(False)
    assert resumed.learning_rate == 0.025
    for a, b in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(a, b)


# ---- CSVLogger and LambdaCallback ---------------------------------------------------------------


def test_csv_logger_writes_and_appends(tmp_path):
    path = tmp_path / "log.csv"
    model = make_model()
    history = fit(model, 2, [CSVLogger(str(path))], validation_data=(X_VAL, Y_VAL))
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert [float(r["val_loss"]) for r in rows] == history.history["val_loss"]
    fit(model, 3, [CSVLogger(str(path), append=True)], initial_epoch=2, validation_data=(X_VAL, Y_VAL))
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith("epoch,") and lines[3].startswith("2,")


def test_csv_logger_separator_and_missing_validation_columns(tmp_path):
    path = tmp_path / "log.tsv"
    fit(make_model(), 1, [CSVLogger(str(path), separator="\t")])
    header, row = path.read_text().splitlines()
    assert header.split("\t") == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert row.split("\t")[-2:] == ["NA", "NA"]


def test_lambda_callback_hooks_and_batches():
    calls = []
    callback = LambdaCallback(
        on_train_begin=lambda logs: calls.append("begin"),
        on_epoch_begin=lambda epoch, logs: calls.append(f"epoch {epoch}"),
        on_train_batch_end=lambda batch, logs: calls.append(f"batch {batch}"),
        on_train_end=lambda logs: calls.append("end"),
        note="kept")
    assert callback.note == "kept" and callback.wants_batches()
    fit(make_model(), 2, [callback])
    assert calls == ["begin", "epoch 0", "batch 0", "batch 1", "batch 2", "batch 3",
                     "epoch 1", "batch 0", "batch 1", "batch 2", "batch 3", "end"]
    assert not LambdaCallback(on_epoch_end=lambda epoch, logs: None).wants_batches()


# ---- fit arguments with callbacks ---------------------------------------------------------------


def test_validation_freq_logs_validation_every_second_epoch():
    recorder = Recorder()
    fit(make_model(), 4, [recorder], validation_data=(X_VAL, Y_VAL), validation_freq=2)
    assert ["val_loss" in logs for logs in recorder.logs] == [False, True, False, True]


def test_initial_epoch_numbers_the_epochs():
    recorder = Recorder()
    history = fit(make_model(), 4, [recorder], initial_epoch=2)
    assert recorder.epochs == [2, 3] and history.epoch == [2, 3]


def test_class_weight_equals_the_matching_sample_weight():
    weighted = make_model()
    fit(weighted, 2, class_weight={0: 1.0, 1: 3.0})
    by_sample = make_model()
    fit(by_sample, 2, sample_weight=np.where(Y[:, 0] == 1, 3.0, 1.0))
    for a, b in zip(weighted.get_weights(), by_sample.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-15)
    plain = make_model()
    fit(plain, 2)
    assert not np.allclose(plain.get_weights()[0], weighted.get_weights()[0])


# ---- files the callbacks write ----------------------------------------------------------------


def test_a_checkpoint_folder_that_cannot_be_made_is_a_polynn_error_naming_it(tmp_path):
    """Before: os.makedirs' raw OSError."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(FileAccessError, match=r"ModelCheckpoint: cannot create the folder .*(ENOTDIR|EEXIST)"):
        fit(make_model(), 1, [ModelCheckpoint(str(blocker / "sub" / "m.safetensors"))])


def test_a_csv_log_that_cannot_be_opened_is_a_polynn_error_and_still_an_os_error(tmp_path):
    """Before: open()'s raw error. FileAccessError is also an OSError, as the raw error was."""
    with pytest.raises(OSError) as raised:
        fit(make_model(), 1, [CSVLogger(str(tmp_path / "missing" / "log.csv"))])
    assert isinstance(raised.value, FileAccessError)
    assert raised.value.errno == errno.ENOENT
    assert "CSVLogger: cannot open the log file" in str(raised.value) and "log.csv" in str(raised.value)


def test_thresholds_the_core_compares_in_float64_take_any_finite_float():
    """Found in review: float32's cap, for values that reach the engine, had reached callbacks too."""
    assert EarlyStopping(baseline=1e39).baseline == 1e39
    assert ModelCheckpoint("m.safetensors", initial_value_threshold=1.7e308).best == 1.7e308
    with pytest.raises(InvalidArgumentError, match="ModelCheckpoint: invalid initial_value_threshold=nan"):
        ModelCheckpoint("m.safetensors", initial_value_threshold=float("nan"))
