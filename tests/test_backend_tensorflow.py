"""The TensorFlow backend computes the NumPy reference's numbers: every step, option and entry point."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from polynn.activations import Softmax  # noqa: E402
from polynn import constraints, losses, metrics, optimizers, regularizers  # noqa: E402
from polynn.callbacks import Callback  # noqa: E402
from polynn.layers import Activation, Dense, Dropout, Input  # noqa: E402
from polynn.models import Sequential  # noqa: E402

# float64 runs agree to rounding: measured deviations are below 1e-15 relative.
F64 = dict(rtol=1e-9, atol=1e-9)


# ---- helpers ---------------------------------------------------------------------------


def blog_data(n_train=10000, n_other=2500):
    """The blog example's data: the same draws as examples/blog.py, optionally truncated."""
    np.random.seed(1000)
    x = np.random.random((10000, 10))
    y = np.random.randint(2, size=(10000, 1))
    x_val = np.random.random((2500, 10))
    y_val = np.random.randint(2, size=(2500, 1))
    x_test = np.random.random((2500, 10))
    y_test = np.random.randint(2, size=(2500, 1))
    return (x[:n_train], y[:n_train], x_val[:n_other], y_val[:n_other], x_test[:n_other], y_test[:n_other])


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
    """Wrap the model's runtime so every training step's loss is recorded as it is computed."""
    runtime = model._compiled.runtime
    recorded = []
    train_steps = runtime.train_steps

    def recording(*args, **kwargs):
        result = train_steps(*args, **kwargs)
        recorded.extend(np.asarray(result.losses, dtype=np.float64))
        return result

    runtime.train_steps = recording
    return recorded


def both(build, compile_kwargs, fit_args, fit_kwargs=None, dtype="float64", seed=11):
    """Train the same model on NumPy and TensorFlow; per-step losses, history and final state of each."""
    runs = {}
    for backend in ("numpy", "tensorflow"):
        model = build()
        model.compile(backend=backend, dtype=dtype, seed=seed, **compile_kwargs)
        model.build(fit_args[0].shape[1:])
        model._runtime_for(fit_args[0].shape[1:], fit_args[1].shape[1:])
        steps = record_step_losses(model)
        history = model.fit(*fit_args, verbose=0, **(fit_kwargs or {}))
        runs[backend] = dict(model=model, steps=np.array(steps), history=history.history,
                             weights=model.get_weights(), state=model._compiled.runtime.get_optimizer_state())
    return runs["numpy"], runs["tensorflow"]


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


# ---- import and registration -------------------------------------------------------------


def test_import_polynn_does_not_import_tensorflow():
    code = ("import sys, polynn\nfrom polynn import plugins\nplugins.load()\n"
            "names = [e.name for e in plugins.backend_entries()]\n"
            "assert 'tensorflow' in names, names\n"
            "assert 'tensorflow' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_backend_is_registered_with_its_engine_and_devices():
    from polynn import plugins

    entry = next(e for e in plugins.backend_entries() if e.name == "tensorflow")
    assert (entry.engine, entry.install, entry.devices) == ("tensorflow", "polynn[tensorflow]", ("cpu", "gpu"))
    backend = plugins.get_backend("tensorflow")
    numpy_backend = plugins.get_backend("numpy")
    # Every kind but metrics matches the reference, less the user-function wrappers (custom_*).
    for kind, table in numpy_backend.implementations.items():
        if kind != "metric":
            assert {n for n in table if not n.startswith("custom_")} <= set(backend.implementations[kind]), kind
    assert {"exact_accuracy", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
            "mean_squared_error", "mean_absolute_error"} <= set(backend.implementations["metric"])
    assert backend.engine_version() == tf.__version__


# ---- the blog example ----------------------------------------------------------------------


def run_blog(backend, dtype, dropout, n_train, n_other, epochs=2):
    x, y, x_val, y_val, x_test, y_test = blog_data(n_train, n_other)
    model = blog_model(dropout)
    model.compile(optimizer="Adam", loss="binary_crossentropy", metrics=["accuracy"],
                  backend=backend, dtype=dtype, seed=1000)
    steps = record_step_losses(model)
    history = model.fit(x, y, epochs=epochs, validation_data=(x_val, y_val), verbose=0)
    return dict(steps=np.array(steps), history=history.history, weights=model.get_weights(),
                state=model._compiled.runtime.get_optimizer_state(),
                predictions=model.predict(x_test, verbose=0),
                evaluation=model.evaluate(x_test, y_test, verbose=0))


def test_blog_example_float64_agrees_with_numpy_at_every_step():
    ref = run_blog("numpy", "float64", False, 10000, 2500)
    got = run_blog("tensorflow", "float64", False, 10000, 2500)
    assert len(got["steps"]) == 2 * 313
    assert_same_training(ref, got)
    np.testing.assert_allclose(got["predictions"], ref["predictions"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got["evaluation"], ref["evaluation"], **F64)


def test_blog_example_float64_with_dropout_agrees_with_numpy():
    ref = run_blog("numpy", "float64", True, 1000, 300)
    got = run_blog("tensorflow", "float64", True, 1000, 300)
    assert_same_training(ref, got)
    np.testing.assert_allclose(got["predictions"], ref["predictions"], rtol=0, atol=1e-9)


@pytest.mark.parametrize("dropout", [False, True])
def test_blog_example_float32_agrees_with_numpy(dropout):
    ref = run_blog("numpy", "float32", dropout, 2000, 500)
    got = run_blog("tensorflow", "float32", dropout, 2000, 500)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(got["history"][key], ref["history"][key], rtol=1e-4, atol=0)
    assert got["predictions"].dtype == np.float32
    np.testing.assert_allclose(got["predictions"], ref["predictions"], rtol=0, atol=2e-2)


def test_blog_script_prints_the_keras_log(capsys):
    sys.path.insert(0, "examples")
    try:
        import blog
    finally:
        sys.path.pop(0)
    blog.main(["--backend", "tensorflow", "--epochs", "1", "--seed", "3"])
    out = capsys.readouterr().out
    assert "Epoch 1/1" in out and "313/313" in out and "val_loss" in out
    assert "(backend tensorflow, float32)" in out


# ---- every loss, optimizer, regularizer, constraint and metric, step by step ------------------

N, FEATURES, BATCH = 70, 5, 16  # four full batches and a short one, so both block shapes run


def _regression_data(units=3, rank3=False):
    rng = np.random.default_rng(5)
    shape = (N, 2, FEATURES) if rank3 else (N, FEATURES)
    x = rng.normal(size=shape)
    y = rng.normal(size=(*shape[:-1], units))
    return x, y


def _binary_data(units=2):
    rng = np.random.default_rng(6)
    return rng.normal(size=(N, FEATURES)), rng.integers(0, 2, size=(N, units)).astype(np.float64)


def _class_data(classes=4, sparse=False, label_shape=(1,)):
    rng = np.random.default_rng(7)
    labels = rng.integers(0, classes, size=N)
    if sparse:
        return rng.normal(size=(N, FEATURES)), labels.reshape((N, *label_shape)).astype(np.float64)
    return rng.normal(size=(N, FEATURES)), np.eye(classes)[labels]


def _mlp(units, activation, hidden="tanh"):
    return lambda: Sequential([Dense(6, input_dim=FEATURES, activation=hidden), Dense(units, activation=activation)])


LOSS_CASES = {
    "mse": (losses.MeanSquaredError(), "linear", lambda: _regression_data()),
    "mae": (losses.MeanAbsoluteError(), "linear", lambda: _regression_data()),
    "bce": (losses.BinaryCrossentropy(), "sigmoid", lambda: _binary_data()),
    "bce_logits": (losses.BinaryCrossentropy(from_logits=True), "linear", lambda: _binary_data()),
    "bce_smoothing": (losses.BinaryCrossentropy(label_smoothing=0.1), "sigmoid", lambda: _binary_data()),
    "bce_logits_smoothing_axis": (losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.2, axis=-1),
                                  "linear", lambda: _binary_data()),
    "cce": (losses.CategoricalCrossentropy(), "softmax", lambda: _class_data()),
    "cce_logits": (losses.CategoricalCrossentropy(from_logits=True), "linear", lambda: _class_data()),
    "cce_smoothing": (losses.CategoricalCrossentropy(label_smoothing=0.2), "softmax", lambda: _class_data()),
    "scce": (losses.SparseCategoricalCrossentropy(), "softmax", lambda: _class_data(sparse=True)),
    "scce_logits_flat_labels": (losses.SparseCategoricalCrossentropy(from_logits=True), "linear",
                                lambda: _class_data(sparse=True, label_shape=())),
    "mape": (losses.get("mean_absolute_percentage_error"), "linear", lambda: _regression_data()),
    "msle": (losses.get("mean_squared_logarithmic_error"), "relu", lambda: _binary_data()),
    "huber": (losses.get({"class_name": "huber", "config": {"delta": 0.5}}), "linear", lambda: _regression_data()),
    "log_cosh": (losses.get("log_cosh"), "linear", lambda: _regression_data()),
    "hinge": (losses.get("hinge"), "tanh", lambda: _binary_data()),
    "squared_hinge": (losses.get("squared_hinge"), "linear", lambda: _regression_data()),
    "categorical_hinge": (losses.get("categorical_hinge"), "linear", lambda: _class_data()),
    "kl_divergence": (losses.get("kl_divergence"), "softmax", lambda: _class_data()),
    "poisson": (losses.get("poisson"), "softplus", lambda: _binary_data()),
    "cosine_similarity": (losses.get("cosine_similarity"), "linear", lambda: _regression_data()),
}


@pytest.mark.parametrize("case", sorted(LOSS_CASES))
def test_each_loss_agrees_with_numpy(case):
    loss, activation, data = LOSS_CASES[case]
    x, y = data()
    units = 4 if loss.sparse_labels else y.shape[-1]
    ref, got = both(_mlp(units, activation), dict(optimizer="sgd", loss=loss), (x, y),
                    dict(batch_size=BATCH, epochs=2))
    assert_same_training(ref, got)


@pytest.mark.parametrize("reduction", [r for r in losses.REDUCTIONS if r != "none"])  # "none" cannot train
def test_each_reduction_with_sample_weights_agrees_with_numpy(reduction):
    x, y = _binary_data()
    weights = np.random.default_rng(8).uniform(0, 2, size=N)
    weights[:BATCH] = 0.0  # a whole batch of zero weights: no 0/0 under mean_with_sample_weight
    ref, got = both(_mlp(2, "sigmoid"), dict(optimizer="adam", loss=losses.BinaryCrossentropy(reduction=reduction),
                                             metrics=["accuracy", "mse"]),
                    (x, y), dict(batch_size=BATCH, epochs=2, sample_weight=weights, shuffle=False))
    assert_same_training(ref, got)


OPTIMIZER_CASES = {
    "sgd": optimizers.SGD(learning_rate=0.1),
    "sgd_momentum": optimizers.SGD(learning_rate=0.1, momentum=0.9),
    "sgd_nesterov": optimizers.SGD(learning_rate=0.1, momentum=0.8, nesterov=True),
    "adam": optimizers.Adam(learning_rate=0.01),
    "adam_amsgrad": optimizers.Adam(learning_rate=0.01, amsgrad=True),
    "rmsprop": optimizers.RMSprop(learning_rate=0.01),
    "rmsprop_momentum_centered": optimizers.RMSprop(learning_rate=0.01, momentum=0.5, centered=True),
    "rmsprop_centered": optimizers.RMSprop(learning_rate=0.01, centered=True),
    "clipvalue": optimizers.SGD(learning_rate=0.1, momentum=0.5, clipvalue=0.05),
    "clipnorm": optimizers.Adam(learning_rate=0.01, clipnorm=0.1),
    "global_clipnorm": optimizers.RMSprop(learning_rate=0.01, global_clipnorm=0.2),
    "weight_decay": optimizers.Adam(learning_rate=0.01, weight_decay=0.05),
    "sgd_weight_decay": optimizers.SGD(learning_rate=0.1, weight_decay=0.1),
    "adamw": optimizers.AdamW(learning_rate=0.01),
    "adagrad": optimizers.Adagrad(learning_rate=0.05),
    "adadelta": optimizers.Adadelta(learning_rate=1.0),
    "adamax": optimizers.Adamax(learning_rate=0.01),
    "nadam": optimizers.Nadam(learning_rate=0.01),
}


@pytest.mark.parametrize("case", sorted(OPTIMIZER_CASES))
def test_each_optimizer_option_agrees_with_numpy(case):
    x, y = _regression_data()
    ref, got = both(_mlp(3, "linear"), dict(optimizer=OPTIMIZER_CASES[case], loss="mse"), (x, y),
                    dict(batch_size=BATCH, epochs=2))
    assert_same_training(ref, got)


def test_regularizers_and_constraints_agree_with_numpy():
    def build():
        return Sequential([
            Dense(6, input_dim=FEATURES, activation="relu", kernel_regularizer=regularizers.L1(0.01),
                  bias_regularizer=regularizers.L2(0.02), activity_regularizer=regularizers.L1L2(0.01, 0.02),
                  kernel_constraint=constraints.MaxNorm(0.5), bias_constraint=constraints.NonNeg()),
            Dense(5, activation="tanh", kernel_regularizer=regularizers.L1L2(0.01, 0.01),
                  kernel_constraint=constraints.UnitNorm(axis=1), bias_constraint=constraints.MinMaxNorm(0.1, 0.3, rate=0.5)),
            Dense(3, activity_regularizer=regularizers.L2(0.05)),
        ])

    x, y = _regression_data()
    ref, got = both(build, dict(optimizer=optimizers.SGD(learning_rate=0.2, momentum=0.5), loss="mse"), (x, y),
                    dict(batch_size=BATCH, epochs=2, validation_split=0.2))
    assert_same_training(ref, got)


def test_every_metric_and_activation_agrees_with_numpy():
    def build():
        return Sequential([Input((FEATURES,)), Dense(6, activation="relu"), Activation("tanh"),
                           Dense(4), Activation("softmax"), Dropout(0.3), Dense(4, activation="sigmoid")])

    x, y = _class_data()
    metric_list = ["accuracy", metrics.BinaryAccuracy(threshold=0.4), metrics.Accuracy(), "mse", "mae",
                   metrics.CategoricalAccuracy()]
    ref, got = both(build, dict(optimizer="rmsprop", loss="categorical_crossentropy", metrics=metric_list),
                    (x, y), dict(batch_size=BATCH, epochs=2, validation_data=(x[:20], y[:20])))
    assert_same_training(ref, got)


def test_sparse_accuracy_and_softmax_axis_agree_with_numpy():
    def build():
        return Sequential([Dense(4, input_dim=FEATURES, activation="softmax"),
                           Dense(4, activation=Softmax(axis=-1)), Dense(4)])

    x, y = _class_data(sparse=True)
    ref, got = both(build, dict(optimizer="adam", loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                                metrics=["accuracy", metrics.SparseCategoricalAccuracy()]),
                    (x, y), dict(batch_size=BATCH, epochs=2))
    assert_same_training(ref, got)


def test_dense_on_rank3_inputs_and_softmax_on_another_axis_agree_with_numpy():
    def build():
        return Sequential([Dense(4, input_shape=(2, FEATURES), activation=Softmax(axis=1)),
                           Dropout(0.25, noise_shape=(None, 1, 4)), Dense(3)])

    x, y = _regression_data(rank3=True)
    ref, got = both(build, dict(optimizer="adam", loss="mae", metrics=["mse"]), (x, y),
                    dict(batch_size=BATCH, epochs=2))
    assert_same_training(ref, got)


def test_one_step_per_call_agrees_with_numpy():
    """A batch-level callback makes fit() call the backend once per step (blocks of shape (1, batch))."""

    class Logs(Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_train_batch_end(self, batch, logs=None):
            self.seen.append(dict(logs))

    x, y, *_ = blog_data(200, 10)
    seen = {}
    for backend in ("numpy", "tensorflow"):
        model = blog_model(dropout=True)
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"], backend=backend,
                      dtype="float64", seed=4)
        callback = Logs()
        model.fit(x, y, epochs=2, batch_size=BATCH, verbose=0, callbacks=[callback])
        seen[backend] = callback.seen
    assert len(seen["tensorflow"]) == len(seen["numpy"]) == 2 * 13
    for got, ref in zip(seen["tensorflow"], seen["numpy"]):
        assert got.keys() == ref.keys()
        for key in ref:
            np.testing.assert_allclose(got[key], ref[key], **F64)


# ---- evaluate, predict, state ------------------------------------------------------------


def test_evaluate_and_predict_agree_with_numpy():
    x, y, _, _, x_test, y_test = blog_data(300, 123)
    weights = np.random.default_rng(1).uniform(0, 1, size=len(x_test))
    out = {}
    for backend in ("numpy", "tensorflow"):
        model = blog_model(dropout=True)
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy", "mae"],
                      backend=backend, dtype="float64", seed=9)
        model.fit(x, y, epochs=1, verbose=0)
        out[backend] = (model.evaluate(x_test, y_test, batch_size=20, verbose=0, return_dict=True),
                        model.evaluate(x_test, y_test, batch_size=50, sample_weight=weights, verbose=0),
                        model.predict(x_test, batch_size=17, verbose=0),
                        model.predict(x_test[:0], verbose=0))
    (ev, ev_w, pred, empty), (ref_ev, ref_ev_w, ref_pred, ref_empty) = out["tensorflow"], out["numpy"]
    assert ev.keys() == ref_ev.keys()
    for key in ref_ev:
        np.testing.assert_allclose(ev[key], ref_ev[key], **F64)
    np.testing.assert_allclose(ev_w, ref_ev_w, **F64)
    assert pred.shape == ref_pred.shape == (123, 1) and pred.dtype == np.float64
    np.testing.assert_allclose(pred, ref_pred, rtol=0, atol=1e-9)
    assert empty.shape == ref_empty.shape == (0, 1)


def test_weights_and_optimizer_state_round_trip_and_drive_the_next_steps():
    x, y = _regression_data()
    rng = np.random.default_rng(2)
    trained = {}
    for backend in ("numpy", "tensorflow"):
        model = _mlp(3, "linear")()
        model.compile(optimizer=optimizers.RMSprop(momentum=0.5, centered=True), loss="mse",
                      backend=backend, dtype="float64", seed=1)
        runtime = model._compiled.runtime
        weights = [rng.normal(size=w.shape) for w in model.get_weights()]
        # Slots velocity, momentum, average_gradient; velocity > average**2 keeps the centered root real.
        state = [[rng.uniform(1, 2, size=w.shape), rng.normal(scale=0.01, size=w.shape),
                  rng.uniform(-0.5, 0.5, size=w.shape)] for w in weights]
        rng = np.random.default_rng(2)  # the same draws for the next backend
        model.set_weights(weights)
        runtime.set_optimizer_state(state)
        for got, want in zip(model.get_weights(), weights):
            np.testing.assert_array_equal(got, want)
        for got_slots, want_slots in zip(runtime.get_optimizer_state(), state):
            assert len(got_slots) == 3
            for got, want in zip(got_slots, want_slots):
                np.testing.assert_array_equal(got, want)
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
        trained[backend] = (model.get_weights(), runtime.get_optimizer_state())
    for got, ref in zip(trained["tensorflow"][0], trained["numpy"][0]):
        assert np.all(np.isfinite(ref))
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)
    for got_slots, ref_slots in zip(trained["tensorflow"][1], trained["numpy"][1]):
        for got, ref in zip(got_slots, ref_slots):
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)


def test_a_whole_fit_traces_each_compiled_function_once():
    """Full blocks and the epoch's short last block share one trace, so later epochs never retrace."""
    x, y, x_val, y_val, _, _ = blog_data(1000, 100)
    model = blog_model(dropout=True)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"], backend="tensorflow", seed=2)
    model.fit(x, y, epochs=3, batch_size=48, validation_data=(x_val, y_val), verbose=0)
    model.fit(x, y, epochs=1, batch_size=64, validation_data=(x_val, y_val), verbose=0)
    functions = model._compiled.runtime._functions
    assert {key[0] for key in functions} == {"train", "test"}
    assert all(f.experimental_get_tracing_count() == 1 for f in functions.values())


def test_unknown_device_is_refused():
    from polynn.errors import InvalidArgumentError

    model = _mlp(3, "linear")()
    with pytest.raises(InvalidArgumentError, match="device='tpu'.*'cpu' or 'gpu'"):
        model.compile(loss="mse", backend="tensorflow", device="tpu")


@pytest.mark.parametrize("from_logits", [False, True])
def test_gradients_at_exactly_zero_preactivation_agree_with_numpy(from_logits):
    """Zero kernels and biases put every sigmoid (or logit) at exactly 0, where an abs-based
    formula would differentiate to 0 instead of sigmoid'(0) = 0.25."""

    def build():
        return Sequential([Dense(2, input_dim=FEATURES, kernel_initializer="zeros",
                                 activation="linear" if from_logits else "sigmoid")])

    x, y = _binary_data()
    ref, got = both(build, dict(optimizer="adam", loss=losses.BinaryCrossentropy(from_logits=from_logits)), (x, y),
                    dict(batch_size=BATCH, epochs=1))
    assert_same_training(ref, got)


ACTIVATION_CASES = {
    "relu_options": dict(name="relu", negative_slope=0.1, max_value=0.8, threshold=0.05),
    "relu_max_value": dict(name="relu", max_value=0.3),
    "log_softmax": dict(name="log_softmax"),
    "elu": dict(name="elu", alpha=0.5),
    "selu": dict(name="selu"),
    "softplus": dict(name="softplus"),
    "softsign": dict(name="softsign"),
    "gelu": dict(name="gelu"),
    "gelu_exact": dict(name="gelu", approximate=False),
    "silu": dict(name="silu"),
    "leaky_relu": dict(name="leaky_relu"),
    "relu6": dict(name="relu6"),
    "exponential": dict(name="exponential"),
    "hard_sigmoid": dict(name="hard_sigmoid"),
    "hard_silu": dict(name="hard_silu"),
    "mish": dict(name="mish"),
}


@pytest.mark.parametrize("case", sorted(ACTIVATION_CASES))
@pytest.mark.parametrize("zero_start", [False, True], ids=["random", "zero"])
def test_each_activation_agrees_with_numpy(case, zero_start):
    """zero_start puts every pre-activation at exactly 0 on the first step: the kink of most of them."""
    from polynn import activations

    options = dict(ACTIVATION_CASES[case])
    activation = activations.get({"class_name": options.pop("name"), "config": options})

    def build():
        initializer = "zeros" if zero_start else "glorot_uniform"
        return Sequential([Dense(6, input_dim=FEATURES, activation=activation, kernel_initializer=initializer),
                           Dense(3)])

    x, y = _regression_data()
    ref, got = both(build, dict(optimizer="adam", loss="mse"), (x, y), dict(batch_size=BATCH, epochs=1))
    assert_same_training(ref, got)
