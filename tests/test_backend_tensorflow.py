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
    # Every component of every kind the reference computes, user-function wrappers (custom_*) included:
    # TensorFlow's own override or the shared implementation written on polynn.ops.
    for kind, table in numpy_backend.implementations.items():
        missing = {name for name in table if backend.implementation(kind, name) is None}
        assert missing == set(), (kind, missing)
    assert backend.engine_version() == tf.__version__


# ---- the blog example ----------------------------------------------------------------------


def run_blog(backend, dtype, dropout, n_train, n_other, epochs=2, loss="binary_crossentropy"):
    x, y, x_val, y_val, x_test, y_test = blog_data(n_train, n_other)
    model = blog_model(dropout)
    model.compile(optimizer="Adam", loss=loss, metrics=["accuracy"], backend=backend, dtype=dtype, seed=1000)
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


FUSED_OPTIMIZERS = {
    **{case: OPTIMIZER_CASES[case] for case in ("adam", "adam_amsgrad", "clipnorm", "weight_decay", "adamw")},
    "adam_clipvalue": optimizers.Adam(learning_rate=0.01, clipvalue=0.05),
    "adam_global_clipnorm": optimizers.Adam(learning_rate=0.01, global_clipnorm=0.2),
    "max_norm": optimizers.Adam(learning_rate=0.05),
}
FUSED_CASES = sorted(FUSED_OPTIMIZERS)


def _trained_fused(case, dtype, fused, monkeypatch):
    """Weights and slots after a short fit, with the fused Adam update (FUSED_MIN_SIZE 0) or without."""
    from polynn_tensorflow import optimizers as tf_optimizers

    monkeypatch.setattr(tf_optimizers, "FUSED_MIN_SIZE", 0 if fused else float("inf"))
    x, y = _regression_data()
    if case == "max_norm":
        model = Sequential([Dense(6, input_dim=FEATURES, activation="tanh", kernel_constraint=constraints.MaxNorm(0.5)),
                            Dense(3, bias_constraint=constraints.NonNeg())])
    else:
        model = _mlp(3, "linear")()
    model.compile(optimizer=FUSED_OPTIMIZERS[case], loss="mse", backend="tensorflow", dtype=dtype, seed=11)
    model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0)
    runtime = model._compiled.runtime
    assert (runtime.fused_update is not None) == fused
    return model.get_weights() + [slot for slots in runtime.get_optimizer_state() for slot in slots]


@pytest.mark.parametrize("case", FUSED_CASES)
def test_fused_adam_gives_the_traced_bits_in_float64(case, monkeypatch):
    """ResourceApplyAdam, given alpha and beta powers of 0, computes the traced rule's operations in
    the traced rule's order: the same bits, clipping, weight decay and constraints included."""
    traced = _trained_fused(case, "float64", False, monkeypatch)
    fused = _trained_fused(case, "float64", True, monkeypatch)
    for want, got in zip(traced, fused, strict=True):
        assert want.tobytes() == got.tobytes()


@pytest.mark.parametrize("case", FUSED_CASES)
def test_fused_adam_agrees_in_float32(case, monkeypatch):
    """In float32 the kernel forms 1 - beta in float32 (1 - 0.999 is 1.3e-5 off the rounded double),
    so the fused update agrees to rounding (measured after 2 epochs: 6.9e-7 at most)."""
    traced = _trained_fused(case, "float32", False, monkeypatch)
    fused = _trained_fused(case, "float32", True, monkeypatch)
    for want, got in zip(traced, fused, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_fused_adam_is_chosen_for_large_weights_and_faithful_constants_only():
    """The fused kernel runs for Adam on a model with a weight of FUSED_MIN_SIZE elements or more,
    unless the kernel's float32 1 - beta_2 lies too far from the formula's (1.7e-4 at 0.9999)."""
    from polynn_tensorflow import optimizers as tf_optimizers

    side = int(tf_optimizers.FUSED_MIN_SIZE ** 0.5)
    for width, optimizer, dtype, fused in ((side, "adam", "float32", True), (side - 1, "adam", "float32", False),
                                           (side, "rmsprop", "float32", False),
                                           (side, optimizers.Adam(beta_2=0.9999), "float32", False),
                                           (side, optimizers.Adam(beta_2=0.9999), "float64", True)):
        model = Sequential([Dense(width, input_dim=side), Dense(1)])
        model.compile(optimizer=optimizer, loss="mse", backend="tensorflow", dtype=dtype)
        assert (model._compiled.runtime.fused_update is not None) == fused, (width, optimizer, dtype)


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
    # Sample weights too: the penalties must read the weights, never the sample weights beside them.
    weights = np.random.default_rng(4).uniform(0, 2, size=N)
    ref, got = both(build, dict(optimizer=optimizers.SGD(learning_rate=0.2, momentum=0.5), loss="mse"), (x, y),
                    dict(batch_size=BATCH, epochs=2, validation_split=0.2, sample_weight=weights))
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


# ---- the other metrics: top-k, RMSE, MAPE, cross-entropies, precision, recall, AUC --------------


METRIC_CASES = {
    "classes": (4, "softmax", "categorical_crossentropy", lambda: _class_data(), [
        metrics.TopKCategoricalAccuracy(k=2), metrics.RootMeanSquaredError(),
        metrics.CategoricalCrossentropy(label_smoothing=0.1), metrics.CategoricalCrossentropy(from_logits=True),
        metrics.Precision(class_id=2), metrics.Recall(thresholds=0.2), metrics.AUC(num_thresholds=13),
        metrics.AUC(curve="PR"), metrics.AUC(curve="PR", summation_method="minoring"),
        metrics.AUC(summation_method="majoring")]),
    "sparse": (4, "softmax", "sparse_categorical_crossentropy", lambda: _class_data(sparse=True), [
        metrics.SparseTopKCategoricalAccuracy(k=2), metrics.SparseTopKCategoricalAccuracy(k=1),
        metrics.SparseCategoricalCrossentropy(), metrics.SparseCategoricalCrossentropy(from_logits=True)]),
    "binary": (2, "sigmoid", "binary_crossentropy", lambda: _binary_data(), [
        metrics.BinaryCrossentropy(), metrics.BinaryCrossentropy(from_logits=True, label_smoothing=0.2),
        metrics.Precision(), metrics.Recall(), metrics.Recall(thresholds=0.7, class_id=0),
        metrics.AUC(from_logits=True, num_thresholds=7)]),
    "regression": (3, "linear", "mse", lambda: _regression_data(), [
        metrics.RootMeanSquaredError(), metrics.MeanAbsolutePercentageError()]),
}


@pytest.mark.parametrize("case", sorted(METRIC_CASES))
def test_the_other_metrics_agree_with_numpy_with_sample_weights(case):
    units, activation, loss, data, metric_list = METRIC_CASES[case]
    x, y = data()
    weights = np.random.default_rng(9).uniform(0, 2, size=N)
    ref, got = both(_mlp(units, activation), dict(optimizer="adam", loss=loss, metrics=metric_list), (x, y),
                    dict(batch_size=BATCH, epochs=2, sample_weight=weights,
                         validation_data=(x[:20], y[:20], weights[:20])))
    assert len(ref["history"]) == 2 * (1 + len(metric_list))
    assert_same_training(ref, got)
    evaluated = [run["model"].evaluate(x, y, batch_size=BATCH, verbose=0) for run in (ref, got)]
    np.testing.assert_allclose(evaluated[1], evaluated[0], **F64)


def test_auc_compares_scores_with_thresholds_rounded_to_the_plan_dtype():
    from polynn import plugins
    from polynn_numpy import metrics as numpy_metrics

    spec = metrics.AUC(num_thresholds=11)
    t32 = spec.thresholds().astype(np.float32)
    # Scores exactly on each float32 threshold and one float32 step either side of it.
    p = np.concatenate([t32, np.nextafter(t32, np.float32(-1)), np.nextafter(t32, np.float32(2))]).reshape(-1, 1)
    y = (np.arange(len(p)) % 2).astype(np.float32).reshape(-1, 1)
    expected = numpy_metrics.IMPLEMENTATIONS["auc"](spec, y, p, None)
    # The float64 thresholds would split these scores differently: the check has teeth.
    assert np.any(numpy_metrics.IMPLEMENTATIONS["auc"](spec, y, p.astype(np.float64), None) != expected)
    got = plugins.get_backend("tensorflow").implementation("metric", "auc")(spec, tf.constant(y), tf.constant(p), None)
    assert got.dtype == tf.float64
    np.testing.assert_array_equal(got.numpy(), expected)


# ---- user functions written with polynn.ops ---------------------------------------------------


def test_every_op_is_implemented():
    import polynn
    from polynn_tensorflow import ops as tf_ops

    assert [name for name in polynn.ops.OP_NAMES if not callable(getattr(tf_ops, name, None))] == []


# Ties (1, 1) and (-1, -1), one zero and two zeros in a row, values on clip's ends.
OP_INPUT = np.array([[-1.0, 0.0, 1.0, 2.0], [1.0, 1.0, 0.5, -3.0], [0.0, -1.0, 0.0, -1.0]])
TAKE = np.array([[3, 0, 0, -1], [1, 1, 2, 0], [-4, 2, 3, 3]])
W = np.random.default_rng(3).normal(size=(4, 2))


def _ops():
    from polynn import ops

    return ops


# Each case: the ops it exercises, and a function of OP_INPUT giving a float result to differentiate.
OP_CASES = {
    "abs at 0": (("abs",), lambda o, x: o.abs(x)),
    "square, sqrt": (("square", "sqrt"), lambda o, x: o.sqrt(o.square(x) + 1.0)),
    "exp, log, log1p": (("exp", "log", "log1p"), lambda o, x: o.log(o.exp(x) + 1.0) + o.log1p(o.square(x))),
    "tanh, sigmoid, softplus": (("tanh", "sigmoid", "softplus"),
                                lambda o, x: o.tanh(x) * o.sigmoid(3.0 * x) + o.softplus(-2.0 * x)),
    "negative, sign": (("negative", "sign"), lambda o, x: o.negative(x) * o.sign(x) + o.sign(x)),
    "power": (("power",), lambda o, x: o.power(o.abs(x) + 0.5, x) + o.power(x, 2.0) + o.power(x, 3)),
    "maximum, minimum ties": (("maximum", "minimum", "stop_gradient"),
                              lambda o, x: o.maximum(x, o.stop_gradient(x)) + o.minimum(0.5 * x, x)
                              + o.maximum(0.5 * x, x) + o.maximum(x, 1.0) + o.minimum(x, -1.0)),
    "clip at its ends": (("clip",), lambda o, x: o.clip(x, -1.0, 1.0) * x),
    "comparisons and where": (
        ("where", "equal", "not_equal", "greater", "greater_equal", "less", "less_equal",
         "logical_and", "logical_or", "logical_not"),
        lambda o, x: o.where(o.logical_or(o.logical_and(o.greater_equal(x, 0.0), o.less(x, 1.5)),
                                          o.logical_not(o.not_equal(x, -3.0))), x, 2.0 * o.square(x))
        + o.where(o.greater(x, 0.5), 1.0, x) + o.where(o.less_equal(x, -1.0), o.exp(x), 0.0)
        + o.where(o.equal(x, 1.0), 3.0 * x, -x)),
    "cast": (("cast",), lambda o, x: o.cast(o.cast(x * 1.1, "float32"), "float64")
             + o.cast(o.cast(x * 2.5, "int32"), "float64") * x + o.cast(o.cast(x, "bool"), "float64")
             + o.cast(o.cast(x, "int64"), "float64")),
    "sum, mean": (("sum", "mean"), lambda o, x: o.sum(x * x, axis=-1) + o.sum(o.mean(o.exp(x), axis=0))
                  + o.mean(x) + o.sum(x, axis=(0, 1), keepdims=True)[0]),
    "max, min ties": (("max", "min"), lambda o, x: o.max(x, axis=-1) + o.min(x, axis=-1, keepdims=True)[:, 0]
                      + o.max(x) + o.min(x, axis=0)[:3]),
    "prod with zeros": (("prod",), lambda o, x: o.prod(x, axis=-1) + o.prod(x + 2.0)),
    "argmax, one_hot": (("argmax", "one_hot"), lambda o, x: o.one_hot(o.argmax(x, axis=-1), 4) * x
                        + o.cast(o.argmax(x), "float64") * x),
    "matmul": (("matmul",), lambda o, x: o.sum(o.matmul(x, W), axis=-1) + o.matmul(x, o.reshape(x, (4, 3)))[0]
               + o.matmul(o.reshape(x, (12,)), o.reshape(x, (12,))) + o.matmul(x, x[0]) + o.matmul(x[0], W)[0]),
    "reshape, expand_dims, squeeze": (("reshape", "expand_dims", "squeeze"),
                                      lambda o, x: o.squeeze(o.expand_dims(o.reshape(x, (4, 3)), 1), axis=1)
                                      * o.reshape(o.squeeze(o.expand_dims(x, (0, -1))), (4, -1))),
    "concatenate, stack": (("concatenate", "stack"),
                           lambda o, x: o.concatenate([x, o.square(x)], axis=-1)[:, 2:6]
                           * o.stack([x, o.exp(x)], axis=1)[:, 1, :] + o.concatenate([x[:1], x], axis=0)[1:]),
    "take_along_axis": (("take_along_axis",), lambda o, x: o.take_along_axis(x, TAKE, axis=-1)
                        + o.take_along_axis(x, TAKE % 3, axis=0)),
    "cumsum": (("cumsum",), lambda o, x: o.cumsum(x * x, axis=-1) + o.reshape(o.cumsum(x), (3, 4))),
    "sort with ties": (("sort",), lambda o, x: o.sort(x, axis=-1) * np.arange(1.0, 5.0)
                       + o.sort(x * x, axis=0)[::-1] * x),
    "shape, zeros_like, ones_like, convert_to_tensor": (
        ("shape", "zeros_like", "ones_like", "convert_to_tensor"),
        lambda o, x: o.ones_like(x) * o.shape(x)[1] * x + o.zeros_like(x) + o.convert_to_tensor([1.0, 2.0, 3.0, 4.0]) * x
        + o.convert_to_tensor(x, "float64") * o.convert_to_tensor(np.float64(0.1))),
}


def test_the_op_cases_cover_every_op():
    import polynn

    covered = {name for names, _ in OP_CASES.values() for name in names}
    assert covered == set(polynn.ops.OP_NAMES)


@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_each_op_value_and_gradient_agree_with_numpy(case):
    """Against the reference's autodiff (polynn_numpy.autodiff.vjp), eagerly and inside a tf.function."""
    import polynn
    from polynn_numpy import autodiff
    from polynn_numpy import ops as numpy_ops
    from polynn_tensorflow import ops as tf_ops

    ops = _ops()
    function = OP_CASES[case][1]
    with polynn.ops.using(numpy_ops):
        expected_value = np.asarray(autodiff.value_of(function(ops, OP_INPUT)))
        seed = np.random.default_rng(0).uniform(-2.0, 2.0, expected_value.shape)
        expected_grad = autodiff.vjp(lambda x: function(ops, x), [OP_INPUT], seed)[0]

    def value_and_gradient(x):
        with polynn.ops.using(tf_ops), tf_ops.floats(tf.float64), tf.GradientTape() as tape:
            tape.watch(x)
            value = function(ops, x)
        return value, tape.gradient(value, x, output_gradients=tf.constant(seed),
                                    unconnected_gradients=tf.UnconnectedGradients.ZERO)

    traced = tf.function(value_and_gradient, autograph=False)
    for run in (value_and_gradient, traced):
        value, grad = run(tf.constant(OP_INPUT))
        assert value.dtype == tf.float64 and grad.dtype == tf.float64
        # Sums may add in another order than NumPy's pairwise summation: a few ulps apart.
        np.testing.assert_allclose(value.numpy(), expected_value, rtol=1e-14, atol=1e-14, err_msg=case)
        np.testing.assert_allclose(grad.numpy(), expected_grad, rtol=1e-14, atol=1e-14, err_msg=case)


def test_cast_to_an_unknown_dtype_is_refused_naming_the_accepted_ones():
    import polynn
    from polynn.errors import InvalidArgumentError
    from polynn_tensorflow import ops as tf_ops

    with polynn.ops.using(tf_ops), pytest.raises(InvalidArgumentError, match="dtype='float16'.*float32, float64"):
        _ops().cast(tf.constant([1.0]), "float16")


def test_a_custom_loss_trains_the_blog_model_as_the_built_in_mae():
    ops = _ops()

    def custom_mae(y_true, y_pred):
        return ops.mean(ops.abs(y_true - y_pred), axis=-1)

    builtin = run_blog("tensorflow", "float64", False, 10000, 2500, loss="mean_absolute_error")
    custom = run_blog("tensorflow", "float64", False, 10000, 2500, loss=losses.CustomLoss(function=custom_mae))
    assert len(custom["steps"]) == 2 * 313
    assert_same_training(builtin, custom)
    np.testing.assert_allclose(custom["predictions"], builtin["predictions"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(custom["evaluation"], builtin["evaluation"], **F64)


def _mish_by_hand(x):
    ops = _ops()
    return x * ops.tanh(ops.softplus(x))


def _hinge_like(y_true, y_pred):
    # max over the last axis (ties share), abs at 0, where, one_hot and take_along_axis.
    ops = _ops()
    labels = ops.argmax(y_true, axis=-1)
    picked = ops.squeeze(ops.take_along_axis(y_pred, ops.expand_dims(labels, -1), axis=-1), -1)
    others = ops.where(ops.one_hot(labels, 4) > 0.5, -1e9 * ops.ones_like(y_pred), y_pred)
    return ops.maximum(ops.max(others, axis=-1) - picked + 1.0, 0.0) + 0.1 * ops.mean(ops.abs(y_pred), axis=-1)


def _log_ratio(y_true, y_pred):
    ops = _ops()
    return ops.sum(ops.square(ops.log1p(ops.softplus(y_pred)) - ops.sigmoid(y_true)), axis=-1)


@pytest.mark.parametrize("zero_start", [False, True], ids=["random", "zero"])
def test_custom_activation_loss_and_metric_agree_with_numpy(zero_start):
    """zero_start puts every pre-activation at exactly 0 on the first step, the kinks' corner."""

    def build():
        initializer = "zeros" if zero_start else "glorot_uniform"
        return Sequential([Dense(6, input_dim=FEATURES, activation=_mish_by_hand, kernel_initializer=initializer),
                           Dense(4)])

    x, y = _class_data()
    weights = np.random.default_rng(10).uniform(0, 2, size=N)
    ref, got = both(build, dict(optimizer=optimizers.SGD(0.1, momentum=0.5), loss=losses.CustomLoss(function=_hinge_like),
                                metrics=[metrics.CustomMetric(function=_log_ratio)]),
                    (x, y), dict(batch_size=BATCH, epochs=2, sample_weight=weights, validation_data=(x[:20], y[:20])))
    assert set(ref["history"]) == {"loss", "_log_ratio", "val_loss", "val__log_ratio"}
    assert_same_training(ref, got)
