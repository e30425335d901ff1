"""The PyTorch backend computes the NumPy reference's numbers: every step, option and entry point."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from polynn.activations import Softmax  # noqa: E402
from polynn import constraints, losses, metrics, ops, optimizers, regularizers  # noqa: E402
from polynn.callbacks import Callback  # noqa: E402
from polynn.layers import Activation, Dense, Dropout, Input  # noqa: E402
from polynn.models import Sequential  # noqa: E402

# float64 runs agree to rounding: measured deviations are below 1e-15 relative.
F64 = dict(rtol=1e-9, atol=1e-9)


# ---- helpers ---------------------------------------------------------------------------


@pytest.fixture(autouse=True, scope="module")
def _one_intra_op_thread():
    """These models are tiny, so torch's intra-op threads buy nothing; on a machine whose cores are
    busy they stall each matmul waiting for a descheduled thread (measured on 2 shared cores: one
    blog epoch, one step per call, 26.7 s with 2 threads against 1.9 s with 1). Restored afterwards."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


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
    """Train the same model on NumPy and PyTorch; per-step losses, history and final state of each."""
    runs = {}
    for backend in ("numpy", "torch"):
        model = build()
        model.compile(backend=backend, dtype=dtype, seed=seed, **compile_kwargs)
        model.build(fit_args[0].shape[1:])
        model._runtime_for(fit_args[0].shape[1:], fit_args[1].shape[1:])
        steps = record_step_losses(model)
        history = model.fit(*fit_args, verbose=0, **(fit_kwargs or {}))
        runs[backend] = dict(model=model, steps=np.array(steps), history=history.history,
                             weights=model.get_weights(), state=model._compiled.runtime.get_optimizer_state())
    return runs["numpy"], runs["torch"]


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


def test_import_polynn_does_not_import_torch():
    code = ("import sys, polynn\nfrom polynn import plugins\nplugins.load()\n"
            "names = [e.name for e in plugins.backend_entries()]\n"
            "assert 'torch' in names, names\n"
            "assert 'torch' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_backend_is_registered_with_its_engine_and_devices():
    from polynn import plugins

    entry = next(e for e in plugins.backend_entries() if e.name == "torch")
    assert (entry.engine, entry.install, entry.devices) == ("torch", "polynn[torch]", ("cpu", "cuda"))
    backend = plugins.get_backend("torch")
    numpy_backend = plugins.get_backend("numpy")
    for kind, table in numpy_backend.implementations.items():
        # Every component of the reference, custom functions included, runs on torch: its own
        # override or the shared implementation written on polynn.ops.
        missing = {name for name in table if backend.implementation(kind, name) is None}
        assert missing == set(), (kind, missing)
    assert backend.engine_version() == torch.__version__


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
    got = run_blog("torch", "float64", False, 10000, 2500)
    assert len(got["steps"]) == 2 * 313
    assert_same_training(ref, got)
    np.testing.assert_allclose(got["predictions"], ref["predictions"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got["evaluation"], ref["evaluation"], **F64)


def test_blog_example_float64_with_dropout_agrees_with_numpy():
    ref = run_blog("numpy", "float64", True, 1000, 300)
    got = run_blog("torch", "float64", True, 1000, 300)
    assert_same_training(ref, got)
    np.testing.assert_allclose(got["predictions"], ref["predictions"], rtol=0, atol=1e-9)


@pytest.mark.parametrize("dropout", [False, True])
def test_blog_example_float32_agrees_with_numpy(dropout):
    ref = run_blog("numpy", "float32", dropout, 2000, 500)
    got = run_blog("torch", "float32", dropout, 2000, 500)
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
    blog.main(["--backend", "torch", "--epochs", "1", "--seed", "3"])
    out = capsys.readouterr().out
    assert "Epoch 1/1" in out and "313/313" in out and "val_loss" in out
    assert "(backend torch, float32)" in out


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
    "mape": (losses.MeanAbsolutePercentageError(), "linear", lambda: _regression_data()),
    # A linear output goes below EPSILON, where MSLE's max(p, EPSILON) stops the gradient.
    "msle": (losses.MeanSquaredLogarithmicError(), "linear", lambda: _regression_data()),
    "huber": (losses.Huber(delta=0.5), "linear", lambda: _regression_data()),
    "log_cosh": (losses.LogCosh(), "linear", lambda: _regression_data()),
    "hinge_01_labels": (losses.Hinge(), "linear", lambda: _binary_data()),
    "hinge_pm1_labels": (losses.Hinge(), "linear", lambda: _signed_data()),
    "hinge_real_labels": (losses.Hinge(), "tanh", lambda: _regression_data()),
    "squared_hinge": (losses.SquaredHinge(), "linear", lambda: _binary_data()),
    "categorical_hinge": (losses.CategoricalHinge(), "linear", lambda: _class_data()),
    "kld": (losses.KLDivergence(), "softmax", lambda: _class_data()),
    # Linear outputs leave [EPSILON, 1] on both sides, where the clip stops the gradient.
    "kld_linear": (losses.KLDivergence(), "linear", lambda: _class_data()),
    "poisson": (losses.Poisson(), "softplus", lambda: _counts_data()),
    "cosine_similarity": (losses.CosineSimilarity(), "linear", lambda: _regression_data()),
    "cosine_similarity_sum": (losses.CosineSimilarity(reduction="sum"), "tanh", lambda: _regression_data()),
}


def _signed_data(units=2):
    x, y = _binary_data(units)
    return x, 2 * y - 1


def _counts_data(units=3):
    rng = np.random.default_rng(9)
    return rng.normal(size=(N, FEATURES)), rng.poisson(2.0, size=(N, units)).astype(np.float64)


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
    "adagrad": optimizers.Adagrad(learning_rate=0.1),
    "adadelta": optimizers.Adadelta(learning_rate=1.0),
    "adamax": optimizers.Adamax(learning_rate=0.01, clipvalue=0.5),
    "nadam": optimizers.Nadam(learning_rate=0.01, weight_decay=0.01),
}


@pytest.mark.parametrize("case", sorted(OPTIMIZER_CASES))
def test_each_optimizer_option_agrees_with_numpy(case):
    x, y = _regression_data()
    ref, got = both(_mlp(3, "linear"), dict(optimizer=OPTIMIZER_CASES[case], loss="mse"), (x, y),
                    dict(batch_size=BATCH, epochs=2))
    assert_same_training(ref, got)


def _trained_with(monkeypatch, case, dtype, **constants):
    """Weights and optimizer state after a short fit, with polynn_torch.optimizers' `constants` set."""
    from polynn_torch import optimizers as torch_optimizers

    for name, value in constants.items():
        monkeypatch.setattr(torch_optimizers, name, value)
    x, y = _regression_data()
    model = _mlp(3, "linear")()
    model.compile(optimizer=OPTIMIZER_CASES[case], loss="mse", backend="torch", dtype=dtype, seed=11)
    model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0)
    state = model._compiled.runtime.get_optimizer_state()
    return model.get_weights() + [slot for slots in state for slot in slots]


def _fused(case):
    from polynn import plugins
    from polynn_torch import optimizers as torch_optimizers

    rule = plugins.get_backend("torch").implementation("optimizer", OPTIMIZER_CASES[case].name)
    return rule in torch_optimizers.FUSED and torch_optimizers.fused_kernels_available("cpu")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(OPTIMIZER_CASES))
def test_update_chunks_change_no_bit(case, dtype, monkeypatch):
    """The chunked rules walk flat buffers in chunks; chunks that split weights (7 elements, against
    weights of 3 to 30) give the very bits of one chunk for the whole model. (Adam's fused kernel
    has no chunks, so it is switched off here: the chunked Adam rule still runs on CUDA.)"""
    from polynn_torch import optimizers as torch_optimizers

    monkeypatch.setattr(torch_optimizers, "fused_kernels_available", lambda device: False)
    whole = _trained_with(monkeypatch, case, dtype, CHUNK=torch_optimizers.CHUNK)
    chunked = _trained_with(monkeypatch, case, dtype, CHUNK=7)
    for want, got in zip(whole, chunked):
        assert want.tobytes() == got.tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(OPTIMIZER_CASES))
def test_gradients_read_in_place_match_gathered_ones(case, dtype, monkeypatch):
    """Weights of GATHER_BELOW elements or more are updated from autograd's gradient where it lies;
    at 7 every weight but the 3-element bias is. The chunked rules give the very bits of gathering
    all. torch's fused Adam kernel rounds the last elements of each tensor it is given, those that
    do not fill a vector register, in scalar code, so when the tensors change they may move by their last bit, and two
    epochs of training carry that on: the fused cases agree to rounding, within the bound below
    (measured after 2 epochs: 6e-8 in float32, 1.1e-16 in float64; the kit allows 1e-4 and 1e-9)."""
    from polynn_torch import optimizers as torch_optimizers

    gathered = _trained_with(monkeypatch, case, dtype, GATHER_BELOW=torch_optimizers.GATHER_BELOW)
    in_place = _trained_with(monkeypatch, case, dtype, GATHER_BELOW=7)
    for want, got in zip(gathered, in_place):
        if _fused(case):
            np.testing.assert_allclose(got, want, rtol=0, atol={"float32": 1e-6, "float64": 1e-12}[dtype])
        else:
            assert want.tobytes() == got.tobytes()


ADAM_CASES = [case for case in sorted(OPTIMIZER_CASES) if OPTIMIZER_CASES[case].name in ("adam", "adamw")]


@pytest.mark.parametrize("case", ADAM_CASES)
def test_chunked_adam_agrees_with_numpy(case, monkeypatch):
    """The chunked Adam rule (CUDA's, and the fallback of `fused_rule`) against the reference."""
    from polynn_torch import optimizers as torch_optimizers

    monkeypatch.setattr(torch_optimizers, "fused_kernels_available", lambda device: False)
    x, y = _regression_data()
    ref, got = both(_mlp(3, "linear"), dict(optimizer=OPTIMIZER_CASES[case], loss="mse"), (x, y),
                    dict(batch_size=BATCH, epochs=2))
    assert_same_training(ref, got)


def test_fused_adam_only_where_its_float32_constants_are_faithful():
    """The fused kernel keeps v as v * beta_2 + (1 - beta_2) * g * g, each weight rounded to float32:
    at beta_2 = 0.9999 the two miss summing to 1 by 1.7e-4 of 1 - beta_2, so v would settle that far
    off; the chunked rule runs there. float64, and float32 at the default 0.999, use the kernel."""
    from polynn_torch import optimizers as torch_optimizers

    if not torch_optimizers.fused_kernels_available("cpu"):
        pytest.skip(f"torch {torch.__version__}: no fused CPU kernel in use")
    rule = torch_optimizers.UPDATES["adam"]
    for beta_2, dtype, fused in ((0.999, "float32", True), (0.9999, "float32", False), (0.9999, "float64", True)):
        state = torch_optimizers.FlatState([(4, 3)], (0.0, 0.0), getattr(torch, dtype), "cpu")
        chosen = torch_optimizers.fused_rule(optimizers.Adam(beta_2=beta_2), rule, state)
        assert (chosen is not None) == fused, (beta_2, dtype)


def test_adam_runs_in_the_fused_kernel_on_the_cpu(monkeypatch):
    """On the CPU, Adam's update is one call of torch's fused kernel per step, not the chunked rule."""
    from polynn_torch import optimizers as torch_optimizers

    if not torch_optimizers.fused_kernels_available("cpu"):
        pytest.skip(f"torch {torch.__version__} has no fused CPU kernel (2.4 on)")
    calls = []
    fused = torch_optimizers.FUSED[torch_optimizers._adam]
    monkeypatch.setitem(torch_optimizers.FUSED, torch_optimizers._adam,
                        lambda *args: calls.append(1) or fused(*args))
    monkeypatch.setattr(torch_optimizers, "_moments", lambda *args: pytest.fail("chunked Adam rule called"))
    x, y = _regression_data()
    model = _mlp(3, "linear")()
    model.compile(optimizer="adam", loss="mse", backend="torch", seed=11)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    assert len(calls) == -(-len(x) // BATCH)


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
    for backend in ("numpy", "torch"):
        model = blog_model(dropout=True)
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"], backend=backend,
                      dtype="float64", seed=4)
        callback = Logs()
        model.fit(x, y, epochs=2, batch_size=BATCH, verbose=0, callbacks=[callback])
        seen[backend] = callback.seen
    assert len(seen["torch"]) == len(seen["numpy"]) == 2 * 13
    for got, ref in zip(seen["torch"], seen["numpy"]):
        assert got.keys() == ref.keys()
        for key in ref:
            np.testing.assert_allclose(got[key], ref[key], **F64)


# ---- evaluate, predict, state ------------------------------------------------------------


def test_evaluate_and_predict_agree_with_numpy():
    x, y, _, _, x_test, y_test = blog_data(300, 123)
    weights = np.random.default_rng(1).uniform(0, 1, size=len(x_test))
    out = {}
    for backend in ("numpy", "torch"):
        model = blog_model(dropout=True)
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy", "mae"],
                      backend=backend, dtype="float64", seed=9)
        model.fit(x, y, epochs=1, verbose=0)
        out[backend] = (model.evaluate(x_test, y_test, batch_size=20, verbose=0, return_dict=True),
                        model.evaluate(x_test, y_test, batch_size=50, sample_weight=weights, verbose=0),
                        model.predict(x_test, batch_size=17, verbose=0),
                        model.predict(x_test[:0], verbose=0))
    (ev, ev_w, pred, empty), (ref_ev, ref_ev_w, ref_pred, ref_empty) = out["torch"], out["numpy"]
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
    for backend in ("numpy", "torch"):
        model = _mlp(3, "linear")()
        model.compile(optimizer=optimizers.RMSprop(momentum=0.5, centered=True), loss="mse",
                      backend=backend, dtype="float64", seed=1)
        runtime = model._compiled.runtime
        assert optimizers.RMSprop(centered=True, momentum=0.5).slot_names() == (
            "velocity", "momentum", "average_gradient")
        weights = [rng.normal(size=w.shape) for w in model.get_weights()]
        state = []
        for w in weights:
            # A state centered RMSprop can reach: velocity (the mean square) >= average_gradient**2,
            # so sqrt(velocity - average**2 + epsilon) is real and the comparison is of numbers, not NaNs.
            average = rng.normal(size=w.shape)
            state.append([average ** 2 + rng.uniform(0.01, 1, size=w.shape), rng.normal(size=w.shape), average])
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
        for array in [*trained[backend][0], *(slot for slots in trained[backend][1] for slot in slots)]:
            assert np.all(np.isfinite(array)), backend
    for got, ref in zip(trained["torch"][0], trained["numpy"][0]):
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)
    for got_slots, ref_slots in zip(trained["torch"][1], trained["numpy"][1]):
        for got, ref in zip(got_slots, ref_slots):
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)


def test_relu_options_and_the_other_activations_agree_with_numpy():
    from polynn import activations

    hidden = [activations.ReLU(negative_slope=0.1, max_value=1.5, threshold=0.2), activations.ReLU(max_value=0.8),
              "elu", "selu", "softplus", "softsign", "gelu", activations.GELU(approximate=False), "silu",
              "leaky_relu", "relu6", "exponential", "hard_sigmoid", "hard_silu", "mish"]

    def build():
        return Sequential([Dense(6, input_dim=FEATURES, activation="tanh"),
                           *(Dense(6, activation=a) for a in hidden),
                           Dense(4, activation="log_softmax"), Dense(3)])

    x, y = _regression_data()
    ref, got = both(build, dict(optimizer="adam", loss="mse", metrics=["root_mean_squared_error"]), (x, y),
                    dict(batch_size=BATCH, epochs=2))
    assert_same_training(ref, got)


def test_kinks_take_the_spec_gradient_exactly_at_the_corner():
    """Inputs exactly at 0 (and relu6's 6): autograd of a naive formula would give another value there."""
    from polynn import activations, plugins
    from polynn_numpy import activations as numpy_activations

    torch_backend = plugins.get_backend("torch")

    x = np.array([-6.0, -3.0, 0.0, 3.0, 6.0, 0.5, -0.5])
    for spec in (activations.Softplus(), activations.LeakyReLU(), activations.ReLU6(), activations.Mish(),
                 activations.ReLU(negative_slope=0.3, max_value=6.0), activations.ELU(alpha=0.7)):
        forward, backward = numpy_activations.IMPLEMENTATIONS[spec.name]
        y = forward(spec, x)
        t = torch.tensor(x, requires_grad=True)
        out = torch_backend.implementation("activation", spec.name)(spec, t)
        (grad,) = torch.autograd.grad(out.sum(), t)
        np.testing.assert_allclose(out.detach().numpy(), y, rtol=1e-12, atol=1e-15, err_msg=spec.name)
        np.testing.assert_allclose(grad.numpy(), backward(spec, x, y, np.ones_like(x)), rtol=1e-12, atol=1e-15,
                                   err_msg=spec.name)


def _torch_implementation(kind, name):
    """The torch backend's implementation: its override, else the spec's shared call on torch's ops."""
    from polynn import plugins

    return plugins.get_backend("torch").implementation(kind, name)


def test_from_logits_crossentropy_has_the_true_gradient_at_zero():
    from polynn_numpy import losses as numpy_losses

    spec = losses.BinaryCrossentropy(from_logits=True)
    p = np.array([[0.0, 0.0, 2.0, -2.0]])
    y = np.array([[1.0, 0.0, 1.0, 0.0]])
    t = torch.tensor(p, requires_grad=True)
    (grad,) = torch.autograd.grad(_torch_implementation("loss", "binary_crossentropy")(spec, torch.tensor(y), t).sum(), t)
    want = numpy_losses.IMPLEMENTATIONS["binary_crossentropy"][1](spec, y, p, np.ones(1))
    np.testing.assert_allclose(grad.numpy(), want, rtol=1e-12, atol=1e-15)


def test_the_other_mean_metrics_agree_with_numpy():
    def build():
        return Sequential([Dense(6, input_dim=FEATURES, activation="relu"), Dense(4, activation="softmax")])

    x, y = _class_data()
    metric_list = [metrics.TopKCategoricalAccuracy(k=2), "categorical_crossentropy", "root_mean_squared_error",
                   metrics.BinaryCrossentropy()]
    ref, got = both(build, dict(optimizer="adam", loss="categorical_crossentropy", metrics=metric_list),
                    (x, y), dict(batch_size=BATCH, epochs=2, validation_data=(x[:20], y[:20])))
    assert_same_training(ref, got)
    x, y = _class_data(sparse=True)
    ref, got = both(build, dict(optimizer="adam", loss="sparse_categorical_crossentropy",
                                metrics=[metrics.SparseTopKCategoricalAccuracy(k=2), "sparse_categorical_crossentropy"]),
                    (x, y), dict(batch_size=BATCH, epochs=1))
    assert_same_training(ref, got)


def test_missing_cuda_device_is_refused_naming_it():
    from polynn.errors import InvalidArgumentError

    model = _mlp(3, "linear")()
    if torch.cuda.is_available():
        device = f"cuda:{torch.cuda.device_count()}"
        with pytest.raises(InvalidArgumentError, match=f"device='{device}'"):
            model.compile(loss="mse", backend="torch", device=device)
    else:
        for device in ("cuda", "cuda:1"):
            with pytest.raises(InvalidArgumentError, match=f"device='{device}'.*no CUDA device"):
                model.compile(loss="mse", backend="torch", device=device)


@pytest.mark.parametrize("device", ["tpu", "mps", "cuda:x", 3])
def test_unknown_device_is_refused(device):
    from polynn.errors import InvalidArgumentError

    model = _mlp(3, "linear")()
    with pytest.raises(InvalidArgumentError, match=r"device=.*'cpu', 'cuda' or 'cuda:N'"):
        model.compile(loss="mse", backend="torch", device=device)


def test_cpu_device_by_name_and_by_default():
    x, y = _regression_data()
    results = []
    for device in (None, "cpu"):
        model = _mlp(3, "linear")()
        model.compile(loss="mse", backend="torch", dtype="float64", seed=3, device=device)
        assert model._compiled.runtime.device == torch.device("cpu")
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
        results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_cpu_data_shares_a_writable_arrays_memory_and_fit_leaves_it_unchanged():
    """On the CPU the data tensors are the arrays' own memory (no second training set); a read-only
    array is copied instead of aliased without a warning; fit, evaluate and predict leave x and y
    as they were, and train as a copy would."""
    import warnings

    x, y = _regression_data()
    model = _mlp(3, "linear")()
    model.compile(loss="mse", backend="torch", dtype="float64", seed=3)
    runtime = model._compiled.runtime
    tx, ty, tw = runtime.put_data(x, y)
    assert tw is None and tx.data_ptr() == x.ctypes.data and ty.data_ptr() == y.ctypes.data
    frozen = x.copy()
    frozen.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        copied = runtime.put_data(frozen)[0]
    assert copied.data_ptr() != frozen.ctypes.data and torch.equal(copied, torch.from_numpy(x))
    x_before, y_before = x.copy(), y.copy()
    model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(y, y_before)
    reference = _mlp(3, "linear")()
    reference.compile(loss="mse", backend="torch", dtype="float64", seed=3)
    reference.fit(frozen, y.copy(), batch_size=BATCH, epochs=2, verbose=0)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)


# ---- reused gradient tensors -----------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_workspace_gradients_change_no_bit(dtype, monkeypatch, assert_identical_runs):
    """Training steps on the CPU write Dense's kernel and input gradients into tensors kept from step
    to step; autograd's own tensors give the same bits (a partial last batch, dropout, an Activation
    layer, a linear layer feeding another, no bias, kernel and activity regularizers and a
    validation split included). The size bound is lowered so this small model uses every workspace."""
    from polynn_torch import layers as torch_layers

    rng = np.random.default_rng(11)
    x = rng.normal(size=(203, 12))
    y = (rng.random((203, 1)) > 0.5).astype(float)
    runs = []
    for bound in (0, float("inf")):
        monkeypatch.setattr(torch_layers, "MIN_BYTES", bound)
        model = Sequential([Dense(16, input_dim=12, activation="relu", kernel_regularizer="l2"), Dropout(0.3),
                            Dense(8, activation="linear", use_bias=False, activity_regularizer="l1"),
                            Dense(8, activation="tanh"), Activation("relu"), Dense(1, activation="sigmoid")])
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"], backend="torch",
                      dtype=dtype, seed=3)
        history = model.fit(x, y, epochs=3, batch_size=32, verbose=0, validation_split=0.2)
        held = [None if w is None else sorted(w._tensors) for w in model._compiled.runtime.workspaces]
        if bound == 0:
            # The first layer takes no input gradient; every other Dense keeps both of its products,
            # and Dropout and Activation take no workspace.
            assert held == [["dkernel"], None, ["dkernel", "dx"], ["dkernel", "dx"], None, ["dkernel", "dx"]]
        else:
            assert held == [[], None, [], [], None, []]
        runs.append((model.get_weights(), history.history, model.predict(x, batch_size=32, verbose=0)))
    assert_identical_runs(*runs)


def test_workspace_gradients_are_chosen_by_size_and_kept_across_steps():
    """A Dense layer keeps its gradient products when its input (the size of its input gradient) or
    its kernel is 1 MB or more, in the same memory from one fit to the next (a smaller last batch
    uses the first rows). At batch 256: the 1024-to-1024 layer (4 MB kernel) and the 1024-to-1 layer
    (1 MB input) keep theirs; the 8-to-4 and 4-to-1024 layers (at most a 16 KB kernel and 8 KB
    input) let autograd allocate."""
    rng = np.random.default_rng(13)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    y = (rng.random((300, 1)) > 0.5).astype(np.float32)
    model = Sequential([Dense(4, input_dim=8), Dense(1024, activation="relu"), Dense(1024, activation="relu"),
                        Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", backend="torch")
    model.fit(x, y, epochs=1, batch_size=256, verbose=0)
    workspaces = model._compiled.runtime.workspaces
    held = [dict(w._tensors) for w in workspaces]
    assert held[0] == {} and held[1] == {}
    assert sorted(held[2]) == ["dkernel", "dx"] and sorted(held[3]) == ["dkernel", "dx"]
    assert held[2]["dkernel"].shape == (1024, 1024) and held[3]["dx"].shape == (256, 1024)
    model.fit(x, y, epochs=2, batch_size=256, verbose=0)
    for before, workspace in zip(held, workspaces):
        assert {k: t.data_ptr() for k, t in before.items()} == {k: t.data_ptr() for k, t in workspace._tensors.items()}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_agrees_with_numpy():
    ref = run_blog("numpy", "float64", True, 1000, 300)
    got = run_blog_on("cuda", "float64", True, 1000, 300)
    assert_same_training(ref, got)
    np.testing.assert_allclose(got["predictions"], ref["predictions"], rtol=0, atol=1e-9)


def run_blog_on(device, dtype, dropout, n_train, n_other, epochs=2):
    x, y, x_val, y_val, x_test, y_test = blog_data(n_train, n_other)
    model = blog_model(dropout)
    model.compile(optimizer="Adam", loss="binary_crossentropy", metrics=["accuracy"],
                  backend="torch", dtype=dtype, seed=1000, device=device)
    steps = record_step_losses(model)
    history = model.fit(x, y, epochs=epochs, validation_data=(x_val, y_val), verbose=0)
    return dict(steps=np.array(steps), history=history.history, weights=model.get_weights(),
                state=model._compiled.runtime.get_optimizer_state(),
                predictions=model.predict(x_test, verbose=0))


# ---- the losses' gradients at their kinks and clip boundaries -------------------------------------

E = losses.EPSILON
# (spec, y, p): each puts inputs exactly on the places where a formula's gradient is a convention.
KINK_CASES = {
    "mape: p == y, y == 0": (losses.MeanAbsolutePercentageError(),
                             [[0.0, 2.0, -1.0], [0.0, 0.5, 3.0]], [[0.0, 2.0, 0.5], [0.3, 0.5, -1.0]]),
    "msle: p at, below and above EPSILON": (losses.MeanSquaredLogarithmicError(),
                                            [[0.5, 1.0, 0.0], [2.0, 0.0, 1e-9]], [[E, -0.5, 0.0], [2 * E, 1.5, E / 2]]),
    "huber: |d| == delta": (losses.Huber(delta=0.5), [[0.0, 1.0, 0.0]], [[0.5, 0.5, -0.25]]),
    "log_cosh: d == 0 and large |d|": (losses.LogCosh(), [[0.0, 1.0, -30.0]], [[0.0, 31.0, 0.0]]),
    "hinge: 1 - y p == 0 (0/1 labels)": (losses.Hinge(), [[1.0, 0.0, 1.0]], [[1.0, -1.0, 0.3]]),
    "hinge: mixed labels pass unchanged": (losses.Hinge(), [[1.0, 0.0, -1.0]], [[1.0, 0.5, -1.0]]),
    "squared_hinge: at the kink": (losses.SquaredHinge(), [[1.0, 0.0]], [[1.0, -1.0]]),
    "categorical_hinge: tied maxima": (losses.CategoricalHinge(), [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]],
                                       [[0.2, 0.7, 0.7, 0.1], [0.3, 0.4, 0.3, -0.2]]),
    "categorical_hinge: exactly at 0": (losses.CategoricalHinge(), [[1.0, 0.0, 0.0]], [[1.5, 0.5, 0.25]]),
    "kl_divergence: p at and outside [EPSILON, 1]": (losses.KLDivergence(),
                                                     [[0.2, 0.3, 0.5, 0.0], [1.0, 0.0, 0.0, 0.0]],
                                                     [[E, 1.0, 1.5, 0.2], [0.0, -0.5, E / 2, 0.3]]),
    "poisson": (losses.Poisson(), [[0.0, 2.0, 1.0]], [[0.5, 1.5, 3.0]]),
    "cosine_similarity: zero and tiny norms": (losses.CosineSimilarity(), [[1.0, 2.0], [0.5, -1.0], [3.0, 1.0]],
                                               [[0.0, 0.0], [1e-8, 2e-8], [0.4, -0.3]]),
    "cosine_similarity: axis 1 of rank 3": (losses.CosineSimilarity(axis=1), [[[1.0, 0.0], [2.0, 1.0]]],
                                            [[[0.5, 0.0], [-1.0, 0.0]]]),
}


@pytest.mark.parametrize("case", sorted(KINK_CASES))
def test_each_new_loss_takes_the_reference_value_and_gradient_at_its_kinks(case):
    from polynn_numpy import losses as numpy_losses

    spec, y, p = KINK_CASES[case]
    y, p = np.array(y), np.array(p)
    value, vjp = numpy_losses.IMPLEMENTATIONS[spec.name]
    want = value(spec, y, p)
    seed = np.random.default_rng(3).uniform(0.5, 2.0, size=want.shape)
    t = torch.tensor(p, requires_grad=True)
    got = _torch_implementation("loss", spec.name)(spec, torch.tensor(y), t)
    (grad,) = torch.autograd.grad(torch.sum(got * torch.tensor(seed)), t)
    np.testing.assert_allclose(got.detach().numpy(), want, **F64)
    np.testing.assert_allclose(grad.numpy(), vjp(spec, y, p, seed), **F64)
    assert np.all(np.isfinite(grad.numpy()))


# ---- the state metrics: precision, recall, AUC ----------------------------------------------


STATE_METRICS = ["precision", "recall", "auc", metrics.Precision(thresholds=0.3, class_id=1),
                 metrics.Recall(thresholds=0.7, class_id=0), metrics.AUC(num_thresholds=7, curve="PR"),
                 metrics.AUC(summation_method="majoring"), metrics.AUC(curve="PR", summation_method="minoring"),
                 metrics.AUC(from_logits=True, num_thresholds=50), "mape"]


def test_state_metrics_and_mape_agree_with_numpy_in_training_and_evaluation():
    x, y = _binary_data()
    weights = np.random.default_rng(4).uniform(0, 2, size=N)
    ref, got = both(_mlp(2, "sigmoid"), dict(optimizer="adam", loss="binary_crossentropy", metrics=STATE_METRICS),
                    (x, y), dict(batch_size=BATCH, epochs=2, sample_weight=weights, validation_data=(x[:30], y[:30])))
    assert_same_training(ref, got)
    assert {"precision", "recall", "auc", "val_auc", "mape"} <= set(got["history"])
    for kwargs in (dict(batch_size=9), dict(batch_size=20, sample_weight=weights)):
        want = ref["model"].evaluate(x, y, verbose=0, return_dict=True, **kwargs)
        have = got["model"].evaluate(x, y, verbose=0, return_dict=True, **kwargs)
        assert have.keys() == want.keys()
        for key in want:
            np.testing.assert_allclose(have[key], want[key], **F64, err_msg=key)


def test_state_metric_increments_equal_the_reference_increments():
    """The increment of each state vector for one batch, with weights, including scores exactly at a threshold."""
    from polynn_numpy import metrics as numpy_metrics

    rng = np.random.default_rng(12)
    p = rng.uniform(size=(40, 3))
    p[:4, :] = 0.5  # exactly at the default threshold: not positive
    p[4:8, :] = [0.0, 1.0, 1 / 6]  # on AUC's thresholds for 7 of them
    y = rng.integers(0, 2, size=(40, 3)).astype(np.float64)
    w = rng.uniform(0, 2, size=40)
    for spec in (metrics.Precision(), metrics.Recall(class_id=2), metrics.AUC(num_thresholds=7),
                 metrics.AUC(from_logits=True), metrics.Precision(thresholds=0.0)):
        for weights in (None, w):
            want = numpy_metrics.IMPLEMENTATIONS[spec.name](spec, y, p, weights)
            got = _torch_implementation("metric", spec.name)(
                spec, torch.tensor(y), torch.tensor(p), None if weights is None else torch.tensor(weights))
            assert got.dtype == torch.float64 and got.shape == want.shape == (spec.state_size,)
            np.testing.assert_allclose(got.numpy(), want, **F64, err_msg=repr(spec))


# ---- polynn.ops on torch tensors ---------------------------------------------------------------


def test_torch_ops_have_every_op():
    import polynn
    from polynn_torch import ops as torch_ops

    assert [name for name in polynn.ops.OP_NAMES if not callable(getattr(torch_ops, name, None))] == []


def _ops_input():
    """A (3, 4) float64 input with ties, zeros, a row of equal values and values exactly at 1 and -1."""
    x = np.random.default_rng(21).normal(size=(3, 4))
    x[0] = [0.0, 1.0, 1.0, -1.0]
    x[1, 2] = x[1, 0]
    x[2] = 0.75
    return x


POSITIVE = lambda x: ops.exp(x) + 0.5  # noqa: E731  (inputs for log, sqrt and power's base)

# (name, function of one float64 array). Every op of OP_NAMES appears in at least one, with a
# gradient path through it where it has one; a case ends in a float array to differentiate.
OP_CASES = {
    "abs at 0": lambda x: ops.abs(x),
    "square": lambda x: ops.square(x),
    "sqrt": lambda x: ops.sqrt(POSITIVE(x)),
    "exp": lambda x: ops.exp(x),
    "log": lambda x: ops.log(POSITIVE(x)),
    "log1p": lambda x: ops.log1p(ops.abs(x)),
    "tanh": lambda x: ops.tanh(x),
    "sigmoid": lambda x: ops.sigmoid(3 * x),
    "softplus at 0 and far out": lambda x: ops.softplus(x) + ops.softplus(40 * x),
    "negative": lambda x: ops.negative(x) * x,
    "sign has no gradient": lambda x: ops.sign(x) * x,
    "power, number exponent": lambda x: ops.power(x, 3) + ops.power(POSITIVE(x), 0.5),
    "power, tensor exponent": lambda x: ops.power(POSITIVE(x), x),
    # An integral exponent on negative bases: the exponent's gradient is 0 there (torch's pow gives NaN).
    "power, negative base": lambda x: ops.power(x - 2.0, 2.0 + 0 * x),
    "power, number base": lambda x: ops.power(2.0, x),
    "maximum tie goes to x": lambda x: ops.maximum(x, ops.stop_gradient(x)) + ops.maximum(x, 1.0),
    "minimum tie goes to x": lambda x: ops.minimum(x, ops.stop_gradient(x)) + ops.minimum(-1.0, x),
    "maximum of two traced": lambda x: ops.maximum(x, ops.reshape(ops.sort(ops.reshape(x, (-1,))), (3, 4))),
    "clip at its ends": lambda x: ops.clip(x, -1.0, 1.0),
    "where": lambda x: ops.where(ops.greater(x, 0.5), x * x, 0.25) + ops.where(x < 0, 1.0, x),
    "comparisons": lambda x: x * ops.cast(ops.logical_or(ops.logical_and(ops.greater_equal(x, 0.0), ops.less(x, 1.0)),
                                                         ops.logical_not(ops.not_equal(x, 1.0))), "float64")
    + x * ops.cast(ops.logical_or(ops.equal(x, 0.75), ops.less_equal(x, -1.0)), "float64"),
    "cast to float32 and back": lambda x: ops.cast(ops.cast(x, "float32"), "float64") * 2,
    "cast to int": lambda x: x * ops.cast(ops.cast(3 * x, "int32"), "float64")
    + ops.cast(ops.cast(x, "int64"), "float64"),
    "sum": lambda x: ops.sum(x * x, axis=-1) + ops.sum(x) + ops.sum(x, axis=(0, 1), keepdims=True),
    "mean": lambda x: ops.mean(x * x, axis=0, keepdims=True) + ops.mean(x) + ops.mean(ops.greater(x, 0.0)),
    "max ties share": lambda x: ops.max(x, axis=-1) + ops.max(x) + ops.max(x, axis=0, keepdims=True)[0, :3],
    "min ties share": lambda x: ops.min(x, axis=1, keepdims=True) + ops.min(x, axis=None, keepdims=True),
    "prod with a zero": lambda x: ops.prod(x, axis=-1) + ops.prod(x[1:] + 1.0)
    + ops.prod(x, axis=(0, 1), keepdims=True),
    "argmax": lambda x: x[ops.argmax(x, axis=-1) % 3],
    "matmul": lambda x: ops.matmul(x, ops.reshape(x, (4, 3))) + ops.sum(ops.matmul(x, np.ones((4, 2)))),
    "reshape, expand_dims, squeeze": lambda x: ops.squeeze(ops.expand_dims(ops.reshape(x, (2, 6)), (0, -1)))
    * ops.reshape(ops.squeeze(ops.expand_dims(ops.reshape(x, (12,)), 1), axis=1), (2, 6)),
    "concatenate and stack": lambda x: ops.concatenate([x, 2 * x, np.zeros((1, 4))], axis=0)
    + ops.sum(ops.stack([x, x * x], axis=1)),
    "one_hot": lambda x: ops.sum(ops.one_hot(ops.argmax(x, axis=-1), 4) * x, axis=-1),
    "take_along_axis with repeats": lambda x: ops.take_along_axis(
        x, np.array([[0, 0, 3], [1, 2, 1], [3, 3, 3]]), axis=1),
    "cumsum": lambda x: ops.cumsum(x, axis=-1) * x + ops.cumsum(x)[-1],
    "sort with ties": lambda x: ops.sort(x, axis=-1) * ops.convert_to_tensor(np.arange(4.0)) + ops.sort(x, axis=0)[0],
    "stop_gradient": lambda x: ops.stop_gradient(x) * x,
    "shape, zeros_like, ones_like": lambda x: ops.reshape(x, ops.shape(x)[::-1]) * 1.0
    + ops.sum(ops.zeros_like(x) + ops.ones_like(x)),
    "convert_to_tensor": lambda x: x * ops.convert_to_tensor([1.0, 2.0, 3.0, 4.0])
    + ops.convert_to_tensor(0.5, "float64") + ops.convert_to_tensor(x),
}


@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_each_op_agrees_with_the_numpy_autodiff(case):
    import polynn
    from polynn_numpy import autodiff
    from polynn_numpy import ops as numpy_ops
    from polynn_torch import ops as torch_ops

    function = OP_CASES[case]
    x = _ops_input()
    with polynn.ops.using(numpy_ops):
        want = np.asarray(autodiff.value_of(function(autodiff.Tensor(x))))
        seed = np.random.default_rng(5).uniform(0.5, 2.0, size=want.shape)
        (want_grad,) = autodiff.vjp(function, [x], seed)
    t = torch.tensor(x, requires_grad=True)
    with polynn.ops.using(torch_ops), torch_ops.floats(torch.float64, "cpu"):
        got = function(t)
    assert got.dtype == torch.float64 and tuple(got.shape) == want.shape
    np.testing.assert_allclose(got.detach().numpy(), want, **F64)
    (grad,) = torch.autograd.grad(torch.sum(got * torch.tensor(seed)), t, allow_unused=True)
    np.testing.assert_allclose(np.zeros_like(x) if grad is None else grad.numpy(), want_grad, **F64)


def test_ops_keep_a_float32_model_in_float32():
    import polynn
    from polynn_torch import ops as torch_ops

    x = torch.tensor(_ops_input(), dtype=torch.float32)
    with polynn.ops.using(torch_ops), torch_ops.floats(torch.float32, "cpu"):
        for out in (ops.maximum(x, 0.5), ops.clip(x, -0.5, np.float64(0.5)), ops.where(x > 0, x, 1.0),
                    ops.power(x, 2.0), ops.convert_to_tensor(np.ones(4)) * x, ops.one_hot(ops.argmax(x, -1), 4),
                    ops.mean(ops.greater(x, 0.0)), ops.concatenate([x, np.zeros((1, 4))]), ops.minimum(0.0, x)):
            assert out.dtype == torch.float32


def test_ops_cast_refuses_an_unknown_dtype_naming_the_accepted_ones():
    import polynn
    from polynn.errors import InvalidArgumentError
    from polynn_torch import ops as torch_ops

    with polynn.ops.using(torch_ops), pytest.raises(InvalidArgumentError, match="dtype.*'complex64'.*float32"):
        ops.cast(torch.ones(2), "complex64")


# ---- custom functions written with polynn.ops -----------------------------------------------


def custom_mae(y_true, y_pred):
    return ops.mean(ops.abs(y_true - y_pred), axis=-1)


def test_a_custom_mae_trains_the_blog_model_as_the_builtin_mae():
    runs = {}
    for loss in ("mean_absolute_error", custom_mae):
        x, y, x_val, y_val, _, _ = blog_data()
        model = blog_model(dropout=False)
        model.compile(optimizer="Adam", loss=loss, metrics=["accuracy"], backend="torch", dtype="float64", seed=1000)
        steps = record_step_losses(model)
        history = model.fit(x, y, epochs=2, validation_data=(x_val, y_val), verbose=0)
        runs[loss if isinstance(loss, str) else "custom"] = dict(
            steps=np.array(steps), history=history.history, weights=model.get_weights(),
            state=model._compiled.runtime.get_optimizer_state())
    assert len(runs["custom"]["steps"]) == 2 * 313
    assert_same_training(runs["mean_absolute_error"], runs["custom"])


def mish_by_ops(x):
    return x * ops.tanh(ops.softplus(x))


def margin_loss(y_true, y_pred):
    labels = ops.argmax(y_true, axis=-1)
    picked = ops.squeeze(ops.take_along_axis(y_pred, ops.expand_dims(labels, -1), axis=-1), -1)
    others = ops.where(ops.one_hot(labels, 4) > 0.5, -1e9 * ops.ones_like(y_pred), y_pred)
    return ops.maximum(ops.max(others, axis=-1) - picked + 1.0, 0.0) + 0.1 * ops.mean(ops.square(y_pred), axis=-1)


def top_margin(y_true, y_pred):
    top = ops.sort(y_pred, axis=-1)
    return top[..., -1] - top[..., -2] + ops.cast(ops.equal(ops.argmax(y_true, -1), ops.argmax(y_pred, -1)), "float64")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_custom_activation_loss_and_metric_agree_with_numpy(dtype):
    def build():
        return Sequential([Dense(6, input_dim=FEATURES, activation=mish_by_ops), Dense(4, activation="linear"),
                           Activation(lambda x: ops.clip(x, -2.0, 2.0) + 0.01 * x)])

    x, y = _class_data()
    ref, got = both(build, dict(optimizer="adam", loss=margin_loss, metrics=[top_margin, custom_mae]), (x, y),
                    dict(batch_size=BATCH, epochs=2, validation_data=(x[:20], y[:20])), dtype=dtype)
    if dtype == "float64":
        assert_same_training(ref, got)
        return
    assert got["weights"][0].dtype == np.float32
    # float32: the engines round differently; measured: every history entry within 5.4e-8 relative,
    # so the conformance kit's float32 metric tolerance (rtol 1e-6) holds.
    for key in ref["history"]:
        np.testing.assert_allclose(got["history"][key], ref["history"][key], rtol=1e-6, atol=0, err_msg=key)


def test_custom_activation_is_the_builtin_mish_on_torch():
    from polynn import activations, plugins

    torch_backend = plugins.get_backend("torch")
    x = torch.tensor(_ops_input().reshape(-1), requires_grad=True)
    custom = activations.get(mish_by_ops)
    assert custom.name == "custom_activation"
    got = torch_backend.implementation("activation", "custom_activation")(custom, x)
    want = torch_backend.implementation("activation", "mish")(activations.Mish(), x)
    np.testing.assert_array_equal(got.detach().numpy(), want.detach().numpy())
    (g_got,) = torch.autograd.grad(got.sum(), x)
    (g_want,) = torch.autograd.grad(want.sum(), x)
    np.testing.assert_array_equal(g_got.numpy(), g_want.numpy())


def test_small_constants_reach_an_accelerator_once():
    """AUC's thresholds and other small arrays a component converts every step are copied to a
    non-CPU device once (a copy per step would wait for the queued steps); on the CPU, as they are.
    The meta device stands in for an accelerator here."""
    from polynn import ops as polynn_ops
    from polynn_torch import ops as torch_ops

    thresholds = np.linspace(0.0, 1.0, 200)
    with polynn_ops.using(torch_ops), torch_ops.floats(torch.float32, "meta"):
        first = polynn_ops.convert_to_tensor(thresholds)
        assert polynn_ops.convert_to_tensor(thresholds.copy()) is first
        assert polynn_ops.convert_to_tensor(thresholds + 1e-3) is not first
        assert first.device.type == "meta" and first.dtype == torch.float32
    with polynn_ops.using(torch_ops), torch_ops.floats(torch.float32, "cpu"):
        assert polynn_ops.convert_to_tensor(thresholds) is not polynn_ops.convert_to_tensor(thresholds)
