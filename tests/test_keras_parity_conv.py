"""The conv family against Keras 3, from Keras's initial weights: a short fit of small convnets in float64
gives Keras's losses, final weights and predictions to 1e-10 (Keras on TensorFlow), the forward pass
gives Keras's on PyTorch, and .keras files go both ways.

Keras is an outside reference here: every expected number comes from running it, on TensorFlow in
this process (the `keras` fixture, as tests/test_keras_parity.py) and on PyTorch in a process of its
own (KERAS_BACKEND is read once, at import), which runs this module's own `keras_forward`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from polynn import layers, optimizers, plugins
from polynn.models import Sequential, load_model

F64_TOLERANCE = 1e-10
SAMPLES, BATCH, EPOCHS = 24, 8, 2  # 6 steps

# Each case: (per-sample input shape, its layers from a module spelled as keras.layers, its optimizer
# from a module spelled as keras.optimizers). The same lambda builds the Keras and the polynn model.
CASES = {
    "conv2d-maxpool-gap": ((8, 7, 2), lambda lay: [
        lay.Conv2D(4, 3, activation="relu"), lay.MaxPooling2D(), lay.Conv2D(3, 2, padding="same", activation="tanh"),
        lay.GlobalAveragePooling2D(), lay.Dense(2)], lambda opt: opt.SGD(learning_rate=0.05)),
    "conv1d-avgpool-flatten": ((10, 3), lambda lay: [
        lay.Conv1D(4, 3, activation="relu"), lay.AveragePooling1D(2), lay.Flatten(), lay.Dense(2)],
        lambda opt: opt.Adam(learning_rate=0.01)),
    "reshape-causal-gmp": ((12,), lambda lay: [
        lay.Reshape((6, 2)), lay.Conv1D(3, 2, padding="causal", dilation_rate=2, activation="tanh"),
        lay.GlobalMaxPooling1D(), lay.Dense(1)], lambda opt: opt.SGD(learning_rate=0.1, momentum=0.9)),
    "strides-same-dilation-2d": ((9, 8, 2), lambda lay: [
        lay.Conv2D(4, 3, strides=2, padding="same", activation="elu"),
        lay.AveragePooling2D(2, strides=1, padding="same"),
        lay.Conv2D(3, 2, dilation_rate=2, padding="same", use_bias=False),
        lay.MaxPooling2D(3, strides=2, padding="same"), lay.Flatten(), lay.Dense(2)],
        lambda opt: opt.Adam(learning_rate=0.01)),
    "strides-same-1d-keepdims": ((11, 2), lambda lay: [
        lay.Conv1D(4, 3, strides=2, padding="same", kernel_regularizer="l2"),
        lay.MaxPooling1D(3, strides=1, padding="same"),
        lay.AveragePooling1D(3, strides=2, padding="same"), lay.GlobalAveragePooling1D(keepdims=True), lay.Flatten(),
        lay.Dense(2)], lambda opt: opt.RMSprop(learning_rate=0.01)),
    "groups-2d": ((6, 6, 4), lambda lay: [
        lay.Conv2D(6, 2, groups=2, activation="relu"), lay.Conv2D(4, 3, groups=2, padding="same"),
        lay.GlobalMaxPooling2D(keepdims=True), lay.Reshape((2, 2)), lay.GlobalMaxPooling1D(), lay.Dense(1)],
        lambda opt: opt.SGD(learning_rate=0.05)),
}


def _data(shape: tuple, output_shape: tuple) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(17)
    return rng.normal(size=(SAMPLES, *shape)), rng.normal(size=(SAMPLES, *output_shape))


def _layers(case: str, module, head: bool) -> list:
    """The case's layers from `module`; without its last, the Dense head, when `head` is False."""
    built = CASES[case][1](module)
    return built if head else built[:-1]


def keras_fit(keras, case: str) -> dict[str, np.ndarray]:
    """Keras's run of `case` in float64: its initial and final weights, its epochs' losses and its
    predictions after training (arrays named initial_<k>, final_<k>, loss, predict)."""
    shape, _, make_optimizer = CASES[case]
    # Keras's default layer policy is made from floatx once and then kept: set both, reset both.
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input(shape), *_layers(case, keras.layers, head=True)])
        model.compile(optimizer=make_optimizer(keras.optimizers), loss="mse")
        out = {f"initial_{k}": np.array(w) for k, w in enumerate(model.get_weights())}
        x, y = _data(shape, tuple(model.output_shape[1:]))
        history = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
        out.update({f"final_{k}": np.array(w) for k, w in enumerate(model.get_weights())})
        out["loss"] = np.asarray(history.history["loss"])
        out["predict"] = np.asarray(model.predict(x, verbose=0))
        return out
    finally:
        keras.config.set_floatx("float32")
        keras.config.set_dtype_policy("float32")


def _numbered(run: dict, prefix: str) -> list[np.ndarray]:
    return [run[f"{prefix}_{k}"] for k in range(sum(key.startswith(prefix + "_") for key in run))]


def _polynn_fit(case: str, backend: str, initial: list[np.ndarray]) -> tuple[Sequential, dict]:
    shape, _, make_optimizer = CASES[case]
    model = Sequential([layers.Input(shape), *_layers(case, layers, head=True)])
    model.compile(optimizer=make_optimizer(optimizers), loss="mse", backend=backend, dtype="float64", seed=0)
    model.set_weights(initial)
    x, y = _data(shape, model.output_shape)
    history = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
    return model, {"loss": np.asarray(history.history["loss"]), "predict": model.predict(x, verbose=0),
                   "final": model.get_weights()}


def _assert_as_keras(run: dict, mine: dict) -> None:
    gaps = {
        "loss": float(np.max(np.abs(run["loss"] - mine["loss"]))),
        "predict": float(np.max(np.abs(run["predict"] - mine["predict"]))),
        "weights": max(float(np.max(np.abs(a - b))) for a, b in zip(_numbered(run, "final"), mine["final"],
                                                                    strict=True)),
    }
    assert max(gaps.values()) <= F64_TOLERANCE, f"from Keras's: {gaps}"
    # The fit moved the weights by far more than the tolerance: the comparison has teeth.
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(_numbered(run, "initial"), _numbered(run, "final")))
    assert moved > 1e-3


def _installed_backends() -> list[str]:
    """Every installed backend but the JAX example's (it compiles each model; the kit covers it)."""
    return [entry.name for entry in plugins.backend_entries()
            if entry.name != "jax" and entry.error is None
            and importlib.util.find_spec(entry.engine.split(".")[0]) is not None]


BACKENDS = _installed_backends()


@pytest.fixture(scope="module")
def keras():
    if os.environ.setdefault("KERAS_BACKEND", "tensorflow") != "tensorflow":
        pytest.skip("these tests compare with Keras on TensorFlow; KERAS_BACKEND names another backend")
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    if keras.config.backend() != "tensorflow":
        pytest.skip("Keras was imported with another backend")
    return keras


@functools.cache
def _keras_tensorflow(keras, case: str) -> dict:
    return keras_fit(keras, case)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(CASES))
def test_a_short_fit_matches_keras_on_tensorflow(keras, case, backend):
    run = _keras_tensorflow(keras, case)
    _, mine = _polynn_fit(case, backend, _numbered(run, "initial"))
    _assert_as_keras(run, mine)


def keras_forward(keras, case: str) -> dict[str, np.ndarray]:
    """Keras's float64 predictions of `case`, without its Dense head, from its initial weights
    (arrays initial_<k> and predict)."""
    shape, _, _ = CASES[case]
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input(shape), *_layers(case, keras.layers, head=False)])
        out = {f"initial_{k}": np.array(w) for k, w in enumerate(model.get_weights())}
        x, _ = _data(shape, tuple(model.output_shape[1:]))
        out["predict"] = np.asarray(model.predict(x, verbose=0))
        return out
    finally:
        keras.config.set_floatx("float32")
        keras.config.set_dtype_policy("float32")


# Keras on PyTorch, in a process of its own, which imports this module. Only forward passes, of the
# cases whose layers Keras 3.15 computes there as on TensorFlow in float64 (measured when this was
# written): it computes a float64 model's loss in float32 (its losses come back as torch.float32,
# 1e-9 off in the weights after one step), its float64 matmul (keras.ops.matmul, Dense) and mean
# (keras.ops.mean, GlobalAveragePooling) are 1e-7 off, and its AveragePooling with padding "same"
# departs from Keras's on TensorFlow for some shapes (AveragePooling1D(4, strides=2) on 7 steps:
# 0.59); its convolutions, max pools and valid average pools are float64-exact.
TORCH_CASES = ("conv1d-avgpool-flatten", "reshape-causal-gmp", "strides-same-dilation-2d", "groups-2d")
TORCH_RUNNER = textwrap.dedent("""
    import os, sys
    os.environ["KERAS_BACKEND"] = "torch"
    sys.path.insert(0, sys.argv[1])
    import numpy as np, keras
    import test_keras_parity_conv as cases
    for case in cases.TORCH_CASES:
        np.savez(os.path.join(sys.argv[2], case + ".npz"), **cases.keras_forward(keras, case))
""")


@pytest.fixture(scope="module")
def keras_torch(tmp_path_factory):
    for name in ("keras", "torch"):
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"needs {name}")
    folder = tmp_path_factory.mktemp("keras_torch")
    done = subprocess.run([sys.executable, "-c", TORCH_RUNNER, os.path.dirname(os.path.abspath(__file__)),
                           str(folder)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return {case: dict(np.load(folder / f"{case}.npz")) for case in TORCH_CASES}


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", TORCH_CASES)
def test_the_forward_pass_matches_keras_on_torch(keras_torch, case, backend):
    run = keras_torch[case]
    shape = CASES[case][0]
    model = Sequential([layers.Input(shape), *_layers(case, layers, head=False)])
    model.compile("sgd", "mse", backend=backend, dtype="float64")
    model.set_weights(_numbered(run, "initial"))
    x, _ = _data(shape, model.output_shape)
    gap = float(np.max(np.abs(model.predict(x, verbose=0) - run["predict"])))
    assert gap <= F64_TOLERANCE, f"predictions {gap:.2e} from Keras's"


# ---- .keras files both ways ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_keras_loads_polynn_files_and_polynn_loads_keras_files(keras, tmp_path, case):
    shape, build, _ = CASES[case]
    run = _keras_tensorflow(keras, case)
    model, _ = _polynn_fit(case, "numpy", _numbered(run, "initial"))
    x, _ = _data(shape, model.output_shape)
    ours = tmp_path / "polynn.keras"
    model.save(ours)
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        theirs = keras.models.load_model(ours)
        assert [type(layer).__name__ for layer in theirs.layers] == [type(spec).__name__
                                                                     for spec in build(layers)]
        for a, b in zip(theirs.get_weights(), model.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(theirs.predict(x, verbose=0), model.predict(x, verbose=0), rtol=0,
                                   atol=1e-12)
        # Keras goes on training it, saves it, and polynn reads that file back, optimizer state too.
        theirs.fit(x, np.asarray(theirs.predict(x, verbose=0)) * 0.5, batch_size=BATCH, epochs=1, shuffle=False,
                   verbose=0)
        saved = tmp_path / "keras.keras"
        theirs.save(saved)
        expected = theirs.predict(x, verbose=0)
        keras_weights = theirs.get_weights()
        weights_only = tmp_path / "keras.weights.h5"
        theirs.save_weights(weights_only)
    finally:
        keras.config.set_floatx("float32")
        keras.config.set_dtype_policy("float32")
    back = load_model(saved, backend="numpy")
    assert [type(b.spec) for b in back.layers[1:]] == [type(spec) for spec in build(layers)]
    assert [{k: v for k, v in b.spec.get_config().items() if k != "name"} for b in back.layers[1:]] \
        == [spec.get_config() for spec in build(layers)]
    for a, b in zip(back.get_weights(), keras_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(back.predict(x, verbose=0), expected, rtol=0, atol=1e-12)
    assert back.iterations == model.iterations + SAMPLES // BATCH
    fresh = Sequential([layers.Input(shape), *build(layers)])
    fresh.compile("sgd", "mse", dtype="float64")
    fresh.load_weights(weights_only)
    np.testing.assert_allclose(fresh.predict(x, verbose=0), expected, rtol=0, atol=1e-12)


def test_keras_configs_of_the_family_are_read_as_keras_writes_them():
    """A config as Keras 3.15 writes it (by hand here, to run without Keras): every key read;
    Keras's LoRA refused by the reader, channels_first by the spec (a load names the file)."""
    from polynn import _keras_components
    from polynn.errors import InvalidArgumentError, ModelFileError

    conv = {"name": "c", "trainable": True, "dtype": None, "filters": 4, "kernel_size": [3, 3], "strides": [1, 1],
            "padding": "same", "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1,
            "activation": "relu", "use_bias": True, "kernel_initializer": "glorot_uniform",
            "bias_initializer": "zeros", "kernel_regularizer": None, "bias_regularizer": None,
            "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None}
    spec, _ = _keras_components.layer("Conv2D", conv, "here")
    assert spec == layers.Conv2D(4, 3, padding="same", activation="relu", name="c")
    with pytest.raises(InvalidArgumentError, match="Conv2D: invalid data_format='channels_first'"):
        _keras_components.layer("Conv2D", {**conv, "data_format": "channels_first"}, "here")
    with pytest.raises(ModelFileError, match="lora_rank=4.*LoRA"):
        _keras_components.layer("Conv2D", {**conv, "lora_rank": 4}, "here")
    pool = {"name": "p", "trainable": True, "dtype": None, "pool_size": [2, 2], "padding": "valid",
            "strides": [1, 1], "data_format": "channels_last"}
    spec, _ = _keras_components.layer("AveragePooling2D", pool, "here")
    assert spec == layers.AveragePooling2D(2, strides=1, name="p")
    spec, _ = _keras_components.layer("Reshape", {"name": "r", "target_shape": [2, -1]}, "here")
    assert spec == layers.Reshape((2, -1), name="r")
    spec, _ = _keras_components.layer("GlobalMaxPooling1D", {"name": "g", "data_format": "channels_last",
                                                             "keepdims": True}, "here")
    assert spec == layers.GlobalMaxPooling1D(keepdims=True, name="g")
