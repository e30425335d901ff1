"""What only the PyTorch backend does: chunked and fused optimizer updates, gradients read in place,
Dense's gradient workspaces, CPU data sharing memory, CUDA devices and a device's constants cache.

What every engine must do is in test_engines.py; per-component agreement is the conformance kit's.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("polynn_torch")

from test_engines import BATCH, OP_GRID, assert_same_training, mish_by_ops, mlp, regression_data, run_blog, train_both  # noqa: E402

from polynn import optimizers  # noqa: E402
from polynn.layers import Activation, Dense, Dropout  # noqa: E402
from polynn.models import Sequential  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_intra_op_thread():
    """These models are tiny, so torch's intra-op threads buy nothing; on a machine whose cores are
    busy they stall each matmul waiting for a descheduled thread (measured on 2 shared cores: one
    blog epoch, one step per call, 26.7 s with 2 threads against 1.9 s with 1). Restored afterwards."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


# ---- optimizer updates: chunks, gradients in place, the fused Adam kernel --------------------------

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


def _trained_with(monkeypatch, case, dtype, **constants):
    """Weights and optimizer state after a short fit, with polynn_torch.optimizers' `constants` set."""
    from polynn_torch import optimizers as torch_optimizers

    for name, value in constants.items():
        monkeypatch.setattr(torch_optimizers, name, value)
    x, y = regression_data()
    model = mlp(3)()
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
    x, y = regression_data()
    ref, got = train_both("torch", mlp(3), dict(optimizer=OPTIMIZER_CASES[case], loss="mse"), (x, y),
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
    x, y = regression_data()
    model = mlp(3)()
    model.compile(optimizer="adam", loss="mse", backend="torch", seed=11)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    assert len(calls) == -(-len(x) // BATCH)


# ---- devices and data ------------------------------------------------------------------------


def test_missing_cuda_device_is_refused_naming_it():
    from polynn.errors import InvalidArgumentError

    model = mlp(3)()
    if torch.cuda.is_available():
        device = f"cuda:{torch.cuda.device_count()}"
        with pytest.raises(InvalidArgumentError, match=f"device='{device}'"):
            model.compile(loss="mse", backend="torch", device=device)
    else:
        for device in ("cuda", "cuda:1"):
            with pytest.raises(InvalidArgumentError, match=f"device='{device}'.*no CUDA device"):
                model.compile(loss="mse", backend="torch", device=device)


@pytest.mark.parametrize("device", ["mps", "cuda:x", 3])
def test_other_unknown_devices_are_refused(device):
    """Beyond the unknown name every engine refuses (test_engines.py): another torch device type, a
    malformed CUDA index, a number."""
    from polynn.errors import InvalidArgumentError

    model = mlp(3)()
    with pytest.raises(InvalidArgumentError, match=r"device=.*'cpu', 'cuda' or 'cuda:N'"):
        model.compile(loss="mse", backend="torch", device=device)


def test_the_default_device_and_the_cpu_by_name_are_torch_cpu():
    for device in (None, "cpu"):
        model = mlp(3)()
        model.compile(loss="mse", backend="torch", device=device)
        assert model._compiled.runtime.device == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_agrees_with_numpy():
    ref = run_blog("numpy", "float64", True, 1000, 300)
    got = run_blog("torch", "float64", True, 1000, 300, device="cuda")
    assert_same_training(ref, got)
    np.testing.assert_allclose(got["predictions"], ref["predictions"], rtol=0, atol=1e-9)


def test_cpu_data_shares_a_writable_arrays_memory_and_fit_leaves_it_unchanged():
    """On the CPU the data tensors are the arrays' own memory (no second training set); a read-only
    array is copied instead of aliased without a warning; fit, evaluate and predict leave x and y
    as they were, and train as a copy would."""
    import warnings

    x, y = regression_data()
    model = mlp(3)()
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
    reference = mlp(3)()
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


# ---- polynn.ops on torch -----------------------------------------------------------------------


def test_custom_activation_is_the_builtin_mish_on_torch():
    from polynn import activations, plugins

    torch_backend = plugins.get_backend("torch")
    x = torch.tensor(OP_GRID.reshape(-1), requires_grad=True)
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


# ---- snapshots for going back ------------------------------------------------------------------


@pytest.mark.parametrize("device_type", ["cpu", "cuda"])
def test_snapshots_copy_on_the_cpu_and_to_the_host_from_a_device(device_type):
    """On a GPU the snapshot goes to host memory (the device's is the scarce one); either way
    restore() gives back the state bit for bit. "cuda" is simulated: only the device's type is read."""
    model = Sequential([Dense(8, input_dim=4, activation="relu"), Dense(1)])
    model.compile(optimizers.Adam(0.01), "mse", backend="torch", dtype="float64", seed=2)
    x = np.random.default_rng(0).normal(size=(32, 4))
    model.fit(x, x[:, :1], batch_size=8, epochs=1, verbose=0)
    runtime = model._compiled.runtime
    if device_type == "cuda":
        runtime.device = type("FakeDevice", (), {"type": "cuda"})()
    before = runtime.get_weights(), runtime.get_optimizer_state()
    snapshot = runtime.snapshot()
    kind = np.ndarray if device_type == "cuda" else torch.Tensor
    assert all(isinstance(a, kind) for a in snapshot[0])
    runtime.device = torch.device("cpu")
    model.fit(x, x[:, :1], batch_size=8, epochs=1, verbose=0)
    if device_type == "cuda":
        runtime.device = type("FakeDevice", (), {"type": "cuda"})()
    runtime.restore(snapshot)
    runtime.device = torch.device("cpu")
    for got, want in zip(runtime.get_weights(), before[0]):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(runtime.get_optimizer_state(), before[1]):
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
