"""fit() is transactional at the step: an exception or interrupt leaves weights, optimizer slots and
iterations describing one completed step, and a model saved then resumes as an uninterrupted run."""

from __future__ import annotations

import importlib.util
import signal
import threading
import time

import numpy as np
import pytest

from polynn import _rewind, plugins
from polynn.callbacks import Callback
from polynn.layers import Dense, Dropout, Input
from polynn.models import Sequential, load_model
from polynn.optimizers import Adam


def _installed(name: str) -> bool:
    """The backend is registered and its engine importable (first-party backends register without it)."""
    engine = name != "numpy" and importlib.util.find_spec(name) is None
    return not engine and name in {entry.name for entry in plugins.backend_entries()}


BACKENDS = [pytest.param(name, marks=[pytest.mark.skipif(not _installed(name), reason=f"{name} not installed"),
                                      *([pytest.mark.slow] if name == "jax" else [])])
            for name in ("numpy", "tensorflow", "torch", "jax")]

RNG = np.random.default_rng(3)
X = RNG.normal(size=(90, 5))
Y = (X @ RNG.normal(size=(5, 1)) > 0).astype(np.float64)


def make_model(backend: str, steps_per_execution="auto") -> Sequential:
    model = Sequential([Input((5,)), Dense(8, activation="relu"), Dropout(0.25), Dense(1, activation="sigmoid")])
    model.compile(Adam(0.01), "binary_crossentropy", ["accuracy"], backend=backend, dtype="float64", seed=11,
                  steps_per_execution=steps_per_execution)
    return model


def state(model: Sequential):
    """Weights, optimizer slots and iterations: what a saved model resumes from."""
    runtime = model._compiled.runtime
    return runtime.get_weights(), runtime.get_optimizer_state(), model.iterations


def assert_same_state(got, want):
    (w1, s1, i1), (w2, s2, i2) = got, want
    assert i1 == i2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)  # the same computation: bit for bit
    for slots_a, slots_b in zip(s1, s2):
        for a, b in zip(slots_a, slots_b):
            np.testing.assert_array_equal(a, b)


class Trajectory(Callback):
    """The state after every step, from an uninterrupted run one step per call."""

    def __init__(self):
        super().__init__()
        self.states = {}

    def on_train_begin(self, logs=None):
        self.states[self.model.iterations] = state(self.model)

    def on_train_batch_end(self, batch, logs=None):
        self.states[self.model.iterations] = state(self.model)


def reference(backend: str, epochs: int) -> dict:
    trajectory = Trajectory()
    make_model(backend, 1).fit(X, Y, batch_size=10, epochs=epochs, verbose=0, callbacks=[trajectory])
    return trajectory.states


def break_train_steps(model: Sequential, after_steps: int, error: type[BaseException]):
    """Make the runtime's next train_steps call run `after_steps` of its steps, then raise: the weights
    have moved on in place and the call never returns, as when Ctrl-C lands mid-block."""
    runtime = model._compiled.runtime
    original = runtime.train_steps

    def train_steps(data, batches, masks, scalars):
        runtime.train_steps = original
        if after_steps:
            original(data, batches[:after_steps], [m[:after_steps] for m in masks],
                     {name: values[:after_steps] for name, values in scalars.items()})
        raise error("injected")

    runtime.train_steps = train_steps


@pytest.fixture(params=["snapshots", "replay"])
def going_back(request, monkeypatch):
    """How fit goes back: from a snapshot taken just before (the default for blocks this small), or
    from one taken at the start of fit, replaying every block since."""
    if request.param == "replay":
        monkeypatch.setattr(_rewind, "RATIO", float("inf"))
    return request.param


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_an_interrupt_mid_block_leaves_the_state_of_one_completed_step(backend, error, going_back):
    """Before: weights 4 steps on, iterations and optimizer state not: a saved model resumed elsewhere."""
    states = reference(backend, 2)
    model = make_model(backend, 3)
    model.fit(X, Y, batch_size=10, epochs=1, verbose=0)  # three blocks of 3 steps
    assert_same_state(state(model), states[9])
    # The first block of the next fit completes, the second is interrupted after 2 of its 3 steps.
    runtime = model._compiled.runtime
    original = runtime.train_steps

    def first_then_break(data, batches, masks, scalars):
        runtime.train_steps = original
        result = original(data, batches, masks, scalars)
        break_train_steps(model, 2, error)
        return result

    runtime.train_steps = first_then_break
    with pytest.raises(error, match="injected"):
        model.fit(X, Y, batch_size=10, epochs=2, initial_epoch=1, verbose=0)
    # The interrupted block is undone: the model is at the last completed step.
    assert_same_state(state(model), states[12])


class HalveWeightsAt(Callback):
    """A callback writing the weights between blocks: fit must not go back past its write."""

    def __init__(self, step: int):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if self.model.iterations == self.step:
            self.model.set_weights([w / 2 for w in self.model.get_weights()])


@pytest.mark.parametrize("backend", BACKENDS)
def test_going_back_never_undoes_a_callbacks_write_to_the_weights(backend, going_back):
    trajectory = Trajectory()
    make_model(backend, 1).fit(X, Y, batch_size=10, epochs=1, verbose=0, callbacks=[HalveWeightsAt(4), trajectory])
    model = make_model(backend, 1)

    class BreakAt(Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 6:
                break_train_steps(self.model, 1, KeyboardInterrupt)

    with pytest.raises(KeyboardInterrupt):
        model.fit(X, Y, batch_size=10, epochs=1, verbose=0, callbacks=[HalveWeightsAt(4), BreakAt()])
    assert_same_state(state(model), trajectory.states[6])


class OneStepOfItsOwnAt(Callback):
    """A callback training the model one step itself (polynn's train_on_batch), between fit's blocks."""

    def __init__(self, batch: int):
        super().__init__()
        self.batch = batch

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.batch:
            self.model.fit(X[:10], Y[:10], batch_size=10, epochs=1, verbose=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_going_back_never_undoes_steps_a_callback_trained(backend, going_back):
    """Found in review: the nested step moved weights and iterations, and going back dropped it."""
    trajectory = Trajectory()
    make_model(backend, 1).fit(X, Y, batch_size=10, epochs=1, verbose=0,
                               callbacks=[OneStepOfItsOwnAt(2), trajectory])

    class BreakAt(Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 5:
                break_train_steps(self.model, 1, KeyboardInterrupt)

    model = make_model(backend, 1)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, Y, batch_size=10, epochs=1, verbose=0, callbacks=[OneStepOfItsOwnAt(2), BreakAt()])
    assert model.iterations == 6  # five of fit's steps and the callback's one
    assert_same_state(state(model), trajectory.states[6])


def test_a_ctrl_c_while_a_snapshot_is_restored_waits_until_it_is_whole():
    """The copies back are never cut halfway; the interrupt comes right after them."""
    model = make_model("numpy")
    model.fit(X, Y, batch_size=10, epochs=1, verbose=0)
    runtime = model._compiled.runtime
    before = state(model)
    snapshot = runtime.snapshot()
    model.fit(X, Y, batch_size=10, epochs=2, initial_epoch=1, verbose=0)
    real_set = runtime.set_optimizer_state
    delivered = []

    def set_optimizer_state(values):
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # a Ctrl-C between the copies
        time.sleep(0.05)
        delivered.append(True)
        real_set(values)

    runtime.set_optimizer_state = set_optimizer_state
    rewind = _rewind.Rewind(runtime, None, None, lambda: 0)
    rewind.snapshot = snapshot
    with pytest.raises(KeyboardInterrupt):
        rewind.restore()
    assert delivered == [True]
    weights, slots, _ = state(model)
    assert_same_state((weights, slots, 0), (before[0], before[1], 0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_interrupted_model_saved_and_loaded_resumes_as_an_uninterrupted_run(backend, tmp_path):
    uninterrupted = make_model(backend)
    uninterrupted.fit(X, Y, batch_size=10, epochs=3, verbose=0)
    model = make_model(backend)
    model.fit(X, Y, batch_size=10, epochs=1, verbose=0)
    break_train_steps(model, 6, KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, Y, batch_size=10, epochs=3, initial_epoch=1, verbose=0)
    model.save(tmp_path / "interrupted.safetensors")
    resumed = load_model(tmp_path / "interrupted.safetensors", backend=backend)
    assert resumed.iterations == 9
    resumed.fit(X, Y, batch_size=10, epochs=3, initial_epoch=1, verbose=0)
    assert_same_state(state(resumed), state(uninterrupted))
    np.testing.assert_allclose(resumed.predict(X, verbose=0), uninterrupted.predict(X, verbose=0), rtol=1e-12,
                               atol=1e-12)


def ctrl_c_after(seconds: float) -> threading.Timer:
    """A real Ctrl-C (SIGINT to the main thread, Python's default handler) in `seconds`; join() the
    timer inside the try that catches it, so a late one still lands there."""
    main = threading.main_thread().ident
    timer = threading.Timer(seconds, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    return timer


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="POSIX signals")
@pytest.mark.parametrize("backend", [p for p in BACKENDS if p.values[0] != "jax"])
def test_real_interrupts_at_random_moments_always_leave_a_step_of_the_uninterrupted_run(backend, going_back):
    """Ctrl-C anywhere in fit (core loop, runtime, callbacks, going back itself): 25 runs."""
    SIZES = (1, 4, 9)  # steps per call: 9 is the whole epoch
    states = reference(backend, 120)
    # Warm-up: each block size traced once. An interrupt while TensorFlow traces a new graph can come
    # out of TensorFlow's own code as a SystemError or RuntimeError (its tracing is not interrupt-safe).
    for per_call in SIZES:
        make_model(backend, per_call).fit(X, Y, batch_size=10, epochs=1, verbose=0)
    started = time.perf_counter()
    make_model(backend, 4).fit(X, Y, batch_size=10, epochs=40, verbose=0)
    duration = time.perf_counter() - started  # the interrupts land within a run three times as long
    rng = np.random.default_rng(0)
    interrupted = 0
    for _ in range(25):
        model = make_model(backend, int(rng.choice(SIZES)))
        try:
            timer = ctrl_c_after(float(rng.uniform(0.05, 0.8)) * duration)
            model.fit(X, Y, batch_size=10, epochs=120, verbose=0)
            timer.cancel()
            timer.join()
        except KeyboardInterrupt:
            interrupted += 1
        assert_same_state(state(model), states[model.iterations])
    assert interrupted >= 20  # the interrupts landed inside fit, not after it


@pytest.mark.parametrize("method", ["evaluate", "predict"])
def test_an_interrupted_evaluate_or_predict_changes_nothing(method):
    model = make_model("numpy")
    model.fit(X, Y, batch_size=10, epochs=1, verbose=0)
    before = state(model)
    runtime = model._compiled.runtime
    name = "test_steps" if method == "evaluate" else "predict_steps"
    real = getattr(runtime, name)

    def interrupted(*args):
        setattr(runtime, name, real)
        real(*args)
        raise KeyboardInterrupt

    setattr(runtime, name, interrupted)
    with pytest.raises(KeyboardInterrupt):
        model.evaluate(X, Y, verbose=0) if method == "evaluate" else model.predict(X, verbose=0)
    assert_same_state(state(model), before)
    model.fit(X, Y, batch_size=10, epochs=2, initial_epoch=1, verbose=0)
    assert model.iterations == 18
