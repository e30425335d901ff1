"""Model files: round trips, cross-backend loading, exact resume, weights files, configs, atomic saves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import polynn
from polynn import _safetensors, plugins
from polynn.errors import InvalidArgumentError, ModelFileError
from polynn.layers import Dense, Dropout
from polynn.models import Sequential, load_model
from polynn.optimizers import SGD, Adam, RMSprop
from polynn.schedules import ExponentialDecay

safetensors_numpy = pytest.importorskip("safetensors.numpy")
from safetensors import safe_open  # noqa: E402

BACKENDS = ("numpy", "tensorflow", "torch")
PAIRS = [(a, b) for a in BACKENDS for b in BACKENDS]
# The conformance kit's tolerances for predictions of one set of weights on two engines.
PREDICT_ATOL = {"float32": 1e-6, "float64": 1e-12}
# ... and for weights after the same training steps (float64).
RESUME_ATOL = 1e-9

rng = np.random.default_rng(1234)
X = rng.random((96, 6))
Y = rng.integers(0, 2, size=(96, 1))
X_VAL = rng.random((32, 6))
Y_VAL = rng.integers(0, 2, size=(32, 1))


def need(*names):
    """Skip for a backend that is not registered or whose engine is not installed (a NumPy-only
    environment); a registered backend whose engine is installed but fails to load fails the test."""
    entries = {entry.name: entry for entry in plugins.backend_entries()}
    for name in names:
        if name not in entries:
            pytest.skip(f"backend {name!r} is not registered")
        if not entries[name].engine_installed():
            pytest.skip(f"backend {name!r} needs {entries[name].engine}, which is not installed")


def make_model(backend="numpy", dtype="float64", optimizer=None, seed=7, dropout=0.25):
    layers = [Dense(8, input_dim=6, activation="relu")]
    if dropout:
        layers.append(Dropout(dropout))
    layers.append(Dense(1, activation="sigmoid"))
    model = Sequential(layers)
    model.compile(optimizer=optimizer if optimizer is not None else Adam(learning_rate=0.01),
                  loss="binary_crossentropy", metrics=["accuracy", "mae"], backend=backend, dtype=dtype, seed=seed)
    return model


def fit(model, epochs, initial_epoch=0, **kwargs):
    return model.fit(X, Y, batch_size=16, epochs=epochs, initial_epoch=initial_epoch, verbose=0, **kwargs)


def max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(u, np.float64) - np.asarray(v, np.float64)))) for u, v in zip(a, b))


def rewrite(path, edit):
    """Rewrite a polynn file through the reference safetensors package, editing its metadata."""
    tensors = safetensors_numpy.load_file(str(path))
    with safe_open(str(path), "np") as handle:
        metadata = dict(handle.metadata())
    edit(tensors, metadata)
    safetensors_numpy.save_file(tensors, str(path), metadata=metadata)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Per (backend, dtype): a model file after 1 epoch, and the weights after 2 uninterrupted epochs."""
    cache = {}
    folder = tmp_path_factory.mktemp("trained")

    def get(backend, dtype):
        key = (backend, dtype)
        if key not in cache:
            need(backend)
            one = make_model(backend, dtype)
            fit(one, 1)
            path = folder / f"{backend}-{dtype}.safetensors"
            one.save(path)
            two = make_model(backend, dtype)
            fit(two, 2)
            cache[key] = (path, one.predict(X, verbose=0), two.get_weights())
        return cache[key]

    return get


# ---- round trips and metadata -------------------------------------------------------------------


def test_round_trip_restores_everything(tmp_path):
    model = make_model(optimizer=RMSprop(learning_rate=0.01, momentum=0.5, centered=True))
    fit(model, 1)
    model.learning_rate = 0.004
    path = tmp_path / "model.safetensors"
    model.save(path)
    loaded = load_model(path)
    assert loaded.get_config() == model.get_config()
    assert loaded.backend == "numpy" and loaded.dtype == "float64"
    assert loaded.iterations == model.iterations == 6
    assert loaded._compiled.seed == 7 and loaded.learning_rate == 0.004
    assert loaded.optimizer == model.optimizer and loaded.loss == model.loss
    assert loaded._compiled.metric_ids == ["accuracy", "mae"]
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model._compiled.runtime.get_optimizer_state(), loaded._compiled.runtime.get_optimizer_state()):
        assert len(a) == len(b) == 3
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
    assert loaded.evaluate(X, Y, verbose=0) == model.evaluate(X, Y, verbose=0)


def test_file_is_safetensors_with_polynn_metadata(tmp_path):
    model = make_model(dtype="float32")
    fit(model, 1)
    path = tmp_path / "model.safetensors"
    model.save(path)
    tensors = safetensors_numpy.load_file(str(path))
    names = ["weights.dense.kernel", "weights.dense.bias", "weights.dense_1.kernel", "weights.dense_1.bias"]
    for name, weight in zip(names, model.get_weights()):
        assert tensors[name].dtype == np.float32
        np.testing.assert_array_equal(tensors[name], weight)
    for name, slots in zip(names, model._compiled.runtime.get_optimizer_state()):
        np.testing.assert_array_equal(tensors["optimizer" + name[len("weights"):] + ".m"], slots[0])
        np.testing.assert_array_equal(tensors["optimizer" + name[len("weights"):] + ".v"], slots[1])
    with safe_open(str(path), "np") as handle:
        metadata = handle.metadata()
    assert metadata["format"] == "polynn.model" and metadata["format_version"] == "1"
    info = json.loads(metadata["info"])
    assert info["polynn_version"] == polynn.__version__
    assert info["backend"] == "numpy" and info["dtype"] == "float32"
    state = json.loads(metadata["state"])
    assert state == {"iterations": 6, "learning_rate": None, "seed": 7, "optimizer_state": True}
    compile_doc = json.loads(metadata["compile"])
    assert compile_doc["optimizer"]["class_name"] == "adam"
    assert compile_doc["loss"] == {"class_name": "binary_crossentropy", "config": model.loss.get_config()}
    # Every name in the documents is a registry entry, never a module path.
    assert "polynn." not in metadata["model"] + metadata["compile"]


def test_file_rewritten_by_reference_safetensors_loads(tmp_path):
    model = make_model()
    fit(model, 1)
    path = tmp_path / "model.safetensors"
    model.save(path)
    rewrite(path, lambda tensors, metadata: None)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), model.predict(X, verbose=0))


@pytest.mark.parametrize("dtype", ["<f8", "<f4", "<f2", "<i8", "<i4", "<i2", "i1", "<u8", "<u4", "<u2", "u1", "?"])
def test_safetensors_codec_matches_reference(tmp_path, dtype):
    source = np.random.default_rng(0)
    tensors = {
        "a": (source.random((3, 4)) * 100).astype(dtype),
        "b.scalar": np.asarray(7, dtype=dtype),
        "c-empty": np.zeros((0, 5), dtype=dtype),
        "d": (source.random((2, 3, 2)) * 50).astype(dtype),
    }
    ours = tmp_path / "ours.safetensors"
    with open(ours, "wb") as stream:
        _safetensors.write(stream, tensors, {"k": "v"})
    theirs = safetensors_numpy.load_file(str(ours))
    reference = tmp_path / "reference.safetensors"
    safetensors_numpy.save_file(tensors, str(reference), metadata={"k": "v"})
    with open(reference, "rb") as stream:
        read_back, metadata = _safetensors.read(stream, os.path.getsize(reference))
    assert metadata == {"k": "v"}
    for name, value in tensors.items():
        for other in (theirs[name], read_back[name]):
            assert other.dtype == value.dtype and other.shape == value.shape
            np.testing.assert_array_equal(other, value)


def test_uncompiled_model_round_trip(tmp_path):
    model = Sequential([Dense(3, input_dim=4, activation="tanh"), Dense(2)])
    model.set_weights([np.full((4, 3), 0.5), np.zeros(3), np.ones((3, 2)), np.arange(2.0)])
    path = tmp_path / "plain.safetensors"
    model.save(path)
    loaded = load_model(path)
    assert not loaded.compiled
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_dtype_override_and_recorded_backend_fallback(tmp_path):
    model = make_model(dtype="float32")
    fit(model, 1)
    path = tmp_path / "model.safetensors"
    model.save(path)
    wide = load_model(path, dtype="float64")
    assert wide.dtype == "float64"
    for a, b in zip(model.get_weights(), wide.get_weights()):
        np.testing.assert_array_equal(a.astype(np.float64), b)

    def record_missing_backend(tensors, metadata):
        info = json.loads(metadata["info"])
        info["backend"] = "a_backend_nobody_installed"
        metadata["info"] = json.dumps(info)

    rewrite(path, record_missing_backend)
    assert load_model(path).backend == "numpy"


def test_recorded_backend_is_used(tmp_path):
    need("torch")
    model = make_model(backend="torch")
    path = tmp_path / "model.safetensors"
    model.save(path)
    assert load_model(path).backend == "torch"
    assert load_model(path, backend="numpy").backend == "numpy"


def test_learning_rate_accessor():
    model = make_model(optimizer=SGD(learning_rate=0.05))
    assert model.learning_rate == 0.05
    model.learning_rate = np.float32(0.5)
    assert model.learning_rate == 0.5
    model.learning_rate = None
    assert model.learning_rate == 0.05
    with pytest.raises(InvalidArgumentError, match="learning_rate"):
        model.learning_rate = -1.0
    scheduled = make_model(optimizer=SGD(learning_rate=ExponentialDecay(0.1, decay_steps=6, decay_rate=0.5)))
    fit(scheduled, 1)
    # Schedules run in float32, as Keras's: 0.1 * 0.5 ** 1 is float32's 0.05.
    assert scheduled.learning_rate == pytest.approx(float(np.float32(0.05)), rel=1e-12)
    with pytest.raises(InvalidArgumentError, match="LearningRateSchedule"):
        scheduled.learning_rate = 0.2


def test_overwrite_false_refuses_existing_file(tmp_path):
    model = make_model()
    path = tmp_path / "model.safetensors"
    model.save(path)
    with pytest.raises(InvalidArgumentError, match="overwrite"):
        model.save(path, overwrite=False)


# ---- cross-backend --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("source,target", PAIRS)
def test_cross_backend_predictions(trained, source, target, dtype):
    need(source, target)
    path, predictions, _ = trained(source, dtype)
    loaded = load_model(path, backend=target)
    assert loaded.backend == target and loaded.dtype == dtype
    np.testing.assert_allclose(loaded.predict(X, verbose=0), predictions, rtol=0, atol=PREDICT_ATOL[dtype])


# ---- exact resume ---------------------------------------------------------------------------------


@pytest.mark.parametrize("source,target", PAIRS)
def test_resume_matches_uninterrupted_training(trained, source, target):
    need(source, target)
    path, _, uninterrupted = trained(source, "float64")
    resumed = load_model(path, backend=target)
    fit(resumed, 2, initial_epoch=1)
    assert resumed.iterations == 12
    assert max_diff(resumed.get_weights(), uninterrupted) <= RESUME_ATOL
    if source == target == "numpy":
        for a, b in zip(resumed.get_weights(), uninterrupted):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("optimizer", [
    SGD(learning_rate=ExponentialDecay(0.1, decay_steps=4, decay_rate=0.5), momentum=0.9, nesterov=True),
    RMSprop(learning_rate=0.01, momentum=0.5, centered=True),
    Adam(learning_rate=0.01, amsgrad=True, weight_decay=0.01),
], ids=["sgd-schedule", "rmsprop", "adam-amsgrad"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_resume_is_bitwise_on_one_backend(tmp_path, optimizer, dtype):
    uninterrupted = make_model(dtype=dtype, optimizer=optimizer)
    fit(uninterrupted, 3)
    first = make_model(dtype=dtype, optimizer=optimizer)
    fit(first, 1)
    first.save(tmp_path / "1.safetensors")
    second = load_model(tmp_path / "1.safetensors")
    fit(second, 2, initial_epoch=1)
    second.save(tmp_path / "2.safetensors")
    third = load_model(tmp_path / "2.safetensors")
    fit(third, 3, initial_epoch=2)
    for a, b in zip(third.get_weights(), uninterrupted.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_resume_keeps_a_learning_rate_override(tmp_path):
    def run(interrupt):
        model = make_model(optimizer=SGD(learning_rate=0.1, momentum=0.5))
        fit(model, 1)
        model.learning_rate = 0.02
        if interrupt:
            model.save(tmp_path / "m.safetensors")
            model = load_model(tmp_path / "m.safetensors")
            assert model.learning_rate == 0.02
        fit(model, 2, initial_epoch=1)
        return model.get_weights()

    for a, b in zip(run(True), run(False)):
        np.testing.assert_array_equal(a, b)


# ---- weights files and configs --------------------------------------------------------------------


def test_save_weights_and_load_weights(tmp_path):
    model = make_model()
    fit(model, 1)
    path = tmp_path / "model.weights.safetensors"
    model.save_weights(path)
    with safe_open(str(path), "np") as handle:
        assert handle.metadata()["format"] == "polynn.weights"
        assert sorted(handle.keys()) == ["weights.dense.bias", "weights.dense.kernel",
                                         "weights.dense_1.bias", "weights.dense_1.kernel"]
    other = make_model(seed=99)
    other.load_weights(path)
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    # An unbuilt model of the same architecture builds from the file's recorded input shape.
    unbuilt = Sequential([Dense(8, activation="relu"), Dropout(0.25), Dense(1, activation="sigmoid")])
    unbuilt.load_weights(path)
    np.testing.assert_allclose(unbuilt.predict(X, verbose=0), model.predict(X, verbose=0), atol=1e-6)
    # A whole-model file also serves load_weights; a weights file is not a model.
    model.save(tmp_path / "model.safetensors")
    other.load_weights(tmp_path / "model.safetensors")
    with pytest.raises(ModelFileError, match="load_weights"):
        load_model(path)


def test_load_weights_refuses_another_architecture(tmp_path):
    model = make_model()
    path = tmp_path / "w.safetensors"
    model.save_weights(path)
    wider = Sequential([Dense(9, input_dim=6, activation="relu"), Dense(1)])
    with pytest.raises(ModelFileError, match="shape"):
        wider.load_weights(path)
    deeper = Sequential([Dense(8, input_dim=6), Dense(4), Dense(1)])
    with pytest.raises(ModelFileError, match="missing"):
        deeper.load_weights(path)


def test_get_config_from_config_round_trip():
    model = make_model()
    config = model.get_config()
    assert json.loads(json.dumps(config)) == config
    clone = Sequential.from_config(config)
    assert clone.get_config() == config
    assert [type(a) for a in clone.layers] == [type(b) for b in model.layers]
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.predict(X, verbose=0), model.predict(X, verbose=0), atol=1e-6)


# ---- atomic saves ---------------------------------------------------------------------------------


def test_failed_save_leaves_previous_file(tmp_path, monkeypatch):
    model = make_model()
    path = tmp_path / "model.safetensors"
    model.save(path)
    before = path.read_bytes()
    fit(model, 1)

    def crash(fd):
        raise OSError("disk vanished mid-save")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(ModelFileError, match="model.safetensors.*disk vanished"):
        model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]
    assert load_model(path).iterations == 0


_SAVER = textwrap.dedent("""
    import sys
    import numpy as np
    from polynn.layers import Dense
    from polynn.models import Sequential

    model = Sequential([Dense(1500, input_dim=1500), Dense(1)])
    model.compile(optimizer="adam", loss="mse", dtype="float64", seed=3)
    for k in range(10**6):
        weights = model.get_weights()
        weights[-1][...] = k
        model.set_weights(weights)
        model.save(sys.argv[1])
        print(k, flush=True)
""")


def test_killed_save_leaves_a_loadable_file(tmp_path):
    path = tmp_path / "big.safetensors"
    for delay in (0.0, 0.05, 0.13):
        process = subprocess.Popen([sys.executable, "-c", _SAVER, str(path)], stdout=subprocess.PIPE, text=True)
        try:
            first = int(process.stdout.readline())  # one complete save exists
            time.sleep(delay)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
            process.stdout.close()
        loaded = load_model(path)
        bias = loaded.get_weights()[-1]
        assert bias.shape == (1,) and bias[0] >= first
        assert loaded.get_weights()[0].shape == (1500, 1500)


def test_resume_example_runs(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / "resume.py"
    spec = importlib.util.spec_from_file_location("resume_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    example.main(["--epochs", "1", "--more-epochs", "1"])
    out = capsys.readouterr().out
    assert "Loaded: backend numpy, float64, 63 optimizer steps done" in out
    assert out.rstrip().endswith("uninterrupted epochs on numpy: 0")


def test_registered_function_metrics_and_losses_round_trip_by_name(tmp_path):
    from polynn import _custom, ops

    @polynn.register("saving_test_abs_error")
    def abs_error(y_true, y_pred):
        return ops.mean(ops.abs(y_true - y_pred), axis=-1)

    try:
        model = Sequential([Dense(2, input_dim=3)])
        model.compile(loss="saving_test_abs_error", metrics=[abs_error, "mae"], seed=0)
        path = tmp_path / "custom.safetensors"
        model.save(path)
        restored = load_model(path)
        x, y = np.ones((4, 3)), np.zeros((4, 2))
        assert restored.evaluate(x, y, verbose=0, return_dict=True) == model.evaluate(x, y, verbose=0,
                                                                                     return_dict=True)
    finally:
        _custom.unregister("saving_test_abs_error")


def test_unregistered_function_metric_is_refused_clearly(tmp_path):
    from polynn import ops

    model = Sequential([Dense(2, input_dim=3)])
    model.compile(loss="mse", metrics=[lambda y, p: ops.mean(ops.square(y - p), axis=-1)])
    with pytest.raises(InvalidArgumentError, match="polynn.register"):
        model.save(tmp_path / "lambda.safetensors")
    assert not (tmp_path / "lambda.safetensors").exists()


def test_weighted_metrics_round_trip_and_older_files_load(tmp_path):
    x = np.random.default_rng(0).random((30, 4))
    y = (x[:, :1] > 0.5).astype(float)
    sw = np.random.default_rng(1).uniform(0.1, 2.0, size=len(x))
    model = Sequential([Dense(1, input_dim=4, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"], weighted_metrics=["accuracy"],
                  dtype="float64", seed=3)
    path = tmp_path / "m.polynn"
    model.save(path)
    logs = model.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True)
    assert load_model(path).evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True) == logs
    # A file written before weighted_metrics existed has no such key: it loads with none.
    def drop_weighted_metrics(tensors, metadata):
        compile_doc = json.loads(metadata["compile"])
        del compile_doc["weighted_metrics"]
        metadata["compile"] = json.dumps(compile_doc)

    rewrite(path, drop_weighted_metrics)
    old = load_model(path).evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True)
    assert old == {"loss": logs["loss"], "accuracy": logs["accuracy"]}


def test_a_file_asking_for_too_many_layers_is_refused_before_building(tmp_path, monkeypatch):
    from polynn import _saving
    from polynn.layers import Activation

    model = Sequential([Dense(2, input_dim=3)] + [Activation("relu") for _ in range(4)])
    model.save(tmp_path / "deep.safetensors")
    monkeypatch.setattr(_saving, "MAX_LAYERS", 4)  # 2**14 in earnest; the check is the same
    built = []
    monkeypatch.setattr(Sequential, "from_config", classmethod(lambda cls, config: built.append(config)))
    with pytest.raises(ModelFileError, match=r"deep\.safetensors.*lists 5 layers; accepted: at most 4"):
        load_model(tmp_path / "deep.safetensors")
    assert built == []
