"""The shared training loop on the NumPy backend: batching, shuffling, validation, weighting,
logging, History, reproducibility, and the numbers it reports against independent recomputation."""

from __future__ import annotations

import io
import re
import sys

import numpy as np
import pytest

import polynn
from polynn import losses, optimizers, regularizers
from polynn import metrics as metrics_module
from polynn import random as _random
from polynn.callbacks import Callback
from polynn.errors import InvalidArgumentError
from polynn.layers import Dense, Dropout
from polynn.models import Sequential


def assert_same_run(a, b):
    """Bit-identical weights and history."""
    for wa, wb in zip(a[0], b[0]):
        np.testing.assert_array_equal(wa, wb)
    assert a[1] == b[1]


def run(model, x, y, **fit_kwargs):
    fit_kwargs.setdefault("verbose", 0)
    history = model.fit(x, y, **fit_kwargs)
    return model.get_weights(), history.history


# ---- learning ---------------------------------------------------------------------------

def test_learns_a_linearly_separable_problem(binary_data, binary_model):
    x, y = binary_data
    model = binary_model(optimizer=optimizers.Adam(learning_rate=0.02))
    history = model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    loss = history.history["loss"]
    assert loss[-1] < 0.5 * loss[0]
    assert all(later <= earlier * 1.05 for earlier, later in zip(loss, loss[1:]))
    assert history.history["accuracy"][-1] >= 0.95
    _, accuracy = model.evaluate(x, y, verbose=0)
    assert accuracy >= 0.95


def test_blog_example_runs(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "blog.py"
    source = path.read_text()
    assert "keras" not in source.replace("Keras", "") and "tensorflow" not in source.split("def main")[0]
    spec = importlib.util.spec_from_file_location("blog_example", path)
    blog = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(blog)
    blog.main(["--epochs", "1", "--seed", "0"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/1"
    assert re.match(r"^313/313 .* - accuracy: \d\.\d{4} - loss: \d\.\d{4} - val_accuracy: \d\.\d{4} - "
                    r"val_loss: \d\.\d{4}$", lines[1])
    assert re.match(r"^Test loss: \d\.\d{4} - test accuracy: \d\.\d{4} \(backend numpy, float32\)$", lines[2])


# ---- History and logging ----------------------------------------------------------------

def test_history_contents(binary_data, binary_model):
    x, y = binary_data
    model = binary_model()
    history = model.fit(x, y, epochs=3, batch_size=32, validation_split=0.25, verbose=0)
    assert history is model.history
    assert history.epoch == [0, 1, 2]
    assert history.params == {"verbose": 0, "epochs": 3, "steps": int(np.ceil(150 / 32))}
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    for values in history.history.values():
        assert len(values) == 3 and all(type(v) is float for v in values)


VERBOSE2_LINE = re.compile(
    r"^(\d+)/\1 - \d+s - \d+(us|ms|s)/step - accuracy: \d\.\d{4} - loss: \d\.\d{4} - "
    r"val_accuracy: \d\.\d{4} - val_loss: \d\.\d{4}$")


def test_verbose_2_prints_one_keras_line_per_epoch(binary_data, binary_model, capsys):
    x, y = binary_data
    model = binary_model()
    history = model.fit(x, y, epochs=2, batch_size=32, validation_data=(x[:50], y[:50]), verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    for line, epoch in zip((lines[1], lines[3]), (0, 1)):
        assert VERBOSE2_LINE.match(line), line
        assert line.startswith(f"{int(np.ceil(200 / 32))}/{int(np.ceil(200 / 32))} - ")
        assert f"loss: {history.history['loss'][epoch]:.4f}" in line
        assert f"val_accuracy: {history.history['val_accuracy'][epoch]:.4f}" in line


def test_verbose_1_off_a_terminal_prints_one_line_per_epoch(binary_data, binary_model, capsys):
    x, y = binary_data
    binary_model().fit(x, y, epochs=2, batch_size=20, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[0] == "Epoch 1/2"
    assert "\r" not in "".join(lines)
    assert re.match(r"^10/10 \S{20} \d+s \d+(us|ms|s)/step - accuracy: \d\.\d{4} - loss: \d\.\d{4}$", lines[1])


def test_verbose_1_on_a_terminal_redraws_the_bar_in_place(binary_data, binary_model, monkeypatch):
    class Terminal(io.StringIO):
        encoding = "utf-8"

        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    x, y = binary_data
    binary_model().fit(x, y, epochs=1, batch_size=20, verbose=1)
    out = terminal.getvalue()
    assert out.startswith("Epoch 1/1\n")
    frames = out[len("Epoch 1/1\n"):].rstrip("\n").split("\r")[1:]
    assert len(frames) >= 2  # redrawn at least once before the final frame
    assert frames[-1].startswith("10/10 " + "\u2501" * 20)
    assert out.endswith("\n") and out.count("\n") == 2


def test_verbose_0_is_silent(binary_data, binary_model, capsys):
    x, y = binary_data
    model = binary_model()
    model.fit(x, y, epochs=2, verbose=0, validation_split=0.1)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""


class WeightsAtEachBatch(Callback):
    def __init__(self):
        super().__init__()
        self.weights, self.logs = [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.weights.append(self.model.get_weights())

    def on_train_batch_end(self, batch, logs=None):
        self.logs.append(dict(logs))


def hand_loss_and_hits(weights, x, y, l2):
    """BCE with Keras's clip, per sample, the L2 penalty, and the hits at threshold 0.5."""
    kernel, bias = weights
    p = 1 / (1 + np.exp(-(x @ kernel + bias)))
    q = np.clip(p, 1e-7, 1 - 1e-7)
    per_sample = -(y * np.log(q) + (1 - y) * np.log(1 - q))[:, 0]
    hits = (y[:, 0] == (p[:, 0] > 0.5)).astype(np.float64)
    # The penalty's factor is float32-rounded, as Keras 3 casts it (polynn.regularizers).
    return per_sample, float(np.float32(l2)) * np.sum(kernel ** 2), hits


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
def test_logged_loss_and_accuracy_equal_an_independent_recomputation(binary_data, weighted):
    """As Keras: sample weights weight the loss and `weighted_metrics`, never `metrics`."""
    x, y = binary_data
    l2 = 0.01
    model = Sequential([Dense(1, input_dim=4, activation="sigmoid", kernel_regularizer=regularizers.L2(l2))])
    model.compile(optimizer=optimizers.SGD(0.5), loss="binary_crossentropy", metrics=["accuracy"],
                  weighted_metrics=["accuracy"], dtype="float64", seed=1)
    sw = np.random.default_rng(1).uniform(0.1, 2.0, size=len(x)) if weighted else None
    recorder = WeightsAtEachBatch()
    batch = 64  # 200 samples: three batches of 64 and one of 8
    history = model.fit(x, y, batch_size=batch, epochs=2, shuffle=False, sample_weight=sw,
                        callbacks=[recorder], verbose=0)
    w = np.ones(len(x)) if sw is None else sw
    for epoch in range(2):
        loss_sum = count = hit_sum = weighted_hit_sum = weight_sum = 0.0
        for k, start in enumerate(range(0, len(x), batch)):
            rows = slice(start, start + batch)
            n = len(x[rows])
            per_sample, penalty, hits = hand_loss_and_hits(recorder.weights[epoch * 4 + k], x[rows], y[rows], l2)
            batch_loss = np.sum(w[rows] * per_sample) / n + penalty  # sum_over_batch_size
            # the shown loss is a running mean over the epoch weighted by samples per batch
            loss_sum, count = loss_sum + batch_loss * n, count + n
            hit_sum += np.sum(hits)
            weighted_hit_sum, weight_sum = weighted_hit_sum + np.sum(w[rows] * hits), weight_sum + np.sum(w[rows])
            logs = recorder.logs[epoch * 4 + k]
            assert logs["loss"] == pytest.approx(loss_sum / count, rel=1e-12)
            assert logs["accuracy"] == pytest.approx(hit_sum / count, rel=1e-12)
            assert logs["weighted_accuracy"] == pytest.approx(weighted_hit_sum / weight_sum, rel=1e-12)
        assert history.history["loss"][epoch] == pytest.approx(loss_sum / count, rel=1e-12)
        assert history.history["accuracy"][epoch] == pytest.approx(hit_sum / count, rel=1e-12)
        assert history.history["weighted_accuracy"][epoch] == pytest.approx(weighted_hit_sum / weight_sum, rel=1e-12)
    if weighted:  # the weights do change the weighted metric, so the two checks above differ
        assert history.history["accuracy"] != pytest.approx(history.history["weighted_accuracy"], rel=1e-6)


def test_evaluate_equals_an_independent_recomputation(binary_data):
    x, y = binary_data
    l2 = 0.02
    model = Sequential([Dense(1, input_dim=4, activation="sigmoid", kernel_regularizer=regularizers.L2(l2))])
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"], weighted_metrics=["accuracy"],
                  dtype="float64", seed=2)
    sw = np.random.default_rng(2).uniform(0, 2, size=len(x))
    for weights in (None, sw):
        loss, accuracy, weighted_accuracy = model.evaluate(x, y, batch_size=64, sample_weight=weights, verbose=0)
        w = np.ones(len(x)) if weights is None else weights
        per_sample, penalty, hits = hand_loss_and_hits(model.get_weights(), x, y, l2)
        sizes = [min(64, len(x) - s) for s in range(0, len(x), 64)]
        batch_losses = [np.sum((w * per_sample)[s:s + 64]) / n + penalty for s, n in zip(range(0, len(x), 64), sizes)]
        assert loss == pytest.approx(np.dot(batch_losses, sizes) / len(x), rel=1e-12)
        assert accuracy == pytest.approx(np.mean(hits), rel=1e-12)
        assert weighted_accuracy == pytest.approx(np.sum(w * hits) / np.sum(w), rel=1e-12)


# ---- batching, shuffling and validation --------------------------------------------------

def test_default_batch_size_is_32(binary_data, binary_model):
    x, y = binary_data
    history = binary_model().fit(x, y, verbose=0)
    assert history.params["steps"] == int(np.ceil(len(x) / 32))
    a = run(binary_model(), x, y)
    b = run(binary_model(), x, y, batch_size=32)
    assert_same_run(a, b)


def test_shuffle_order_comes_from_the_seeded_neutral_stream(binary_data, binary_model):
    x, y = binary_data
    shuffled = run(binary_model(), x, y, batch_size=16, shuffle=True)
    order = _random.batch_order(7, 0, len(x))  # binary_model compiles with seed=7
    replayed = run(binary_model(), x[order], y[order], batch_size=16, shuffle=False)
    assert_same_run(shuffled, replayed)
    unshuffled = run(binary_model(), x, y, batch_size=16, shuffle=False)
    assert not np.array_equal(shuffled[0][0], unshuffled[0][0])


def test_shuffle_is_the_default(binary_data, binary_model):
    x, y = binary_data
    assert_same_run(run(binary_model(), x, y, epochs=2), run(binary_model(), x, y, epochs=2, shuffle=True))


def test_validation_split_takes_the_last_fraction_before_shuffling(binary_data, binary_model):
    x, y = binary_data
    split = run(binary_model(), x, y, epochs=2, validation_split=0.3)
    cut = int(len(x) * 0.7)
    explicit = run(binary_model(), x[:cut], y[:cut], epochs=2, validation_data=(x[cut:], y[cut:]))
    assert_same_run(split, explicit)


def test_validation_logs_equal_evaluate(binary_data, binary_model):
    x, y = binary_data
    model = binary_model()
    history = model.fit(x[:150], y[:150], epochs=1, validation_data=(x[150:], y[150:]), verbose=0)
    loss, accuracy = model.evaluate(x[150:], y[150:], verbose=0)
    assert history.history["val_loss"][0] == loss and history.history["val_accuracy"][0] == accuracy


@pytest.mark.parametrize("steps", [1, 3, 100])
def test_steps_per_execution_gives_bit_identical_results(binary_data, binary_model, steps):
    x, y = binary_data
    default = run(binary_model(dropout=0.3), x, y, epochs=2, batch_size=16, validation_split=0.2)
    blocked = run(binary_model(dropout=0.3, steps_per_execution=steps), x, y, epochs=2, batch_size=16,
                  validation_split=0.2)
    assert_same_run(default, blocked)


def test_batch_callbacks_do_not_change_the_numbers(binary_data, binary_model):
    x, y = binary_data
    plain = run(binary_model(dropout=0.2), x, y, epochs=2, batch_size=16)
    stepped = run(binary_model(dropout=0.2), x, y, epochs=2, batch_size=16, callbacks=[WeightsAtEachBatch()])
    assert_same_run(plain, stepped)


# ---- weighting -----------------------------------------------------------------------------

def test_sample_weight_scales_the_loss_and_weights_only_the_weighted_metrics(binary_data, binary_model):
    x, y = binary_data
    model = binary_model(dtype="float64", weighted_metrics=["accuracy"])
    base_loss, base_accuracy, base_weighted = model.evaluate(x, y, verbose=0)
    assert base_weighted == base_accuracy
    doubled = model.evaluate(x, y, sample_weight=np.full(len(x), 2.0), verbose=0)
    doubled_loss, doubled_accuracy, doubled_weighted = doubled
    assert doubled_loss == pytest.approx(2 * base_loss, rel=1e-12)
    assert doubled_accuracy == doubled_weighted == pytest.approx(base_accuracy, rel=1e-12)
    # zero weight removes samples from the weighted accuracy only
    keep = np.arange(len(x)) % 3 != 0
    _, masked_accuracy, masked_weighted = model.evaluate(x, y, sample_weight=keep.astype(float), verbose=0)
    _, subset_accuracy, _ = model.evaluate(x[keep], y[keep], verbose=0)
    assert masked_weighted == pytest.approx(subset_accuracy, rel=1e-12)
    assert masked_accuracy == base_accuracy
    assert masked_accuracy != pytest.approx(masked_weighted, rel=1e-6)


def test_metric_log_names_follow_keras(binary_data, binary_model):
    x, y = binary_data
    model = binary_model(metrics=["accuracy", "mae", "auc", "auc"], weighted_metrics=["accuracy", "mse", "mse"])
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "accuracy", "mae", "auc", "auc_1", "weighted_accuracy", "mse", "weighted_mse"]


@pytest.mark.parametrize("argument", ["metrics", "weighted_metrics"])
@pytest.mark.parametrize("value", ["accuracy", {"out": "mae"}, metrics_module.MeanAbsoluteError()])
def test_metrics_must_be_a_list(binary_model, argument, value):
    with pytest.raises(InvalidArgumentError, match=f"invalid {argument}=.*accepted: a list or tuple of metrics"):
        binary_model(**{argument: value})


def test_sample_weight_changes_training(binary_data, binary_model):
    x, y = binary_data
    weights = np.where(y[:, 0] == 1, 5.0, 1.0)
    plain = run(binary_model(), x, y, epochs=2)
    weighted = run(binary_model(), x, y, epochs=2, sample_weight=weights)
    assert not np.array_equal(plain[0][0], weighted[0][0])


def test_class_weight_equals_the_matching_sample_weight(binary_data, binary_model):
    x, y = binary_data
    by_class = run(binary_model(), x, y, epochs=2, class_weight={0: 1.0, 1: 3.0})
    by_sample = run(binary_model(), x, y, epochs=2, sample_weight=np.where(y[:, 0] == 1, 3.0, 1.0))
    assert_same_run(by_class, by_sample)
    plain = run(binary_model(), x, y, epochs=2)
    assert not np.array_equal(plain[0][0], by_class[0][0])


def test_class_weight_with_one_hot_labels():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 4))
    labels = rng.integers(0, 3, size=60)
    y = np.eye(3)[labels]

    def model():
        m = Sequential([Dense(3, input_dim=4, activation="softmax")])
        m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"], seed=4)
        return m

    by_class = run(model(), x, y, class_weight={0: 1.0, 1: 0.5, 2: 2.0})
    by_sample = run(model(), x, y, sample_weight=np.array([1.0, 0.5, 2.0])[labels])
    assert_same_run(by_class, by_sample)


# ---- reproducibility ---------------------------------------------------------------------

def reproducible_run(seed=None, **compile_kwargs):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(120, 4))
    y = (x[:, :1] > 0).astype(float)
    model = Sequential([Dense(8, input_dim=4, activation="relu"), Dropout(0.3), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"], seed=seed, **compile_kwargs)
    initial = model.get_weights()
    weights, history = run(model, x, y, epochs=3, batch_size=16, validation_split=0.2)
    return initial, weights, history, model.predict(x, verbose=0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_seed_gives_a_bit_identical_run(dtype):
    a, b = reproducible_run(11, dtype=dtype), reproducible_run(11, dtype=dtype)
    for wa, wb in zip(a[0] + a[1], b[0] + b[1]):
        assert wa.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(wa, wb)
    assert a[2] == b[2]
    np.testing.assert_array_equal(a[3], b[3])


def test_different_seeds_differ():
    a, b = reproducible_run(11), reproducible_run(12)
    assert not np.array_equal(a[0][0], b[0][0])
    assert not np.array_equal(a[1][0], b[1][0])
    assert a[2]["loss"] != b[2]["loss"]


def test_global_seed_is_used_when_compile_has_none():
    polynn.set_random_seed(11)
    assert polynn.get_random_seed() == 11
    a, b = reproducible_run(None), reproducible_run(11)
    for wa, wb in zip(a[1], b[1]):
        np.testing.assert_array_equal(wa, wb)
    assert a[2] == b[2]


def test_dropout_is_active_only_in_training():
    a = reproducible_run(11)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(120, 4))
    model = Sequential([Dense(8, input_dim=4, activation="relu"), Dropout(0.3), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", seed=11)
    model.set_weights(a[1])
    first, second = model.predict(x, verbose=0), model.predict(x, verbose=0)
    np.testing.assert_array_equal(first, second)
    # the same weights without the Dropout layer give the same inference outputs
    plain = Sequential([Dense(8, input_dim=4, activation="relu"), Dense(1, activation="sigmoid")])
    plain.compile(optimizer="adam", loss="binary_crossentropy", seed=11)
    plain.set_weights(a[1])
    np.testing.assert_array_equal(plain.predict(x, verbose=0), first)


# ---- loop control ------------------------------------------------------------------------

def test_stop_training_and_initial_epoch(binary_data, binary_model):
    x, y = binary_data

    class StopAfterTwo(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True

    history = binary_model().fit(x, y, epochs=5, callbacks=[StopAfterTwo()], verbose=0)
    assert history.epoch == [0, 1]
    history = binary_model().fit(x, y, epochs=4, initial_epoch=2, verbose=0)
    assert history.epoch == [2, 3]


def test_predict_before_compile_uses_the_weights_already_shown():
    # As in Keras: weights read (or exported) before any compile are the ones predict() uses;
    # only an explicit compile(seed=...) draws them again from its seed.
    model = Sequential([Dense(3, activation="relu", input_shape=(4,)), Dense(1)])
    shown = model.get_weights()
    x = np.linspace(-1.0, 1.0, 8).reshape(2, 4)
    expected = np.maximum(x @ shown[0] + shown[1], 0.0) @ shown[2] + shown[3]
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6)
    assert all(np.array_equal(a, b) for a, b in zip(shown, model.get_weights()))
    model.compile(loss="mse", seed=5)
    reference = Sequential([Dense(3, activation="relu", input_shape=(4,)), Dense(1)])
    reference.compile(loss="mse", seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(reference.get_weights(), model.get_weights()))


def test_predict_does_not_depend_on_batch_size(binary_data, binary_model):
    x, _ = binary_data
    model = binary_model(dtype="float64")
    full = model.predict(x, batch_size=len(x), verbose=0)
    np.testing.assert_allclose(model.predict(x, batch_size=7, verbose=0), full, rtol=1e-14)
    assert full.shape == (len(x), 1)


def test_fit_with_1d_labels_for_one_output(binary_data, binary_model):
    x, y = binary_data
    assert_same_run(run(binary_model(), x, y[:, 0]), run(binary_model(), x, y))


def test_losses_accept_classes_and_reductions():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 2))
    model = Sequential([Dense(2, input_dim=3)])
    model.compile(optimizer="sgd", loss=losses.MeanSquaredError(reduction="sum"), dtype="float64", seed=0)
    total = model.evaluate(x, y, batch_size=40, verbose=0)
    expected = np.sum(np.mean((model.predict(x, verbose=0) - y) ** 2, axis=-1))
    assert total == pytest.approx(expected, rel=1e-12)


def test_class_weight_applies_to_training_data_only(binary_data, binary_model):
    # Keras weights only the training batches by class; the validation split keeps its own weights
    x, y = binary_data
    model = binary_model(dtype="float64")
    history = model.fit(x, y, epochs=1, validation_split=0.25, class_weight={0: 1.0, 1: 4.0}, verbose=0)
    cut = int(len(x) * 0.75)
    loss, accuracy = model.evaluate(x[cut:], y[cut:], verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(loss, rel=1e-12)
    assert history.history["val_accuracy"][0] == pytest.approx(accuracy, rel=1e-12)


# A negative key is a class index too: hinge's -1 labels (tests/test_bad_values.py), as in Keras.
@pytest.mark.parametrize("class_weight", [{"a": 1.0}, {0.5: 1.0}, {0: -1.0}, {}])
def test_invalid_class_weight(binary_data, binary_model, class_weight):
    from polynn.errors import InvalidArgumentError

    x, y = binary_data
    with pytest.raises(InvalidArgumentError, match=r"invalid class_weight="):
        binary_model().fit(x, y, class_weight=class_weight, verbose=0)


def test_in_place_bar_blanks_what_a_shorter_redraw_leaves():
    from polynn._progress import Progress

    class Terminal(io.StringIO):
        encoding = "utf-8"

        def isatty(self):
            return True

    terminal = Terminal()
    progress = Progress(3, 1, stream=terminal)
    progress.update(1, {"loss": 1.5e-05})  # shown as 1.5000e-05
    progress.update(2, {"loss": 0.5})  # shown as 0.5000: four characters shorter
    progress.finish({"loss": 0.25})
    frames = terminal.getvalue().rstrip("\n").split("\r")[1:]
    assert len(frames) == 3
    # as Keras: each redraw covers the whole previous frame, so no stale characters remain
    assert all(len(frame) >= len(before.rstrip()) for before, frame in zip(frames, frames[1:]))
    assert len(frames[1]) > len(frames[1].rstrip())  # the shorter redraw was padded
    assert frames[1].rstrip().endswith("loss: 0.5000") and frames[2].rstrip().endswith("loss: 0.2500")


def test_recompiling_keeps_trained_weights(binary_data, binary_model):
    # as Keras: compile() again (another optimizer, another dtype) does not redraw the weights
    x, y = binary_data
    model = binary_model(dtype="float64")
    model.fit(x, y, epochs=1, verbose=0)
    trained = model.get_weights()
    model.compile(optimizer="sgd", loss="binary_crossentropy", dtype="float64", seed=99)
    for a, b in zip(trained, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.iterations == 0
