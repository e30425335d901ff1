"""Keras's everyday names and live attributes: name= on layers and metrics and the automatic
names, summary()'s Optimizer params line, evaluate/predict verbose=2, and model.optimizer's live
learning_rate and iterations. The slow tests run Keras 3 in a fresh process as the reference."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

import polynn
from polynn import _registry, load_model, optimizers, schedules
from polynn import metrics as metrics_module
from polynn._progress import Progress, format_value
from polynn.callbacks import ReduceLROnPlateau
from polynn.errors import ImmutableSpecError, InvalidArgumentError, NotCompiledError
from polynn.layers import Dense, Dropout, Input, Layer
from polynn.metrics import AUC
from polynn.models import Sequential

RNG = np.random.default_rng(0)
X = RNG.normal(size=(64, 3))
Y = (RNG.random((64, 1)) > 0.5).astype("float64")
SAMPLE_WEIGHT = RNG.random(64)


def summary_of(model) -> list[str]:
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    return lines


def rows_of(model) -> list[str]:
    return [line.strip("\u2502").split("\u2502")[0].strip() for line in summary_of(model) if line.startswith("\u2502")]


def printed(call) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        call()
    return out.getvalue()


# ---- name= on layers ----------------------------------------------------------------------

def test_a_layer_takes_name_and_keeps_it_through_config_json_and_repr():
    layer = Dense(4, activation="relu", name="hidden")
    assert layer.given_name == "hidden" and layer.name == "dense"  # the class variable stays the registry name
    assert layer.units == 4 and Dense(4).given_name is None  # name is keyword-only: units stays first
    config = layer.get_config()
    assert config["name"] == "hidden" and "given_name" not in config
    assert Dense.from_config(config) == layer
    stored = json.loads(json.dumps(_registry.serialize(layer)))
    assert polynn._spec.resolve("layer", stored) == layer
    assert repr(layer).endswith(", name='hidden')") and "name=" not in repr(Dense(4))
    assert layer != Dense(4, activation="relu") and dataclasses.replace(layer, units=2).given_name == "hidden"
    # an unnamed layer's config is what it was before names, so older files and configs read the same
    assert "name" not in Dense(4).get_config()


@pytest.mark.parametrize("bad", ["a/b", "", 3, b"x"])
def test_a_name_is_a_non_empty_string_without_a_slash(bad):
    with pytest.raises(InvalidArgumentError,
                       match=r'Dense: invalid name=.*accepted: None or a non-empty string without "/"'):
        Dense(1, name=bad)


def test_name_and_given_name_together_are_refused():
    with pytest.raises(InvalidArgumentError, match="name= or given_name=, not both"):
        Dense(1, name="a", given_name="b")


def test_a_plugin_layer_takes_name_too():
    @dataclasses.dataclass(frozen=True)
    class Doubler(Layer):
        name = "doubler_for_a_test"
        factor: float = 2.0

    layer = Doubler(3.0, name="twice")
    assert (layer.factor, layer.given_name) == (3.0, "twice")
    assert Doubler.from_config(layer.get_config()) == layer


def test_automatic_layer_names_are_keras_names_skipping_given_ones():
    model = Sequential([Input((3,)), Dense(4), Dropout(0.1), Dense(4, name="dense_1"), Dense(4, name="out"), Dense(1)])
    assert model.layer_names() == ["input", "dense", "dropout", "dense_1", "out", "dense_2"]
    assert rows_of(model) == ["dense (Dense)", "dropout (Dropout)", "dense_1 (Dense)", "out (Dense)",
                              "dense_2 (Dense)"]


def test_two_layers_of_one_given_name_are_refused_as_in_keras():
    model = Sequential([Dense(2, input_dim=3, name="x")])
    with pytest.raises(InvalidArgumentError, match=r"Dense: invalid name='x'; accepted: a name no other layer"):
        model.add(Dense(2, name="x"))
    assert len(model.layers) == 1
    config = Sequential([Dense(2, input_dim=3, name="x"), Dense(1, name="y")]).get_config()
    config["layers"][1]["config"]["name"] = "x"
    with pytest.raises(InvalidArgumentError, match="a name no other layer"):
        Sequential.from_config(config)


def _fastest_build(layers: list, runs: int = 3) -> float:
    fastest = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        Sequential(layers)
        fastest = min(fastest, time.perf_counter() - start)
    return fastest


def test_a_model_of_many_layers_is_checked_and_planned_in_linear_time(monkeypatch):
    # A model file may describe some 10^5 layers: comparing each layer's name, or each component
    # of the plan, with every other one made loading it take hours.
    n = 3000
    named = [Input((3,))] + [Dropout(0.5 * k / (4 * n), name=f"d{k}") for k in range(4 * n)]
    # Four times the layers, four times the time: 16 times when each name is compared with each.
    assert _fastest_build(named) < 8 * _fastest_build(named[:n + 1])
    compared = []
    eq = Dropout.__eq__
    monkeypatch.setattr(Dropout, "__eq__", lambda self, other: compared.append(1) or eq(self, other))
    model = Sequential(named[:n + 1])
    model.compile(loss="mse", backend="numpy")
    assert len(compared) < 10 * n
    assert model.predict(X[:2], verbose=0).shape == (2, 3)


def test_names_survive_a_model_file_and_weights_files_ignore_them(tmp_path):
    named = Sequential([Dense(4, input_dim=3, name="encoder"), Dense(1, name="head")])
    named.compile("sgd", "mse", seed=1)
    named.save(tmp_path / "named.safetensors")
    loaded = load_model(tmp_path / "named.safetensors")
    assert loaded.layer_names() == ["encoder", "head"] and loaded.get_config() == named.get_config()
    # The weights keep their automatic keys, so a file fits the same layers named or not (as
    # Keras's weight paths, layers/dense/vars/0, which ignore names).
    named.save_weights(tmp_path / "named.weights.safetensors")
    unnamed = Sequential([Dense(4, input_dim=3), Dense(1)])
    unnamed.load_weights(tmp_path / "named.weights.safetensors")
    for a, b in zip(unnamed.get_weights(), named.get_weights()):
        np.testing.assert_array_equal(a, b)
    unnamed.save_weights(tmp_path / "unnamed.weights.safetensors")
    named.load_weights(tmp_path / "unnamed.weights.safetensors")


# ---- metric names -------------------------------------------------------------------------

def history_keys(metrics, weighted_metrics=None):
    model = Sequential([Dense(1, input_dim=3, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy", metrics=metrics, weighted_metrics=weighted_metrics, seed=0)
    return list(model.evaluate(X, Y, sample_weight=SAMPLE_WEIGHT, verbose=0, return_dict=True))


def test_a_second_auc_object_logs_as_keras_logs_it():
    # Keras 3 (fresh process): accuracy, auc, auc_1 (polynn logged weighted_auc for the second)
    assert history_keys(["accuracy", AUC()], [AUC()]) == ["loss", "accuracy", "auc", "auc_1"]
    assert history_keys([AUC(), AUC()]) == ["loss", "auc", "auc_1"]


def test_one_metric_object_given_twice_keeps_one_name_as_a_keras_object():
    auc = AUC()
    assert history_keys([auc], [auc]) == ["loss", "auc", "weighted_auc"]
    assert history_keys([auc, auc]) == ["loss", "auc", "auc_1"]


@pytest.mark.parametrize("metrics,weighted", [([AUC()], [AUC()]), ([AUC()] * 2, [AUC()] * 2), ([AUC, AUC], [AUC])])
def test_a_loaded_model_logs_the_metric_names_the_saved_one_did(tmp_path, metrics, weighted):
    model = Sequential([Dense(1, input_dim=3, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy", metrics=metrics, weighted_metrics=weighted, seed=0)
    keys = list(model.evaluate(X, Y, sample_weight=SAMPLE_WEIGHT, verbose=0, return_dict=True))
    model.save(tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors")
    assert list(loaded.evaluate(X, Y, sample_weight=SAMPLE_WEIGHT, verbose=0, return_dict=True)) == keys


def test_metric_names_given_and_clashing_follow_keras():
    assert history_keys([AUC(name="roc")], [AUC(name="roc")]) == ["loss", "roc", "weighted_roc"]
    assert history_keys([AUC(name="roc"), AUC(name="roc")]) == ["loss", "roc", "roc_1"]
    assert history_keys(["mse", "mse"], ["mse"]) == ["loss", "mse", "mse_1", "weighted_mse"]
    assert history_keys([metrics_module.Accuracy()]) == ["loss", "accuracy"]  # keras.metrics.Accuracy()'s name


def test_a_named_metric_keeps_its_name_in_history_and_in_a_model_file(tmp_path):
    model = Sequential([Dense(1, input_dim=3, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy", metrics=[AUC(name="roc"), AUC()], seed=0)
    history = model.fit(X, Y, epochs=1, verbose=0, validation_data=(X, Y))
    assert set(history.history) == {"loss", "roc", "auc", "val_loss", "val_roc", "val_auc"}
    model.save(tmp_path / "m.safetensors")
    assert list(load_model(tmp_path / "m.safetensors").evaluate(X, Y, verbose=0, return_dict=True)) == \
        ["loss", "roc", "auc"]


# ---- summary(): Optimizer params ----------------------------------------------------------

def optimizer_lines(optimizer, dtype="float32", fit=True):
    model = Sequential([Dense(4, input_dim=3), Dense(2)])
    model.compile(optimizer, "mse", dtype=dtype, seed=0)
    if fit:
        model.fit(X, np.c_[Y, Y], epochs=1, batch_size=32, verbose=0)
    return [line for line in summary_of(model) if "params" in line]


# Keras 3.15's summary of keras.Sequential([Input((3,)), Dense(4), Dense(2)]) after one fit.
KERAS_AFTER_FIT_ADAM = [" Total params: 80 (324.00 B)", " Trainable params: 26 (104.00 B)",
                        " Non-trainable params: 0 (0.00 B)", " Optimizer params: 54 (220.00 B)"]


def test_summary_after_fit_has_keras_optimizer_params_line():
    assert optimizer_lines("adam") == KERAS_AFTER_FIT_ADAM
    # slots 3 x 26, the iteration, the rate, Nadam's u_product; no rate variable under a schedule
    assert optimizer_lines(optimizers.Adam(amsgrad=True))[-1] == " Optimizer params: 80 (324.00 B)"
    assert optimizer_lines("nadam")[-1] == " Optimizer params: 55 (224.00 B)"
    assert optimizer_lines(optimizers.SGD(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.5)))[-1] == \
        " Optimizer params: 1 (8.00 B)"
    assert optimizer_lines("adam", dtype="float64")[-1] == " Optimizer params: 54 (432.00 B)"


def test_no_optimizer_line_before_the_first_update_or_after_a_new_compile():
    assert optimizer_lines("adam", fit=False) == [
        " Total params: 26 (104.00 B)", " Trainable params: 26 (104.00 B)", " Non-trainable params: 0 (0.00 B)"]
    model = Sequential([Dense(4, input_dim=3), Dense(2)])
    model.compile("adam", "mse", seed=0)
    model.fit(X, np.c_[Y, Y], epochs=1, verbose=0)
    assert "Optimizer params" in summary_of(model)[-1]
    model.compile("adam", "mse", seed=0)
    assert "Optimizer params" not in "\n".join(summary_of(model))


# ---- verbose=2 ------------------------------------------------------------------------------

COMPACT = r"\d+s - \d+(us|ms|s)/step"


def test_evaluate_and_predict_verbose_2_print_keras_compact_line():
    model = Sequential([Dense(1, input_dim=3, kernel_initializer="zeros")])
    model.compile("sgd", "mse", metrics=["mae"], seed=0)
    x = np.ones((100, 3))
    out = printed(lambda: model.evaluate(x, np.full((100, 1), 2.0), verbose=2))
    # Keras 3.15's line: "STEPS/STEPS - SECONDSs - TIMEms/step - loss: 4.0000 - mae: 2.0000"
    assert re.fullmatch(rf"4/4 - {COMPACT} - loss: 4\.0000 - mae: 2\.0000\n", out), out
    out = printed(lambda: model.evaluate(x, np.zeros((100, 1)), verbose=2))
    assert re.fullmatch(rf"4/4 - {COMPACT} - loss: 0\.0000e\+00 - mae: 0\.0000e\+00\n", out), out
    out = printed(lambda: model.predict(x, batch_size=10, verbose=2))
    assert re.fullmatch(rf"10/10 - {COMPACT}\n", out), out  # Keras: "10/10 - SECONDSs - TIMEms/step"


def test_progress_values_are_formatted_as_keras_progbar():
    # keras.utils.Progbar: verbose=1 compares |value| with 1e-3, verbose=2 the signed value
    assert [format_value(v, 1) for v in (-0.5, 0.0, -5e-4, 12.5)] == \
        ["-0.5000", "0.0000e+00", "-5.0000e-04", "12.5000"]
    assert [format_value(v, 2) for v in (-0.5, 0.0, 5e-4, 12.5)] == \
        ["-5.0000e-01", "0.0000e+00", "5.0000e-04", "12.5000"]
    stream = io.StringIO()
    Progress(0, 2, stream).finish({})
    assert stream.getvalue() == ""  # Keras prints no line for no steps


# ---- model.optimizer: live learning_rate and iterations ------------------------------------

def plateau_model():
    model = Sequential([Dense(1, input_dim=3)])
    model.compile(optimizers.SGD(learning_rate=0.1), "mse", seed=0)
    history = model.fit(X, Y, epochs=3, batch_size=32, verbose=0,
                        callbacks=[ReduceLROnPlateau(monitor="loss", factor=0.25, patience=0, min_delta=10.0)])
    return model, history


def test_model_optimizer_learning_rate_is_the_live_rate():
    model, history = plateau_model()
    # the rate logged at the last epoch's end, which the callback then cut by its factor
    assert model.optimizer.learning_rate == model.learning_rate == history.history["learning_rate"][-1] * 0.25
    assert model.optimizer.learning_rate < 0.1 == model.optimizer.spec.learning_rate  # it read 0.1 before
    assert model.optimizer.iterations == model.iterations == 3 * 2


def test_setting_model_optimizer_learning_rate_sets_the_rate_training_uses():
    def one_step(model):
        model.fit(X, Y, epochs=1, batch_size=64, shuffle=False, verbose=0)
        return model.get_weights()

    model = Sequential([Dense(1, input_dim=3)])
    model.compile(optimizers.SGD(learning_rate=0.1), "mse", seed=0, dtype="float64")
    reference = Sequential([Dense(1, input_dim=3)])
    reference.compile(optimizers.SGD(learning_rate=0.01), "mse", seed=0, dtype="float64")
    model.optimizer.learning_rate = 0.01
    assert model.learning_rate == 0.01 == model.optimizer.learning_rate
    for a, b in zip(one_step(model), one_step(reference)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ImmutableSpecError, match="iterations=5 cannot be set"):
        model.optimizer.iterations = 5


def test_model_optimizer_under_a_schedule_reads_it_and_refuses_a_rate():
    schedule = schedules.ExponentialDecay(0.1, 2, 0.5)
    model = Sequential([Dense(1, input_dim=3)])
    model.compile(optimizers.SGD(learning_rate=schedule), "mse", seed=0)
    model.fit(X, Y, epochs=1, batch_size=16, verbose=0)
    assert model.optimizer.learning_rate == pytest.approx(schedule.evaluate(np.array([4.0]))[0], rel=1e-12)
    with pytest.raises(InvalidArgumentError, match="LearningRateSchedule"):
        model.optimizer.learning_rate = 0.01


def test_model_optimizer_still_reads_as_the_spec():
    model = Sequential([Dense(1, input_dim=3)])
    model.compile(optimizers.Adam(learning_rate=0.02), "mse", seed=0)
    view = model.optimizer
    assert view is model.optimizer and view == optimizers.Adam(learning_rate=0.02) and hash(view) == hash(view.spec)
    assert isinstance(view.spec, optimizers.Adam) and view.beta_1 == 0.9 and view.get_config() == view.spec.get_config()
    other = Sequential([Dense(1, input_dim=3)])
    other.compile(optimizer=view, loss="mse")
    assert other.optimizer == view
    model.compile("sgd", "mse")
    with pytest.raises(NotCompiledError, match="earlier compile"):
        _ = view.learning_rate


# ---- Keras 3 as the reference (a fresh process: Keras's automatic names count per process) ----

KERAS_SCRIPT = r"""
import contextlib, io, json, sys
import numpy as np
import keras
from keras import layers, optimizers as O

spec = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 3)); y = (rng.random((64, 1)) > 0.5).astype("float32"); sw = rng.random(64)
out = {}

made = []

def metric(entry):
    kind, name = entry
    if kind == "same":  # the object made last, given again
        return made[-1]
    if kind != "str":
        made.append(getattr(keras.metrics, kind)(name=name))
        return made[-1]
    return name

keras.backend.clear_session()  # a fresh process's name counters
out["layers"] = [l.name for l in keras.Sequential(
    [keras.Input((3,)), layers.Dense(4), layers.Dropout(0.1), layers.Dense(4, name="out"), layers.Dense(1)]).layers]
out["metrics"] = []
for metrics, weighted in spec["metrics"]:
    keras.backend.clear_session()
    m = keras.Sequential([keras.Input((3,)), layers.Dense(1, activation="sigmoid")])
    m.compile("sgd", "binary_crossentropy", metrics=[metric(e) for e in metrics],
              weighted_metrics=[metric(e) for e in weighted], run_eagerly=True)
    out["metrics"].append(list(m.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True)))
out["summary"] = []
for name, kwargs, schedule in spec["optimizers"]:
    if schedule:
        kwargs["learning_rate"] = O.schedules.ExponentialDecay(**schedule)
    m = keras.Sequential([keras.Input((3,)), layers.Dense(4), layers.Dense(2)])
    m.compile(getattr(O, name)(**kwargs), "mse", run_eagerly=True)
    m.fit(x, np.c_[y, y], epochs=1, batch_size=32, verbose=0)
    lines = []
    m.summary(print_fn=lambda s, **k: lines.append(s))
    out["summary"].append([l for l in "\n".join(lines).splitlines() if "params" in l])
m = keras.Sequential([keras.Input((3,)), layers.Dense(1, kernel_initializer="zeros")])
m.compile("sgd", "mse", metrics=["mae"], run_eagerly=True)
printed = []
for call in (lambda: m.evaluate(np.ones((100, 3)), np.full((100, 1), 2.0), verbose=2),
             lambda: m.evaluate(np.ones((100, 3)), np.zeros((100, 1)), verbose=2),
             lambda: m.predict(np.ones((100, 3)), batch_size=10, verbose=2)):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        call()
    printed.append(buffer.getvalue())
out["verbose2"] = printed
buffer = io.StringIO()
with contextlib.redirect_stdout(buffer):
    keras.utils.Progbar(4, verbose=2).update(4, values=[(k, v) for k, v in spec["progbar"]])
out["progbar"] = buffer.getvalue()
m = keras.Sequential([keras.Input((3,)), layers.Dense(1)])
m.compile(O.SGD(learning_rate=0.1), "mse", run_eagerly=True)
m.fit(x, y, epochs=3, batch_size=32, verbose=0,
      callbacks=[keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.25, patience=0, min_delta=10.0)])
out["live"] = [float(m.optimizer.learning_rate), int(m.optimizer.iterations)]
m.optimizer.learning_rate = 0.01
out["live"].append(float(m.optimizer.learning_rate))
print(json.dumps(out))
"""

METRIC_CASES = [
    ([("str", "accuracy"), ("AUC", None)], [("AUC", None)]),
    ([("AUC", None), ("AUC", None)], []),
    ([("AUC", "roc")], [("AUC", "roc")]),
    ([("str", "mse"), ("str", "mse")], [("str", "mse")]),
    ([("Precision", None), ("str", "precision")], [("Recall", None), ("Precision", None)]),
    ([("Accuracy", None), ("BinaryAccuracy", None)], [("BinaryAccuracy", None), ("str", "accuracy")]),
    ([("AUC", None)], [("same", None)]),
    ([("Recall", None), ("same", None)], []),
]
# One of each count of slots, Nadam's extra variable, a schedule (no rate variable).
OPTIMIZER_CASES = [
    ("SGD", {}, None), ("SGD", {"momentum": 0.9}, None), ("Adam", {}, None), ("Adam", {"amsgrad": True}, None),
    ("RMSprop", {"momentum": 0.5, "centered": True}, None), ("Nadam", {}, None),
    ("Adam", {}, {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5}),
]
PROGBAR = [["a", -0.5], ["b", 0.0], ["c", 5e-4], ["d", 12.5]]


@pytest.fixture(scope="module")
def keras_reference():
    pytest.importorskip("keras")
    spec = {"metrics": METRIC_CASES, "optimizers": OPTIMIZER_CASES, "progbar": PROGBAR}
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, json.dumps(spec)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def polynn_metrics(entries, made):
    out = []
    for kind, name in entries:
        if kind == "same":
            out.append(made[-1])
        elif kind == "str":
            out.append(name)
        else:
            made.append(getattr(metrics_module, kind)(name=name))
            out.append(made[-1])
    return out


@pytest.mark.slow  # Keras 3 in a subprocess
def test_names_match_keras_in_a_fresh_process(keras_reference):
    model = Sequential([Input((3,)), Dense(4), Dropout(0.1), Dense(4, name="out"), Dense(1)])
    assert model.layer_names()[1:] == keras_reference["layers"]  # Keras lists no Input layer
    for (metrics, weighted), keras_keys in zip(METRIC_CASES, keras_reference["metrics"]):
        made: list = []
        keys = history_keys(polynn_metrics(metrics, made), polynn_metrics(weighted, made))
        assert sorted(keys) == sorted(keras_keys), (metrics, weighted)


@pytest.mark.slow  # Keras 3 in a subprocess
def test_optimizer_params_line_matches_keras(keras_reference):
    for (name, kwargs, schedule), keras_lines in zip(OPTIMIZER_CASES, keras_reference["summary"]):
        if schedule:
            kwargs = {**kwargs, "learning_rate": schedules.ExponentialDecay(**schedule)}
        assert optimizer_lines(getattr(optimizers, name)(**kwargs)) == keras_lines, name


@pytest.mark.slow  # Keras 3 in a subprocess
def test_verbose_2_lines_match_keras(keras_reference):
    def timeless(text):
        return re.sub(COMPACT, "T", text)

    model = Sequential([Dense(1, input_dim=3, kernel_initializer="zeros")])
    model.compile("sgd", "mse", metrics=["mae"], seed=0)
    x = np.ones((100, 3))
    ours = [printed(lambda: model.evaluate(x, np.full((100, 1), 2.0), verbose=2)),
            printed(lambda: model.evaluate(x, np.zeros((100, 1)), verbose=2)),
            printed(lambda: model.predict(x, batch_size=10, verbose=2))]
    assert [timeless(t) for t in ours] == [timeless(t) for t in keras_reference["verbose2"]]
    stream = io.StringIO()
    Progress(4, 2, stream).finish(dict(PROGBAR))
    assert timeless(stream.getvalue()) == timeless(keras_reference["progbar"])


@pytest.mark.slow  # Keras 3 in a subprocess
def test_live_learning_rate_matches_keras(keras_reference):
    keras_rate, keras_iterations, keras_set = keras_reference["live"]
    model, _ = plateau_model()
    # Keras holds the rate in a float32 variable
    assert model.optimizer.learning_rate == pytest.approx(keras_rate, rel=1e-6)
    assert model.optimizer.iterations == keras_iterations
    model.optimizer.learning_rate = 0.01
    assert model.optimizer.learning_rate == pytest.approx(keras_set, rel=1e-6)


def test_the_live_optimizer_is_an_instance_of_its_class_and_resolves_to_its_spec():
    model = Sequential([Dense(2, input_dim=3), Dense(1)])
    model.compile(optimizers.Adam(0.01), "mse")
    view = model.optimizer
    assert isinstance(view, optimizers.Adam) and type(view) is not optimizers.Adam
    spec = optimizers.get(view)
    assert type(spec) is optimizers.Adam and spec == view.spec
    other = Sequential([model.layers[0], Dense(1)])
    assert type(other.layers[0].spec) is Dense
