"""What every installed engine's backend must do, one body per behaviour, run on each engine in turn."""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from polynn import activations, constraints, losses, metrics, ops, optimizers, plugins, regularizers
from polynn.callbacks import Callback
from polynn.conformance._harness import (
    GRADIENT_PROBE_RATE,
    activation_probe,
    compiled_model,
    gradient_probe,
    identity_inputs,
)
from polynn.conformance.inputs import activation_grid, activation_upstream
from polynn.errors import InvalidArgumentError
from polynn.layers import Activation, Dense, Dropout
from polynn.models import Sequential

# float64 runs agree to rounding: measured deviations are below 1e-15 relative.
F64 = dict(rtol=1e-9, atol=1e-9)
EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


# ---- the engines ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Engine:
    """An engine's backend as it must be registered; `version` is the installed engine's."""

    name: str  # the backend's name, and the engine's
    plugin: str  # the module registering the backend
    install: str
    devices: tuple
    accepted_devices: str  # how a refused device's message names the accepted ones
    version: str = ""


ENGINES = (
    Engine("tensorflow", "polynn_tensorflow", "polynn[tensorflow]", ("cpu", "gpu"), "None, 'cpu' or 'gpu'"),
    Engine("torch", "polynn_torch", "polynn[torch]", ("cpu", "cuda"), "'cpu', 'cuda' or 'cuda:N'"),
    # A third-party backend (examples/polynn-jax), tested here where the body is every engine's.
    Engine("jax", "polynn_jax", "polynn-jax", ("cpu",), "None or 'cpu'"),
)


# JAX compiles each block shape anew, seconds per body here, so its bodies run with -m "" (CI); the
# default run keeps the example's own tests of it (examples/polynn-jax/tests).
_PARAMS = [pytest.param(engine, id=engine.name, marks=pytest.mark.slow if engine.name == "jax" else ())
           for engine in ENGINES]


@pytest.fixture(scope="module", params=_PARAMS)
def backend(request):
    """Each installed engine in turn; an engine or backend plugin that is not installed skips its tests."""
    engine = request.param
    module = pytest.importorskip(engine.name, reason=f"engine {engine.name} is not installed")
    pytest.importorskip(engine.plugin, reason=f"backend plugin {engine.plugin} is not installed")
    if engine.name not in {entry.name for entry in plugins.backend_entries()}:
        pytest.skip(f"{engine.plugin} is importable but registers no backend {engine.name!r} (not installed)")
    saved = module.get_num_threads() if engine.name == "torch" else None
    if saved is not None:
        # These models are tiny, so torch's intra-op threads buy nothing; on a machine whose cores are
        # busy they stall each matmul waiting for a descheduled thread. Restored afterwards.
        module.set_num_threads(1)
    yield dataclasses.replace(engine, version=module.__version__)
    if saved is not None:
        module.set_num_threads(saved)


# ---- helpers: data, models, two runs side by side ---------------------------------------------

N, FEATURES, BATCH = 70, 5, 16  # four full batches and a short one, so both block shapes run


def regression_data(units=3, rank3=False):
    rng = np.random.default_rng(5)
    shape = (N, 2, FEATURES) if rank3 else (N, FEATURES)
    return rng.normal(size=shape), rng.normal(size=(*shape[:-1], units))


def class_data(classes=4):
    rng = np.random.default_rng(7)
    return rng.normal(size=(N, FEATURES)), np.eye(classes)[rng.integers(0, classes, size=N)]


def mlp(units, activation="linear", hidden="tanh"):
    return lambda: Sequential([Dense(6, input_dim=FEATURES, activation=hidden), Dense(units, activation=activation)])


def blog_data(n_train=10000, n_other=2500):
    """The blog example's data (the draws of examples/blog.py), optionally truncated."""
    from polynn.conformance.blog import blog_data as drawn

    x, y, x_val, y_val, x_test, y_test = drawn()
    return x[:n_train], y[:n_train], x_val[:n_other], y_val[:n_other], x_test[:n_other], y_test[:n_other]


def blog_model(dropout: bool) -> Sequential:
    model = Sequential()
    model.add(Dense(64, input_dim=10, activation="relu"))
    for units in (32, 16, 8, 4):
        if dropout:
            model.add(Dropout(0.2))
        model.add(Dense(units, activation="relu"))
    model.add(Dense(1, activation="sigmoid"))
    return model


def record_step_losses(model) -> list:
    """Wrap the model's runtime so every training step's loss is recorded as it is computed (blocks
    of steps stay blocks, unlike a batch-level callback)."""
    runtime = model._compiled.runtime
    recorded = []
    train_steps = runtime.train_steps

    def recording(*args, **kwargs):
        result = train_steps(*args, **kwargs)
        recorded.extend(np.asarray(result.losses, dtype=np.float64))
        return result

    runtime.train_steps = recording
    return recorded


def train(backend_name, build, compile_kwargs, fit_args, fit_kwargs=None, dtype="float64", seed=11):
    """Train build() on one backend: per-step losses, history, final weights and optimizer state."""
    model = build()
    model.compile(backend=backend_name, dtype=dtype, seed=seed, **compile_kwargs)
    model.build(fit_args[0].shape[1:])
    model._runtime_for(fit_args[0].shape[1:], fit_args[1].shape[1:])
    steps = record_step_losses(model)
    history = model.fit(*fit_args, verbose=0, **(fit_kwargs or {}))
    return dict(model=model, steps=np.array(steps), history=history.history, weights=model.get_weights(),
                state=model._compiled.runtime.get_optimizer_state())


def train_both(backend_name, *args, **kwargs):
    """The same training on the NumPy reference and on `backend_name`: (reference run, backend run)."""
    return train("numpy", *args, **kwargs), train(backend_name, *args, **kwargs)


def assert_same_training(ref, got, rtol=1e-9, atol=1e-9):
    assert len(got["steps"]) == len(ref["steps"]) > 0
    np.testing.assert_allclose(got["steps"], ref["steps"], rtol=rtol, atol=0)
    assert got["history"].keys() == ref["history"].keys()
    for key in ref["history"]:
        np.testing.assert_allclose(got["history"][key], ref["history"][key], rtol=rtol, atol=0, err_msg=key)
    for w_got, w_ref in zip(got["weights"], ref["weights"], strict=True):
        assert w_got.dtype == w_ref.dtype
        np.testing.assert_allclose(w_got, w_ref, rtol=0, atol=atol)
    for s_got, s_ref in zip(got["state"], ref["state"], strict=True):
        for a, b in zip(s_got, s_ref, strict=True):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def run_blog(backend_name, dtype, dropout, n_train, n_other, epochs=2, loss="binary_crossentropy", device=None):
    x, y, x_val, y_val, x_test, y_test = blog_data(n_train, n_other)
    model = blog_model(dropout)
    model.compile(optimizer="Adam", loss=loss, metrics=["accuracy"], backend=backend_name, dtype=dtype, seed=1000,
                  device=device)
    steps = record_step_losses(model)
    history = model.fit(x, y, epochs=epochs, validation_data=(x_val, y_val), verbose=0)
    return dict(steps=np.array(steps), history=history.history, weights=model.get_weights(),
                state=model._compiled.runtime.get_optimizer_state(),
                predictions=model.predict(x_test, verbose=0),
                evaluation=model.evaluate(x_test, y_test, verbose=0))


# ---- import and registration -------------------------------------------------------------


def test_import_polynn_does_not_import_the_engine(backend):
    """A fresh process imports polynn and loads every plugin: the backend is registered, its engine untouched."""
    code = textwrap.dedent(f"""
        import json, sys
        import polynn
        from polynn import plugins
        plugins.load()
        names = [entry.name for entry in plugins.backend_entries()]
        engine = [name for name in sys.modules if name.split(".")[0] == {backend.name!r}]
        print(json.dumps({{"backends": names, "engine_modules": sorted(engine)}}))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert backend.name in seen["backends"]
    imported = seen["engine_modules"]
    assert imported == [], f"import polynn and plugins.load() imported {len(imported)} {backend.name} modules: " \
                           f"{imported[:10]}"


def test_registered_with_its_engine_and_devices(backend):
    entry = {e.name: e for e in plugins.backend_entries()}[backend.name]
    assert (entry.engine, entry.install, entry.devices) == (backend.name, backend.install, backend.devices)
    loaded = plugins.get_backend(backend.name)
    # Every component of every kind the reference computes, user-function wrappers (custom_*)
    # included: the engine's own override or the shared implementation written on polynn.ops.
    for kind, table in plugins.get_backend("numpy").implementations.items():
        missing = {name for name in table if loaded.implementation(kind, name) is None}
        assert missing == set(), (kind, missing)
    assert loaded.engine_version() == backend.version


# ---- the blog example ----------------------------------------------------------------------


@pytest.mark.slow  # the full-size blog run; the kit's `blog` case checks its steps in the default run
def test_blog_example_float64_agrees_with_numpy_at_every_step(backend):
    ref = run_blog("numpy", "float64", False, 10000, 2500)
    got = run_blog(backend.name, "float64", False, 10000, 2500)
    assert len(got["steps"]) == 2 * 313
    assert_same_training(ref, got)
    np.testing.assert_allclose(got["predictions"], ref["predictions"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got["evaluation"], ref["evaluation"], **F64)


def test_blog_example_float64_with_dropout_agrees_with_numpy(backend):
    ref = run_blog("numpy", "float64", True, 1000, 300)
    got = run_blog(backend.name, "float64", True, 1000, 300)
    assert_same_training(ref, got)
    np.testing.assert_allclose(got["predictions"], ref["predictions"], rtol=0, atol=1e-9)


@pytest.mark.parametrize("dropout", [False, True], ids=["plain", "dropout"])
def test_blog_example_float32_agrees_with_numpy(backend, dropout):
    ref = run_blog("numpy", "float32", dropout, 2000, 500)
    got = run_blog(backend.name, "float32", dropout, 2000, 500)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(got["history"][key], ref["history"][key], rtol=1e-4, atol=0)
    assert got["predictions"].dtype == np.float32
    np.testing.assert_allclose(got["predictions"], ref["predictions"], rtol=0, atol=2e-2)


@pytest.mark.slow  # the full-size blog run
def test_blog_script_prints_the_keras_log(backend, capsys):
    spec = importlib.util.spec_from_file_location("blog_example", EXAMPLES / "blog.py")
    blog = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(blog)
    blog.main(["--backend", backend.name, "--epochs", "1", "--seed", "3"])
    out = capsys.readouterr().out
    assert "Epoch 1/1" in out and "313/313" in out and "val_loss" in out
    assert f"(backend {backend.name}, float32)" in out


@pytest.mark.slow  # the full-size blog run
def test_a_custom_loss_trains_the_blog_model_as_the_built_in_mae(backend):
    def custom_mae(y_true, y_pred):
        return ops.mean(ops.abs(y_true - y_pred), axis=-1)

    builtin = run_blog(backend.name, "float64", False, 10000, 2500, loss="mean_absolute_error")
    custom = run_blog(backend.name, "float64", False, 10000, 2500, loss=losses.CustomLoss(function=custom_mae))
    assert len(custom["steps"]) == 2 * 313
    assert_same_training(builtin, custom)
    np.testing.assert_allclose(custom["predictions"], builtin["predictions"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(custom["evaluation"], builtin["evaluation"], **F64)


# ---- steps, blocks, evaluate, predict, state ----------------------------------------------------


def test_one_step_per_call_agrees_with_numpy(backend):
    """A batch-level callback makes fit() call the backend once per step (blocks of shape (1, batch))."""

    class Logs(Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_train_batch_end(self, batch, logs=None):
            self.seen.append(dict(logs))

    x, y, *_ = blog_data(200, 10)
    seen = {}
    for name in ("numpy", backend.name):
        model = blog_model(dropout=True)
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"], backend=name,
                      dtype="float64", seed=4)
        callback = Logs()
        model.fit(x, y, epochs=2, batch_size=BATCH, verbose=0, callbacks=[callback])
        seen[name] = callback.seen
    assert len(seen[backend.name]) == len(seen["numpy"]) == 2 * 13
    for got, ref in zip(seen[backend.name], seen["numpy"]):
        assert got.keys() == ref.keys()
        for key in ref:
            np.testing.assert_allclose(got[key], ref[key], **F64)


@pytest.mark.parametrize("steps_per_execution", [3, "auto"])
def test_blocks_of_any_size_agree_with_numpy(backend, steps_per_execution):
    """Blocks of 3 steps leave a short last block of 2 each epoch (5 batches); "auto" one block per epoch."""
    x, y = regression_data()
    compile_kwargs = dict(optimizer=optimizers.AdamW(0.05, amsgrad=True, global_clipnorm=1.0), loss="huber",
                          steps_per_execution=steps_per_execution)
    ref, got = train_both(backend.name, mlp(3, hidden="selu"), compile_kwargs, (x, y), dict(batch_size=BATCH, epochs=2))
    assert_same_training(ref, got)


def test_evaluate_and_predict_agree_with_numpy(backend):
    x, y, _, _, x_test, y_test = blog_data(300, 123)
    weights = np.random.default_rng(1).uniform(0, 1, size=len(x_test))
    out = {}
    for name in ("numpy", backend.name):
        model = blog_model(dropout=True)
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy", "mae"],
                      backend=name, dtype="float64", seed=9)
        model.fit(x, y, epochs=1, verbose=0)
        out[name] = (model.evaluate(x_test, y_test, batch_size=20, verbose=0, return_dict=True),
                     model.evaluate(x_test, y_test, batch_size=50, sample_weight=weights, verbose=0),
                     model.predict(x_test, batch_size=17, verbose=0),
                     model.predict(x_test[:0], verbose=0))
    (ev, ev_w, pred, empty), (ref_ev, ref_ev_w, ref_pred, ref_empty) = out[backend.name], out["numpy"]
    assert ev.keys() == ref_ev.keys()
    for key in ref_ev:
        np.testing.assert_allclose(ev[key], ref_ev[key], **F64)
    np.testing.assert_allclose(ev_w, ref_ev_w, **F64)
    assert pred.shape == ref_pred.shape == (123, 1) and pred.dtype == np.float64
    np.testing.assert_allclose(pred, ref_pred, rtol=0, atol=1e-9)
    assert empty.shape == ref_empty.shape == (0, 1)


def test_weights_and_optimizer_state_round_trip_and_drive_the_next_steps(backend):
    x, y = regression_data()
    assert optimizers.RMSprop(centered=True, momentum=0.5).slot_names() == ("velocity", "momentum", "average_gradient")
    trained = {}
    for name in ("numpy", backend.name):
        rng = np.random.default_rng(2)  # the same draws for each backend
        model = mlp(3)()
        model.compile(optimizer=optimizers.RMSprop(momentum=0.5, centered=True), loss="mse",
                      backend=name, dtype="float64", seed=1)
        runtime = model._compiled.runtime
        weights = [rng.normal(size=w.shape) for w in model.get_weights()]
        state = []
        for w in weights:
            # A state centered RMSprop can reach: velocity (the mean square) >= average_gradient**2,
            # so sqrt(velocity - average**2 + epsilon) is real and the comparison is of numbers, not NaNs.
            average = rng.normal(size=w.shape)
            state.append([average ** 2 + rng.uniform(0.01, 1, size=w.shape), rng.normal(size=w.shape), average])
        model.set_weights(weights)
        runtime.set_optimizer_state(state)
        for got, want in zip(model.get_weights(), weights, strict=True):
            np.testing.assert_array_equal(got, want)
        for got_slots, want_slots in zip(runtime.get_optimizer_state(), state, strict=True):
            assert len(got_slots) == 3
            for got, want in zip(got_slots, want_slots, strict=True):
                np.testing.assert_array_equal(got, want)
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
        trained[name] = (model.get_weights(), runtime.get_optimizer_state())
        for array in [*trained[name][0], *(slot for slots in trained[name][1] for slot in slots)]:
            assert np.all(np.isfinite(array)), name
    for got, ref in zip(trained[backend.name][0], trained["numpy"][0], strict=True):
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)
    for got_slots, ref_slots in zip(trained[backend.name][1], trained["numpy"][1], strict=True):
        for got, ref in zip(got_slots, ref_slots, strict=True):
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)


# ---- devices ---------------------------------------------------------------------------------


def test_unknown_device_is_refused_naming_the_accepted_ones(backend):
    model = mlp(3)()
    with pytest.raises(InvalidArgumentError, match=f"device='tpu'.*{re.escape(backend.accepted_devices)}"):
        model.compile(loss="mse", backend=backend.name, device="tpu")


def test_the_cpu_by_name_trains_as_the_default_device(backend):
    x, y = regression_data()
    results = []
    for device in (None, "cpu"):
        model = mlp(3)()
        model.compile(loss="mse", backend=backend.name, dtype="float64", seed=3, device=device)
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
        results.append(model.get_weights())
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


# ---- user functions written with polynn.ops ---------------------------------------------------


def test_every_op_is_implemented(backend):
    namespace = plugins.get_backend(backend.name).ops
    assert [name for name in ops.OP_NAMES if not callable(getattr(namespace, name, None))] == []


def test_ops_cast_refuses_an_unknown_dtype_naming_the_accepted_ones(backend):
    model = Sequential([Dense(3, input_dim=4, activation=lambda x: ops.cast(x, "float16"))])
    model.compile(loss="mse", backend=backend.name)
    with pytest.raises(InvalidArgumentError, match="dtype='float16'.*float32, float64"):
        model.predict(np.ones((2, 4)), verbose=0)


def test_ops_keep_a_float32_model_in_float32(backend):
    """Python and NumPy numbers and arrays mixed into a float32 model's user function stay float32."""
    made = {
        "maximum(x, 0.5)": lambda x: ops.maximum(x, 0.5),
        "clip(x, -0.5, np.float64(0.5))": lambda x: ops.clip(x, -0.5, np.float64(0.5)),
        "where(x > 0, x, 1.0)": lambda x: ops.where(x > 0, x, 1.0),
        "power(x, 2.0)": lambda x: ops.power(x, 2.0),
        "convert_to_tensor(np.ones(4)) * x": lambda x: ops.convert_to_tensor(np.ones(4)) * x,
        "one_hot(argmax(x, -1), 4)": lambda x: ops.one_hot(ops.argmax(x, -1), 4),
        "mean(greater(x, 0.0))": lambda x: ops.mean(ops.greater(x, 0.0)),
        "concatenate([x, np.zeros((1, 4))])": lambda x: ops.concatenate([x, np.zeros((1, 4))]),
        "minimum(0.0, x)": lambda x: ops.minimum(0.0, x),
    }
    seen = {}

    def recording(x):
        seen.update({label: ops.dtype(function(x)) for label, function in made.items()})
        return x

    model = Sequential([Dense(4, input_dim=4, activation=recording)])
    model.compile(loss="mse", backend=backend.name, dtype="float32")
    model.fit(np.ones((3, 4)), np.ones((3, 4)), verbose=0)
    assert seen.keys() == made.keys()
    assert {label: dtype for label, dtype in seen.items() if dtype != "float32"} == {}


def mish_by_ops(x):
    return x * ops.tanh(ops.softplus(x))


def margin_loss(y_true, y_pred):
    # max over the last axis (ties share), where, one_hot and take_along_axis.
    labels = ops.argmax(y_true, axis=-1)
    picked = ops.squeeze(ops.take_along_axis(y_pred, ops.expand_dims(labels, -1), axis=-1), -1)
    others = ops.where(ops.one_hot(labels, 4) > 0.5, -1e9 * ops.ones_like(y_pred), y_pred)
    return ops.maximum(ops.max(others, axis=-1) - picked + 1.0, 0.0) + 0.1 * ops.mean(ops.abs(y_pred), axis=-1)


def log_ratio(y_true, y_pred):
    return ops.sum(ops.square(ops.log1p(ops.softplus(y_pred)) - ops.sigmoid(y_true)), axis=-1)


def top_margin(y_true, y_pred):
    top = ops.sort(y_pred, axis=-1)
    hit = ops.equal(ops.argmax(y_true, -1), ops.argmax(y_pred, -1))
    return top[..., -1] - top[..., -2] + ops.cast(hit, ops.dtype(y_pred))


@pytest.mark.parametrize("dtype, start", [("float64", "random"), ("float64", "zero"), ("float32", "random")])
def test_custom_activation_loss_and_metric_agree_with_numpy(backend, dtype, start):
    """A user activation (as a Dense's and as an Activation layer), loss and metrics (specs and plain
    functions), with sample weights and validation data. A zero start puts every pre-activation at
    exactly 0 on the first step: the kinks' corner."""

    def build():
        initializer = "zeros" if start == "zero" else "glorot_uniform"
        return Sequential([Dense(6, input_dim=FEATURES, activation=mish_by_ops, kernel_initializer=initializer),
                           Dense(4), Activation(lambda x: ops.clip(x, -2.0, 2.0) + 0.01 * x)])

    x, y = class_data()
    weights = np.random.default_rng(10).uniform(0, 2, size=N)
    compile_kwargs = dict(optimizer=optimizers.SGD(0.1, momentum=0.5), loss=losses.CustomLoss(function=margin_loss),
                          metrics=[metrics.CustomMetric(function=log_ratio), top_margin])
    ref, got = train_both(backend.name, build, compile_kwargs, (x, y),
                          dict(batch_size=BATCH, epochs=2, sample_weight=weights, validation_data=(x[:20], y[:20])),
                          dtype=dtype)
    assert set(ref["history"]) == {"loss", "log_ratio", "top_margin", "val_loss", "val_log_ratio", "val_top_margin"}
    if dtype == "float64":
        assert_same_training(ref, got)
        return
    assert got["weights"][0].dtype == np.float32
    # float32: the engines round differently; the conformance kit's float32 metric tolerance (rtol 1e-6).
    for key in ref["history"]:
        np.testing.assert_allclose(got["history"][key], ref["history"][key], rtol=1e-6, atol=0, err_msg=key)


# ---- models combining what the kit's per-component cases check one at a time -------------------


def test_penalties_with_sample_weights_and_a_validation_split_agree_with_numpy(backend):
    """Every regularizer and constraint at once, beside sample weights: the penalties must read the
    weights, never the sample weights beside them."""

    def build():
        return Sequential([
            Dense(6, input_dim=FEATURES, activation="relu", kernel_regularizer=regularizers.L1(0.01),
                  bias_regularizer=regularizers.L2(0.02), activity_regularizer=regularizers.L1L2(0.01, 0.02),
                  kernel_constraint=constraints.MaxNorm(0.5), bias_constraint=constraints.NonNeg()),
            Dense(5, activation="tanh", kernel_regularizer=regularizers.L1L2(0.01, 0.01),
                  kernel_constraint=constraints.UnitNorm(axis=1),
                  bias_constraint=constraints.MinMaxNorm(0.1, 0.3, rate=0.5)),
            Dense(3, activity_regularizer=regularizers.L2(0.05)),
        ])

    x, y = regression_data()
    weights = np.random.default_rng(4).uniform(0, 2, size=N)
    ref, got = train_both(backend.name, build, dict(optimizer=optimizers.SGD(learning_rate=0.2, momentum=0.5),
                                                    loss="mse"),
                          (x, y), dict(batch_size=BATCH, epochs=2, validation_split=0.2, sample_weight=weights))
    assert_same_training(ref, got)


def test_rank3_dense_softmax_on_axis_1_and_a_noise_shape_agree_with_numpy(backend):
    def build():
        return Sequential([Dense(4, input_shape=(2, FEATURES), activation=activations.Softmax(axis=1)),
                           Dropout(0.25, noise_shape=(None, 1, 4)), Dense(3)])

    x, y = regression_data(rank3=True)
    ref, got = train_both(backend.name, build, dict(optimizer="adam", loss="mae", metrics=["mse"]), (x, y),
                          dict(batch_size=BATCH, epochs=2))
    assert_same_training(ref, got)


# ---- inputs and options the conformance kit's cases do not reach, probed as the kit probes -------
#
# Each entry: a function (backend, dtype) -> named observations, the dtype, and the tolerance. The
# observations are those of the kit's probes: an activation's (or a user function's) values and
# vector-Jacobian product; a loss's value and gradient at given predictions; a metric's result from
# evaluate() and from a training epoch, given predictions. Each could become a kit case.


def _activation(spec, grid=None):
    grid = activation_grid() if grid is None else grid

    def run(backend_name, dtype):
        return activation_probe(spec, grid, activation_upstream(grid.shape), backend=backend_name, dtype=dtype)

    return run


def _loss(spec, p, y, sample_weight=None):
    """The loss's value and gradient at exactly the predictions p, rank 2 or 3: one-hot inputs pick
    the rows of a Dense kernel holding p's rows."""
    p, y = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.float64)
    rows = p.reshape(-1, p.shape[-1])
    x = np.eye(len(rows)).reshape(*p.shape[:-1], len(rows))

    def run(backend_name, dtype):
        model = compiled_model([Dense(p.shape[-1], input_shape=x.shape[1:])], backend=backend_name, dtype=dtype,
                               optimizer=optimizers.SGD(learning_rate=GRADIENT_PROBE_RATE), loss=spec,
                               weights=[rows, np.zeros(p.shape[-1])])
        value, grads = gradient_probe(model, x, y, sample_weight=sample_weight)
        return {"value": np.asarray(value), "gradient": grads[0]}

    return run


def _metric(spec, p, y, sample_weight=None, loss="mse"):
    """The metric at exactly the predictions p (samples, units), from evaluate() and from an epoch
    of training at learning rate 0, in batches of 5; with sample weights, weighted and not."""
    p = np.asarray(p, dtype=np.float64)
    samples, units = p.shape

    def run(backend_name, dtype):
        model = compiled_model([Dense(units, input_dim=samples)], backend=backend_name, dtype=dtype,
                               optimizer=optimizers.SGD(learning_rate=0.0), loss=loss, metrics=[spec],
                               weighted_metrics=None if sample_weight is None else [spec],
                               weights=[p, np.zeros(units)])
        x = identity_inputs(samples)
        logs = model.evaluate(x, y, batch_size=5, sample_weight=sample_weight, verbose=0, return_dict=True)
        history = model.fit(x, y, batch_size=5, epochs=1, shuffle=False, sample_weight=sample_weight, verbose=0)
        found = {f"evaluate.{key}": np.asarray(value) for key, value in logs.items() if key != "loss"}
        found.update({f"train.{key}": np.asarray(values[0]) for key, values in history.history.items()
                      if key != "loss"})
        return found

    return run


def _user_function(function):
    return _activation(activations.CustomActivation(function=function), OP_GRID)


# Ties (1, 1), (-1, -1) and a row of 0.75s, one zero and two zeros in a row, values on clip's ends.
OP_GRID = np.array([[-1.0, 0.0, 1.0, 2.0], [1.0, 1.0, 0.5, -3.0], [0.0, -1.0, 0.0, -1.0], [0.75, 0.75, 0.75, 0.75]])
VECTOR = np.array([0.5, -1.0, 0.25, 2.0])
MIX = np.arange(20.0).reshape(5, 4) % 7 / 8.0 - 0.375
# Repeated indices (their gradients add up) and negative ones, counted from the end as NumPy counts them.
INDICES = np.array([[3, 0, 0, -1], [1, 1, 2, 0], [-4, 2, 3, 3], [0, 0, 0, -2]])


def _softmax_rows(rng, samples, units):
    z = rng.normal(size=(samples, units))
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _on_thresholds():
    """Binary scores with rows exactly at the default threshold 0.5 and at 0, 1 and 1/6 (thresholds
    of AUC(num_thresholds=7) and Precision(thresholds=0.0)), labels and sample weights."""
    rng = np.random.RandomState(12)
    p = rng.uniform(size=(20, 3))
    p[:4] = 0.5
    p[4:8] = [0.0, 1.0, 1 / 6]
    return p, rng.randint(2, size=(20, 3)).astype(np.float64), rng.uniform(0, 2, size=20)


def _on_float32_thresholds():
    """Scores exactly on each float32 threshold of AUC(num_thresholds=11) and a float32 step either
    side of it: comparing them with the float64 thresholds would count them differently."""
    t32 = metrics.AUC(num_thresholds=11).thresholds().astype(np.float32)
    p = np.concatenate([t32, np.nextafter(t32, np.float32(-1)), np.nextafter(t32, np.float32(2))]).reshape(-1, 1)
    return p.astype(np.float64), (np.arange(len(p)) % 2).astype(np.float64).reshape(-1, 1)


def _sparse_column():
    rng = np.random.RandomState(8)
    return _softmax_rows(rng, 12, 4), rng.randint(4, size=(12, 1)).astype(np.float64)


E = losses.EPSILON
STRICT = F64
FLOAT32_METRIC = dict(rtol=1e-6, atol=0)  # the conformance kit's float32 metric tolerance

UNREACHED = {
    # Options the kit's activation cases set one at a time, or not at all.
    "activation.relu_all_options": _activation(activations.ReLU(negative_slope=0.2, max_value=4.0, threshold=0.5)),
    "activation.relu_slope_and_cap_at_6": _activation(activations.ReLU(negative_slope=0.3, max_value=6.0)),
    "activation.gelu_exact": _activation(activations.GELU(approximate=False)),
    "activation.softmax_axis_0": _activation(activations.Softmax(axis=0)),
    "activation.log_softmax_axis_0": _activation(activations.LogSoftmax(axis=0)),
    # Labels and predictions outside the kit's input domains.
    "loss.hinge_pm1_labels": _loss(losses.Hinge(), [[1.0, -1.0, 0.3], [-1.0, 1.0, 2.0]],
                                   [[1.0, -1.0, 1.0], [-1.0, -1.0, 1.0]]),
    "loss.hinge_real_labels_pass_unchanged": _loss(losses.Hinge(), [[1.0, 0.5, -1.0], [0.2, -2.0, 1.0]],
                                                   [[1.0, 0.0, -1.0], [0.5, 0.0, 1.0]]),
    "loss.squared_hinge_pm1_labels": _loss(losses.SquaredHinge(), [[1.0, -1.0, 0.3], [0.5, 1.0, -0.2]],
                                           [[1.0, -1.0, -1.0], [1.0, 1.0, -1.0]]),
    "loss.kl_divergence_beyond_0_and_1": _loss(losses.KLDivergence(), [[E, 1.0, 1.5, 0.2], [0.0, -0.5, E / 2, 0.3]],
                                               [[0.2, 0.3, 0.5, 0.0], [1.0, 0.0, 0.0, 0.0]]),
    "loss.mape_zero_labels": _loss(losses.MeanAbsolutePercentageError(), [[0.0, 2.0, 0.5], [0.3, 0.5, -1.0]],
                                   [[0.0, 2.0, -1.0], [0.0, 0.5, 3.0]]),
    "loss.log_cosh_large_differences": _loss(losses.LogCosh(), [[0.0, 31.0, 0.0]], [[0.0, 1.0, -30.0]]),
    "loss.cosine_similarity_zero_and_tiny_norms": _loss(losses.CosineSimilarity(), [[0.0, 0.0], [1e-8, 2e-8],
                                                                                    [0.4, -0.3]],
                                                        [[1.0, 2.0], [0.5, -1.0], [3.0, 1.0]]),
    "loss.cosine_similarity_axis_1_rank_3": _loss(losses.CosineSimilarity(axis=1), [[[0.5, 0.0], [-1.0, 0.0]]],
                                                  [[[1.0, 0.0], [2.0, 1.0]]]),
    "loss.binary_crossentropy_zero_logits": _loss(losses.BinaryCrossentropy(from_logits=True),
                                                  [[0.0, 0.0, 2.0, -2.0]], [[1.0, 0.0, 1.0, 0.0]]),
    "loss.sparse_categorical_crossentropy_label_column": _loss(losses.SparseCategoricalCrossentropy(),
                                                               *_sparse_column()),
    # Keras divides "no nan": a batch whose weights are all 0 has loss 0 and gradient 0.
    "loss.mean_with_sample_weight_all_weights_zero": _loss(
        losses.BinaryCrossentropy(reduction="mean_with_sample_weight"), [[0.2, 0.7], [0.9, 0.4], [0.5, 0.5]],
        [[0.0, 1.0], [1.0, 1.0], [0.0, 0.0]], sample_weight=np.zeros(3)),
    # Scores exactly on thresholds, options combined, a summation method the kit leaves out.
    **{f"metric.{label}_on_thresholds": _metric(spec, *_on_thresholds())
       for label, spec in (("precision", metrics.Precision()), ("recall_class_2", metrics.Recall(class_id=2)),
                           ("precision_threshold_0", metrics.Precision(thresholds=0.0)),
                           ("precision_threshold_and_class", metrics.Precision(thresholds=0.3, class_id=1)),
                           ("recall_threshold_and_class", metrics.Recall(thresholds=0.7, class_id=0)),
                           ("auc_7", metrics.AUC(num_thresholds=7)),
                           ("auc_minoring", metrics.AUC(summation_method="minoring")),
                           ("auc_pr_minoring", metrics.AUC(curve="PR", summation_method="minoring")))},
    "metric.sparse_accuracies_label_column": _metric(metrics.SparseCategoricalAccuracy(), *_sparse_column(),
                                                     loss="sparse_categorical_crossentropy"),
    "metric.sparse_top_2_label_column": _metric(metrics.SparseTopKCategoricalAccuracy(k=2), *_sparse_column(),
                                                loss="sparse_categorical_crossentropy"),
    # User functions at the ties, zeros and argument kinds the kit's op cases (one op each) leave out.
    "op.power_negative_and_zero_bases": _user_function(
        lambda x: ops.power(x, 3) + ops.power(x, 2.0) + ops.power(x - 2.0, 2.0 + 0.0 * x)),
    "op.power_number_base": _user_function(lambda x: ops.power(2.0, x)),
    "op.softplus_far_out": _user_function(lambda x: ops.softplus(40.0 * x)),
    "op.maximum_minimum_number_first": _user_function(lambda x: ops.maximum(1.0, x) + ops.minimum(-1.0, x)),
    "op.where_number_branches": _user_function(
        lambda x: ops.where(ops.greater(x, 0.5), 1.0, x) + ops.where(ops.less_equal(x, -1.0), ops.exp(x), 0.0)),
    "op.prod_with_zeros": _user_function(lambda x: x * ops.prod(x, axis=-1, keepdims=True) + ops.prod(x, axis=0)),
    "op.mean_of_a_comparison_and_sum_over_axes": _user_function(
        lambda x: x * ops.mean(ops.greater(x, 0.0)) + x * ops.sum(x, axis=(0, 1), keepdims=True)
        + ops.mean(x * x, axis=0, keepdims=True)),
    "op.cast_round_trips": _user_function(
        lambda x: ops.cast(ops.cast(x * 1.1, "float32"), "float64") + ops.cast(ops.cast(x, "int64"), "float64") * x
        + ops.cast(ops.cast(x, "bool"), "float64")),
    "op.matmul_with_vectors": _user_function(
        lambda x: 0.125 * x * ops.matmul(ops.reshape(x, (-1,)), ops.reshape(x, (-1,)))
        + ops.expand_dims(ops.matmul(x, VECTOR), -1) * x + ops.matmul(ops.convert_to_tensor(VECTOR), x)),
    "op.expand_dims_axes_and_squeeze_all": _user_function(
        lambda x: ops.squeeze(ops.expand_dims(x, (0, -1))) * x
        + ops.reshape(ops.squeeze(ops.expand_dims(ops.reshape(x, (16,)), 1), axis=1), (4, 4))),
    "op.take_along_axis_repeated_and_negative_indices": _user_function(
        lambda x: ops.take_along_axis(x, INDICES, axis=-1) + ops.take_along_axis(x, INDICES, axis=0)),
    "op.concatenate_an_array_and_convert_lists": _user_function(
        lambda x: ops.matmul(ops.concatenate([x, np.ones((4, 1))], axis=-1), MIX)
        + ops.convert_to_tensor([1.0, 2.0, 3.0, 4.0]) * x
        + ops.convert_to_tensor(x, "float64") * ops.convert_to_tensor(np.float64(0.1))),
}


@functools.cache
def _reference(case, dtype):
    return UNREACHED[case]("numpy", dtype)


def _assert_observations_agree(got, want, tolerance):
    assert got.keys() == want.keys()
    for key in want:
        assert np.all(np.isfinite(want[key])), key
        np.testing.assert_allclose(got[key], want[key], err_msg=key, **tolerance)


@pytest.mark.parametrize("case", sorted(UNREACHED))
def test_what_the_kit_does_not_reach_agrees_with_numpy(backend, case):
    _assert_observations_agree(UNREACHED[case](backend.name, "float64"), _reference(case, "float64"), STRICT)


def test_float32_scores_meet_the_float32_thresholds(backend):
    """AUC compares float32 scores with its thresholds rounded to float32, as the reference does."""
    from polynn_numpy import metrics as numpy_metrics

    p, y = _on_float32_thresholds()
    spec = metrics.AUC(num_thresholds=11)
    # The float64 thresholds would split these scores differently: the check has teeth.
    auc = numpy_metrics.IMPLEMENTATIONS["auc"]
    assert np.any(auc(spec, y, p, None) != auc(spec, y.astype(np.float32), p.astype(np.float32), None))
    probe = _metric(spec, p, y)
    _assert_observations_agree(probe(backend.name, "float32"), probe("numpy", "float32"), FLOAT32_METRIC)
