"""Data-parallel training: N processes give the numbers of one (NumPy backend; in threads, then in real processes)."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import polynn
from polynn import _rewind, distribution, plugins
from polynn._launch import job_environment, launch
from polynn.callbacks import CSVLogger
from polynn.distribution import Communicator, DataParallel
from polynn.errors import DistributionError, InvalidArgumentError, NonFiniteLossError
from polynn.layers import Dense, Dropout, Input

ROOT = Path(__file__).resolve().parents[1]
EXACT = 1e-12  # float64: N processes against one (the contract); measured deviations are ~1e-16


# ---- N replicas in one process: a communicator over threads ---------------------------------------


class _Group:
    def __init__(self, size: int, timeout: float = 60) -> None:
        self.size = size
        self.barrier = threading.Barrier(size, timeout=timeout)
        self.slots: list[np.ndarray | None] = [None] * size
        self.calls = 0


class ThreadCommunicator(Communicator):
    """Sums in rank order, so every replica gets the same bits (as the engines' all-reduces give)."""

    engine = "threads"

    def __init__(self, group: _Group, rank: int) -> None:
        super().__init__(rank, group.size, rank)
        self.group = group

    def all_reduce_sum(self, array: np.ndarray) -> None:
        group = self.group
        group.slots[self.rank] = array.copy()
        group.barrier.wait()
        total = group.slots[0].copy()
        for part in group.slots[1:]:
            total += part
        if self.rank == 0:
            group.calls += 1
        group.barrier.wait()
        array[...] = total


def run_replicas(size: int, work, timeout: float = 60):
    """work(rank, DataParallel) in `size` threads; their results in rank order (an error re-raised).
    timeout: seconds a collective waits for the other threads."""
    group = _Group(size, timeout)
    results: list = [None] * size
    errors: list = [None] * size

    def target(rank: int) -> None:
        try:
            results[rank] = work(rank, DataParallel(ThreadCommunicator(group, rank)))
        except BaseException as error:  # noqa: BLE001 (re-raised below)
            errors[rank] = error
            group.barrier.abort()

    threads = [threading.Thread(target=target, args=(rank,)) for rank in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    if any(errors):
        raise next(e for e in errors if e is not None)
    return results


def _data(n=50, features=6, outputs=1, seed=0, rows_shape=None):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *(rows_shape or ()), features))
    y = (rng.random(size=(n, *(rows_shape or ()), outputs)) > 0.5).astype(np.float64)
    return x, y, rng.random(n) * 2


def _model(features=6, outputs=1, dropout=(0.3, None), activation="sigmoid", rows_shape=None, regularize=True):
    rate, noise_shape = dropout
    return polynn.Sequential([
        Input((*(rows_shape or ()), features)),
        Dense(8, activation="relu", kernel_regularizer="l2" if regularize else None,
              activity_regularizer="l1" if regularize else None, bias_constraint="max_norm"),
        Dropout(rate, noise_shape=noise_shape),
        Dense(outputs, activation=activation),
    ])


def _train(distribution_arg, *, loss="binary_crossentropy", batch_size=7, epochs=2, weights=True, model_kw=None,
           data_kw=None, metrics=("accuracy",), weighted=("auc", "precision"), optimizer="adam", fit_kw=None,
           backend="numpy"):
    x, y, sw = _data(**(data_kw or {}))
    m = _model(**(model_kw or {}))
    m.compile(optimizer=optimizer, loss=loss, metrics=list(metrics), weighted_metrics=list(weighted),
              dtype="float64", seed=11, distribution=distribution_arg, backend=backend)
    h = m.fit(x, y, sample_weight=sw if weights else None, batch_size=batch_size, epochs=epochs, verbose=0,
              **(fit_kw or {}))
    return h.history, m.get_weights(), m


def _assert_same(reference, replicas):
    history, weights, _ = reference
    for rank_history, rank_weights, _ in replicas:
        assert rank_history.keys() == history.keys()
        for key in history:
            np.testing.assert_allclose(rank_history[key], history[key], rtol=0, atol=EXACT, err_msg=key)
        for a, b in zip(rank_weights, weights):
            np.testing.assert_allclose(a, b, rtol=0, atol=EXACT)
    first = replicas[0][1]
    for _, rank_weights, _ in replicas[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(rank_weights, first)), "replicas differ bitwise"


# The backends that train on any communicator (TensorFlow's runs inside its own engine's strategy).
THREAD_BACKENDS = ["numpy", pytest.param("torch", marks=pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="torch is not installed"))]


@pytest.mark.parametrize("backend", THREAD_BACKENDS)
@pytest.mark.parametrize("size", [2, 3])
@pytest.mark.parametrize("batch_size", [7, 17, 49])  # 50 samples: last batches of 1, 16 and 1 rows
def test_replicas_equal_one_process(size, batch_size, backend):
    """Uneven slices, and ranks with no rows at all in a short last batch, still give one process's numbers."""
    reference = _train(None, batch_size=batch_size, backend=backend)
    _assert_same(reference, run_replicas(size, lambda rank, dp: _train(dp, batch_size=batch_size, backend=backend)))


@pytest.mark.parametrize("backend", THREAD_BACKENDS)
@pytest.mark.parametrize("loss", ["mse", "binary_crossentropy"])
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight"])
@pytest.mark.parametrize("weights", [True, False])
def test_every_reduction_with_and_without_sample_weights(loss, reduction, weights, backend):
    spec = polynn.losses.get({"class_name": loss, "config": {"reduction": reduction}})
    reference = _train(None, loss=spec, weights=weights, backend=backend)
    _assert_same(reference, run_replicas(2, lambda rank, dp: _train(dp, loss=spec, weights=weights, backend=backend)))


@pytest.mark.parametrize("backend", THREAD_BACKENDS)
def test_several_loss_values_per_sample_divide_by_the_global_count(backend):
    """Per-sample outputs of shape (4, 2): mse gives 4 values a sample, and the divisor counts them all."""
    kw = {"model_kw": {"rows_shape": (4,), "outputs": 2}, "data_kw": {"rows_shape": (4,), "outputs": 2},
          "loss": "mse", "weighted": (), "metrics": ("mae",), "backend": backend}
    reference = _train(None, **kw)
    _assert_same(reference, run_replicas(2, lambda rank, dp: _train(dp, **kw)))


@pytest.mark.parametrize("backend", THREAD_BACKENDS)
@pytest.mark.parametrize("noise_shape", [(None, 1), (1, None)])
def test_dropout_masks_broadcast_over_the_batch_or_per_row(noise_shape, backend):
    kw = {"model_kw": {"dropout": (0.4, noise_shape)}, "backend": backend}
    reference = _train(None, **kw)
    _assert_same(reference, run_replicas(2, lambda rank, dp: _train(dp, **kw)))


def test_an_all_zero_weight_batch_gives_zero_loss_not_nan():
    x, y, sw = _data()
    sw[:25] = 0.0  # whole batches of weight 0

    def train(dp):
        m = _model()
        m.compile(optimizer="sgd", loss=polynn.losses.BinaryCrossentropy(reduction="mean_with_sample_weight"),
                  dtype="float64", seed=3, distribution=dp)
        h = m.fit(x, y, sample_weight=sw, batch_size=5, epochs=1, shuffle=False, verbose=0)
        return h.history, m.get_weights(), m

    reference = train(None)
    assert np.isfinite(reference[0]["loss"]).all()
    _assert_same(reference, run_replicas(2, lambda rank, dp: train(dp)))


def test_class_weights_validation_and_callbacks_agree_on_every_rank():
    x, y, _ = _data(n=60)

    def train(dp):
        m = _model()
        m.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"], dtype="float64", seed=5,
                  distribution=dp)
        stop = polynn.callbacks.EarlyStopping(monitor="val_loss", patience=0, min_delta=1.0)
        h = m.fit(x, y, class_weight={0: 0.3, 1: 2.0}, batch_size=9, epochs=5, validation_split=0.25, verbose=0,
                  callbacks=[stop, polynn.callbacks.ReduceLROnPlateau(patience=0, min_delta=1.0)])
        return h.history, m.get_weights(), m

    reference = train(None)
    replicas = run_replicas(2, lambda rank, dp: train(dp))
    _assert_same(reference, replicas)
    assert len(reference[0]["loss"]) < 5  # EarlyStopping stopped, at the same epoch everywhere


@pytest.mark.parametrize("backend", THREAD_BACKENDS)
@pytest.mark.parametrize("policy", ["stop", "raise"])
def test_a_nonfinite_loss_goes_back_in_lock_step_whatever_each_clock_says(monkeypatch, backend, policy):
    """Going back to the last finite step replays blocks, each with its all-reduces. fit's snapshots
    are timed by each process's clock: the processes must still replay the same blocks (here rank
    0's clock makes a snapshot due after every block, rank 1's never), else their collectives pair
    steps that differ and the job hangs."""
    original = _rewind.Rewind.after_block

    def after_block(self, rows, first, learning_rate, seconds):
        replica = getattr(self.runtime, "replica", None)
        clock = seconds if replica is None else (float("inf") if replica.rank == 0 else 0.0)
        original(self, rows, first, learning_rate, clock)

    monkeypatch.setattr(_rewind.Rewind, "after_block", after_block)
    x, y, _ = _data(n=200)

    def train(dp):
        m = polynn.Sequential([Input((6,)), Dense(8), Dense(1)])
        m.compile(optimizer=polynn.optimizers.SGD(learning_rate=0.5), loss="mse", dtype="float64", seed=1,
                  steps_per_execution=1, nonfinite_loss=policy, distribution=dp, backend=backend)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # overflow on the way to an infinite loss
            try:
                h = m.fit(x, y, batch_size=10, epochs=3, verbose=0).history
            except NonFiniteLossError:
                h = {}
        return h, m.get_weights(), m

    reference = train(None)
    assert 0 < reference[2].iterations < 20  # the loss turned non-finite in the first epoch
    replicas = run_replicas(2, lambda rank, dp: train(dp), timeout=10)
    assert [r[2].iterations for r in replicas] == [reference[2].iterations] * 2
    assert all(np.array_equal(a, b) for a, b in zip(replicas[0][1], replicas[1][1])), "replicas differ bitwise"
    # Relative: the last kept step's values are near overflow (1e115), where 1e-12 absolute is below an ulp.
    for history, weights, _ in replicas:
        assert history.keys() == reference[0].keys()
        for key in history:
            np.testing.assert_allclose(history[key], reference[0][key], rtol=1e-12, atol=0, err_msg=key)
        for a, b in zip(weights, reference[1]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=EXACT)


def test_the_seed_is_rank_zeros_when_none_is_given():
    def train(rank, dp):
        m = _model()
        m.compile(optimizer="adam", loss="mse", dtype="float64", distribution=dp)  # a random seed per process
        return m._compiled.seed, m.get_weights()

    (seed0, w0), (seed1, w1) = run_replicas(2, train)
    assert seed0 == seed1
    assert all(np.array_equal(a, b) for a, b in zip(w0, w1))


def test_rank_zeros_weights_are_taken_before_the_first_step():
    x, y, _ = _data()

    def train(rank, dp):
        m = _model()
        m.compile(optimizer="adam", loss="mse", dtype="float64", seed=2, distribution=dp)
        if rank == 1:
            m.set_weights([w + 1.0 for w in m.get_weights()])  # rank 1 alone changes its weights
        m.fit(x, y, batch_size=10, epochs=1, verbose=0)
        return m.get_weights(), m.iterations

    (w0, it0), (w1, it1) = run_replicas(2, train)
    assert it0 == it1 == 5
    assert all(np.array_equal(a, b) for a, b in zip(w0, w1))


@pytest.mark.parametrize("change", ["data", "batch_size", "epochs", "model", "labels"])
def test_processes_that_differ_are_refused_on_every_rank(change):
    x, y, _ = _data()

    def train(rank, dp):
        m = _model(outputs=1) if not (change == "model" and rank == 1) else _model(outputs=1, activation="tanh")
        m.compile(optimizer="adam", loss="mse", dtype="float64", seed=2, distribution=dp)
        xs, ys = x.copy(), y.copy()
        if rank == 1 and change == "data":
            xs[3, 2] += 1e-9
        if rank == 1 and change == "labels":
            ys = ys[:-1]
            xs = xs[:-1]
        kw = {"batch_size": 10 + (rank if change == "batch_size" else 0),
              "epochs": 1 + (rank if change == "epochs" else 0)}
        try:
            m.fit(xs, ys, verbose=0, **kw)
        except DistributionError as error:
            return str(error), m.iterations
        return None, m.iterations

    results = run_replicas(2, train)
    for message, iterations in results:
        assert message is not None and "differ" in message, message
        assert iterations == 0
    named = {"data": "x values", "batch_size": "batch_size", "epochs": "epochs", "model": "model",
             "labels": "data length"}[change]
    assert named in results[1][0]
    if change == "batch_size":
        assert "rank 0 has 10" in results[1][0]


def test_a_batch_callback_on_one_rank_only_is_refused():
    """It makes that rank run one step per backend call, so the ranks' blocks (each ending with a
    collective) would no longer match."""
    x, y, _ = _data()

    def train(rank, dp):
        m = _model()
        m.compile(optimizer="adam", loss="mse", dtype="float64", seed=2, distribution=dp)
        batch_logger = polynn.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: None)
        with pytest.raises(DistributionError, match=r"differ in training steps per backend call") as refused:
            m.fit(x, y, batch_size=10, epochs=1, verbose=0, callbacks=[batch_logger] if rank == 1 else [])
        return m.iterations, str(refused.value)

    (iterations0, _), (iterations1, message1) = run_replicas(2, train)
    assert iterations0 == iterations1 == 0
    assert "this process (rank 1) has 1, rank 0 has 5" in message1


@pytest.mark.parametrize("writer", ["ModelCheckpoint", "CSVLogger"])
def test_a_file_writing_callback_on_rank_zero_only_is_refused(tmp_path, writer):
    """ModelCheckpoint and CSVLogger hold every process while rank 0 writes (a collective): given
    to rank 0 alone (a habit from other libraries), rank 0's wait would pair with another step's
    all-reduce on the other ranks (gloo aborts the process on the size mismatch)."""
    x, y, _ = _data()

    def train(rank, dp):
        m = _model()
        m.compile(optimizer="adam", loss="mse", dtype="float64", seed=2, distribution=dp)
        made = {"ModelCheckpoint": lambda: polynn.callbacks.ModelCheckpoint(tmp_path / "m.polynn", monitor="loss"),
                "CSVLogger": lambda: CSVLogger(tmp_path / "log.csv")}[writer]
        with pytest.raises(DistributionError, match="differ in callbacks that write on rank 0") as refused:
            m.fit(x, y, batch_size=10, epochs=2, verbose=0, callbacks=[made()] if rank == 0 else [])
        return m.iterations, str(refused.value)

    (iterations0, _), (iterations1, message1) = run_replicas(2, train, timeout=10)
    assert iterations0 == iterations1 == 0
    assert "this process (rank 1) has ()" in message1
    assert list(tmp_path.iterdir()) == []


class _SquaredError:
    """A loss given as a callable object (not a function): compile() takes it as a function."""

    def __call__(self, y_true, y_pred):
        return polynn.ops.mean(polynn.ops.square(y_true - y_pred), axis=-1)


def test_a_callable_object_loss_trains_data_parallel():
    """fit's check that the processes have the same model describes a component it cannot save
    by its fields, naming functions; a callable object is named by its class."""
    reference = _train(None, loss=_SquaredError(), weighted=())
    _assert_same(reference, run_replicas(2, lambda rank, dp: _train(dp, loss=_SquaredError(), weighted=()),
                                         timeout=10))


def test_a_loss_with_one_value_per_batch_is_refused():
    def batch_loss(y, p):
        return polynn.ops.mean(polynn.ops.square(y - p))

    def train(rank, dp):
        x, y, _ = _data()
        m = _model()
        m.compile(optimizer="sgd", loss=batch_loss, dtype="float64", seed=1, distribution=dp)
        with pytest.raises(DistributionError, match="one value for the whole batch"):
            m.fit(x, y, batch_size=10, epochs=1, verbose=0)
        return m.iterations

    assert run_replicas(2, train) == [0, 0]


def test_only_rank_zero_writes_files(tmp_path):
    x, y, _ = _data()

    def train(rank, dp):
        m = _model()
        m.compile(optimizer="adam", loss="mse", dtype="float64", seed=2, distribution=dp)
        log = tmp_path / f"log{rank}.csv"  # a path per rank shows who wrote
        checkpoint = polynn.callbacks.ModelCheckpoint(tmp_path / f"checkpoints{rank}" / "m.polynn", monitor="loss")
        m.fit(x, y, batch_size=10, epochs=2, verbose=0, callbacks=[CSVLogger(log), checkpoint])
        m.save(tmp_path / f"model{rank}.polynn")
        m.save_weights(tmp_path / f"w{rank}.safetensors")
        return log.exists()

    assert run_replicas(2, train) == [True, False]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints0", "log0.csv", "model0.polynn",
                                                          "w0.safetensors"]
    assert [p.name for p in (tmp_path / "checkpoints0").iterdir()] == ["m.polynn"]
    assert len((tmp_path / "log0.csv").read_text().splitlines()) == 3


def test_callbacks_print_their_messages_once(capsys):
    x, y, _ = _data()

    def train(rank, dp):
        m = _model()
        m.compile(optimizer="adam", loss="mse", dtype="float64", seed=2, distribution=dp)
        callbacks = [polynn.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0, verbose=1),
                     polynn.callbacks.ReduceLROnPlateau(monitor="loss", patience=0, min_delta=10.0, verbose=1)]
        m.fit(x, y, batch_size=10, epochs=3, verbose=0, callbacks=callbacks)

    run_replicas(2, train)
    out = capsys.readouterr().out
    assert out.count("early stopping") == 1 and out.count("ReduceLROnPlateau reducing") == 1, out


def test_a_failed_save_on_rank_zero_is_reported_on_every_rank(tmp_path):
    def train(rank, dp):
        m = _model()
        m.compile(optimizer="adam", loss="mse", dtype="float64", seed=2, distribution=dp)
        m.build((6,))
        try:
            m.save(tmp_path / "missing-folder" / "m.polynn")
        except Exception as error:  # noqa: BLE001 (the type is the assertion)
            return type(error).__name__, str(error)
        return None

    (kind0, _), (kind1, text1) = run_replicas(2, train)
    assert kind0 == "InvalidArgumentError"
    assert kind1 == "DistributionError" and "rank 0 failed to save the model" in text1


# ---- compile(): what is accepted and refused ------------------------------------------------------


def test_auto_is_one_process_when_launched_alone(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "TF_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    m = _model()
    m.compile(loss="mse", distribution="auto")
    assert m._compiled.distribution is None


def test_auto_is_one_process_after_initialize_in_a_lone_process(monkeypatch):
    """initialize() in a process launched alone joins a job of one: "auto" stays one process, so a
    backend without data-parallel training is not refused and the plain step trains."""
    for name in ("RANK", "WORLD_SIZE", "TF_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(plugins, "backend_distributions", lambda name: ())
    distribution.initialize()
    try:
        assert distribution.world_size() == 1
        m = _model()
        m.compile(loss="mse", distribution="auto")
        assert m._compiled.distribution is None
    finally:
        distribution.shutdown()


@pytest.mark.parametrize("value", ["model_parallel", 2, DataParallel])
def test_unknown_distributions_are_refused(value):
    m = _model()
    with pytest.raises(InvalidArgumentError, match="'auto', 'data_parallel'"):
        m.compile(loss="mse", distribution=value)
    assert not m.compiled


def test_a_backend_that_declares_no_distribution_is_refused(monkeypatch):
    monkeypatch.setattr(plugins, "backend_distributions", lambda name: ())
    m = _model()
    with pytest.raises(InvalidArgumentError, match="does not train data-parallel"):
        m.compile(loss="mse", distribution=DataParallel(ThreadCommunicator(_Group(1), 0)))
    assert not m.compiled


def test_a_backend_on_another_engine_is_refused():
    class Other(ThreadCommunicator):
        engine = "other"

    backend = plugins.get_backend("numpy")
    m = _model()
    try:
        type(backend).distribution_engines = ("torch",)
        with pytest.raises(InvalidArgumentError, match="on the other engine"):
            m.compile(loss="mse", distribution=DataParallel(Other(_Group(1), 0)))
    finally:
        del type(backend).distribution_engines


def test_a_single_process_job_trains_as_without_distribution():
    reference = _train(None)
    _assert_same(reference, [_train("data_parallel")])


def test_a_failed_shutdown_still_leaves_the_job():
    """A peer gone before shutdown()'s barrier: the error is raised, the engine released, and this
    process is out of the job (not holding a closed communicator that says it is initialised)."""
    closed = []

    class Broken(ThreadCommunicator):
        def all_reduce_sum(self, array):
            raise ConnectionResetError("peer gone")

        def close(self):
            closed.append(True)

    distribution.shutdown()  # out of the one-process job an earlier test joined
    distribution.initialize(communicator=Broken(_Group(2), 0))
    with pytest.raises(DistributionError, match="barrier of shutdown"):
        distribution.shutdown()
    assert closed == [True]
    assert not distribution.is_initialized() and distribution.communicator() is None


def test_launched_processes_training_alone_are_warned(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(distribution._state, "warned_unused", False)
    with pytest.warns(RuntimeWarning, match="one of 2 launched together"):
        _model().compile(loss="mse")


# ---- the launcher's environment -------------------------------------------------------------------


def _cluster(monkeypatch, **env):
    for name in ("TF_CONFIG", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
                 "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "PMI_RANK", "PMI_SIZE",
                 "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "PMIX_RANK", "MPI_LOCALRANKID",
                 "POLYNN_DISTRIBUTION_JOB_ADDRESSES", "POLYNN_DISTRIBUTION_NUM_PROCESSES",
                 "POLYNN_DISTRIBUTION_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return distribution._environment_cluster(None, None, None, 30.0)


def test_a_plain_process_in_a_slurm_allocation_is_alone(monkeypatch):
    """Slurm sets SLURM_PROCID and SLURM_NTASKS for any process in an allocation: no job of several."""
    assert _cluster(monkeypatch, SLURM_PROCID="0", SLURM_NTASKS="4", SLURM_LOCALID="0").world_size == 1


def test_torchrun_mpi_and_tf_config_environments_are_read(monkeypatch):
    c = _cluster(monkeypatch, RANK="1", WORLD_SIZE="2", LOCAL_RANK="1", MASTER_ADDR="127.0.0.1", MASTER_PORT="29500")
    assert (c.rank, c.world_size, c.local_rank, c.coordinator, c.source) == (1, 2, 1, "127.0.0.1:29500", "torchrun")
    c = _cluster(monkeypatch, OMPI_COMM_WORLD_RANK="2", OMPI_COMM_WORLD_SIZE="4", OMPI_COMM_WORLD_LOCAL_RANK="0",
                 MASTER_ADDR="127.0.0.1", MASTER_PORT="1")
    assert (c.rank, c.world_size, c.local_rank, c.source) == (2, 4, 0, "OMPI")
    config = {"cluster": {"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2", "127.0.0.1:3"]},
              "task": {"type": "worker", "index": 1}}
    c = _cluster(monkeypatch, TF_CONFIG=json.dumps(config))
    assert (c.rank, c.world_size, c.workers) == (2, 3, ("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"))
    assert _cluster(monkeypatch).world_size == 1
    c = _cluster(monkeypatch, POLYNN_DISTRIBUTION_JOB_ADDRESSES="127.0.0.1:5", POLYNN_DISTRIBUTION_NUM_PROCESSES="2",
                 POLYNN_DISTRIBUTION_PROCESS_ID="1")
    assert (c.rank, c.world_size, c.coordinator) == (1, 2, "127.0.0.1:5")


@pytest.mark.parametrize("env, message", [
    ({"RANK": "0", "WORLD_SIZE": "2"}, "MASTER_ADDR and MASTER_PORT"),
    ({"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}, "0 <= rank < size"),
    ({"RANK": "x", "WORLD_SIZE": "2"}, "RANK='x' is not an integer"),
    ({"TF_CONFIG": "{not json"}, "TF_CONFIG="),
    ({"TF_CONFIG": json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}})}, "TF_CONFIG="),
    ({"POLYNN_DISTRIBUTION_NUM_PROCESSES": "2"}, "all three"),
])
def test_environments_polynn_cannot_join_are_refused(monkeypatch, env, message):
    with pytest.raises((DistributionError, InvalidArgumentError), match=message):
        _cluster(monkeypatch, **env)


def test_shard_bounds_split_as_array_split():
    for width in range(0, 12):
        for size in range(1, 5):
            expected = [(int(part[0]), int(part[-1]) + 1) if len(part) else None
                        for part in np.array_split(np.arange(width), size)]
            got = [distribution.shard_bounds(width, rank, size) for rank in range(size)]
            assert [g if g[1] > g[0] else None for g in got] == expected
            assert sum(hi - lo for lo, hi in got) == width


# ---- real processes: torch.distributed's gloo over 127.0.0.1, launched as torchrun would -------------


# The NumPy backend's data-parallel engine is torch.distributed: without torch these are skipped.
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
WORKER = [sys.executable, "-m", "polynn.conformance.replica_worker"]
JOB = [sys.executable, str(ROOT / "tests" / "scripts" / "dp_job.py")]


def _job(argv, size, tmp_path, timeout=180):
    finished = launch(argv, size, timeout=timeout, cwd=str(ROOT))
    for f in finished:
        assert f.returncode == 0, f"rank {f.rank} exited {f.returncode}:\n{f.stderr[-3000:]}"
    return finished


def _observed(folder: Path, rank: int = 0) -> dict:
    with np.load(folder / f"rank{rank}.npz") as npz:
        return {key: npz[key] for key in npz.files}


def _compare(a: dict, b: dict, atol: float, rtol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=rtol, atol=atol, err_msg=key)


@needs_torch
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_two_processes_equal_one(tmp_path, dtype):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    _job([*WORKER, "--backend", "numpy", "--dtype", dtype, "--out", str(one)], 1, tmp_path)
    _job([*WORKER, "--backend", "numpy", "--dtype", dtype, "--out", str(two)], 2, tmp_path)
    ranks = [_observed(two, 0), _observed(two, 1)]
    for key in ranks[0]:
        assert np.array_equal(ranks[0][key], ranks[1][key]), f"{key} differs between the ranks"
    # float32: the kit's float32 scenario tolerances; the sums' order differs between 1 and 2 processes.
    _compare(ranks[0], _observed(one), atol=EXACT if dtype == "float64" else 3e-6,
             rtol=0.0 if dtype == "float64" else 2e-6)


@needs_torch
@pytest.mark.slow
@pytest.mark.parametrize("sizes", [(2, 1), (1, 2)])
def test_a_checkpoint_resumes_at_another_world_size(tmp_path, sizes):
    """Two epochs at one world size, saved by rank 0; the third at another equals three uninterrupted."""
    first, second = sizes
    whole, part = tmp_path / "whole", tmp_path / "part"
    whole.mkdir(), part.mkdir()
    checkpoint = str(tmp_path / "resume.polynn")
    _job([*WORKER, "--backend", "numpy", "--out", str(whole), "--epochs", "3"], 1, tmp_path)
    _job([*WORKER, "--backend", "numpy", "--out", str(part), "--epochs", "2", "--save", checkpoint], first, tmp_path)
    _job([*WORKER, "--backend", "numpy", "--out", str(part), "--load", checkpoint, "--epochs", "3",
          "--initial-epoch", "2"], second, tmp_path)
    resumed, uninterrupted = _observed(part), _observed(whole)
    assert int(resumed["iterations"]) == int(uninterrupted["iterations"])
    for key in resumed:
        if key.startswith("weight."):
            np.testing.assert_allclose(resumed[key], uninterrupted[key], rtol=0, atol=EXACT, err_msg=key)
    for key in ("loss", "accuracy", "auc", "val_loss"):
        np.testing.assert_allclose(resumed[f"history.{key}"], uninterrupted[f"history.{key}"][2:], rtol=0,
                                   atol=EXACT, err_msg=key)


@needs_torch
@pytest.mark.slow
@pytest.mark.parametrize("killed", [1, 0])
def test_a_killed_process_ends_the_others_with_a_polynn_error(tmp_path, killed):
    processes = [subprocess.Popen([*JOB, "long", str(tmp_path)], env=env, cwd=str(ROOT), text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for env in job_environment("torch", 2)]
    try:
        checkpoint = tmp_path / "checkpoint.polynn"
        deadline = time.monotonic() + 120
        while not checkpoint.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert checkpoint.exists(), "no checkpoint written in 120 s"
        time.sleep(0.3)  # mid-epoch
        processes[killed].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        survivor = processes[1 - killed]
        survivor.wait(timeout=60)
        took = time.monotonic() - killed_at
        _, stderr = survivor.communicate()
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
            p.wait()
    assert survivor.returncode != 0 and took < 60
    assert "polynn.errors.DistributionError" in stderr and f"on rank {1 - killed} of 2" in stderr, stderr[-2000:]
    model = polynn.load_model(checkpoint)  # whole: written beside, then renamed
    assert model.iterations > 0 and model.iterations % 500 == 0


@needs_torch
def test_a_process_that_raises_shows_its_error_and_stops_the_others(tmp_path):
    """Rank 1 raises in a callback while rank 0 trains on; rank 1's shutdown() (in a finally:) must
    not join a barrier rank 0 is not in (it paired with rank 0's gradient all-reduce: gloo aborted
    rank 1 on the size mismatch, before its own error was printed)."""
    finished = launch([*JOB, "raise", str(tmp_path)], 2, timeout=120, cwd=str(ROOT))
    rank0, rank1 = finished
    assert rank1.returncode == 1, rank1.stderr[-2000:]
    assert "ValueError: rank 1's own error, in a callback" in rank1.stderr, rank1.stderr[-2000:]
    assert rank0.returncode == 1 and "polynn.errors.DistributionError" in rank0.stderr, rank0.stderr[-2000:]
    assert "on rank 0 of 2" in rank0.stderr


@needs_torch
@pytest.mark.slow
def test_processes_with_different_data_are_refused_on_every_rank(tmp_path):
    finished = launch([*JOB, "mismatch", str(tmp_path)], 2, timeout=120, cwd=str(ROOT))
    for f in finished:
        assert f.returncode not in (0, None), f.stderr[-2000:]
        assert "DistributionError" in f.stderr and "x values" in f.stderr, f.stderr[-2000:]
    assert not (tmp_path / "checkpoint.polynn").exists()


@needs_torch
def test_only_rank_zero_prints_progress(tmp_path):
    finished = _job([*JOB, "short", str(tmp_path)], 2, tmp_path)
    assert "Epoch 1/2" in finished[0].stdout and "Epoch 2/2" in finished[0].stdout
    assert finished[1].stdout == ""
    assert polynn.load_model(tmp_path / "checkpoint.polynn").iterations == 1000


@needs_torch
def test_a_torch_distributed_group_set_up_already_is_reused(tmp_path):
    """Ray Train or the user's own script initialises torch.distributed first: polynn trains on that group."""
    finished = _job([*JOB, "own_group", str(tmp_path)], 2, tmp_path)
    for f in finished:
        assert f"polynn sees rank {f.rank} of 2" in f.stdout
    assert polynn.load_model(tmp_path / "checkpoint.polynn").iterations == 1000
