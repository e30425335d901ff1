"""The torch backend's data-parallel training: N processes over gloo on 127.0.0.1 compute the numbers of one."""

from __future__ import annotations

import runpy
import sys
import textwrap

import numpy as np
import pytest
from replica_checks import assert_close, assert_float32_job_matches, assert_ranks_identical, weight_names

import polynn
from polynn import _custom, distribution, errors
from polynn._launch import launch
from polynn.conformance.tolerances import STRICT
from polynn.distribution import Communicator, Replica
from polynn.layers import Dense
from polynn.models import Sequential

torch = pytest.importorskip("torch")

from polynn_torch.backend import resolve_device  # noqa: E402 (after the skip: it imports torch)

WORKER = [sys.executable, "-m", "polynn.conformance.replica_worker"]
TIMEOUT = 180


def _launch(argv: list[str], world_size: int) -> None:
    for finished in launch(argv, world_size, timeout=TIMEOUT):
        assert finished.returncode == 0, (f"rank {finished.rank} of {world_size} ended with "
                                          f"{finished.returncode}:\n{finished.stderr[-4000:]}")


@pytest.fixture(scope="module")
def worker_runs(tmp_path_factory):
    """run(backend, dtype, world_size): every rank's observations (replica_worker's rank<R>.npz),
    each job launched once per module."""
    done: dict[tuple[str, str, int], list[dict[str, np.ndarray]]] = {}

    def run(backend: str, dtype: str, world_size: int) -> list[dict[str, np.ndarray]]:
        key = (backend, dtype, world_size)
        if key not in done:
            out = tmp_path_factory.mktemp(f"{backend}-{dtype}-{world_size}")
            _launch([*WORKER, "--backend", backend, "--dtype", dtype, "--out", str(out)], world_size)
            done[key] = [dict(np.load(out / f"rank{rank}.npz")) for rank in range(world_size)]
        return done[key]

    return run


def test_two_processes_train_as_one_in_float64(worker_runs):
    (one,) = worker_runs("torch", "float64", 1)
    two = worker_runs("torch", "float64", 2)
    assert_ranks_identical(two)
    assert two[0].keys() == one.keys() and one["step_loss_means"].size > 0
    names = [name for name in one if name.startswith("history.")] + ["step_loss_means"] + weight_names(one)
    assert_close(two[0], one, names, rtol=0.0, atol=1e-12)
    assert two[0]["iterations"] == one["iterations"]


def test_two_processes_train_as_one_in_float32(worker_runs):
    (one,) = worker_runs("torch", "float32", 1)
    two = worker_runs("torch", "float32", 2)
    assert_float32_job_matches(two, one)


def test_two_torch_processes_train_as_one_numpy_process(worker_runs):
    (numpy_run,) = worker_runs("numpy", "float64", 1)
    two = worker_runs("torch", "float64", 2)
    assert two[0].keys() == numpy_run.keys()
    names = [name for name in numpy_run if name.startswith("history.")] + ["step_loss_means"] + weight_names(numpy_run)
    assert_close(two[0], numpy_run, names, STRICT.rtol, STRICT.atol)


# 9 samples in batches of 4: the last batch has 1 row, so on 2 processes rank 1 has none of it.
ZERO_ROWS_SCRIPT = textwrap.dedent('''
    import sys

    import numpy as np

    from polynn import distribution
    from polynn.layers import Dense, Dropout, Input
    from polynn.models import Sequential


    def train(strategy):
        rng = np.random.RandomState(3)
        x, y, w = rng.random_sample((9, 3)), rng.randint(2, size=(9, 1)).astype(float), rng.random_sample(9)
        model = Sequential([Input((3,)), Dense(5, activation="relu", kernel_regularizer="l2",
                                               activity_regularizer="l1"),
                            Dropout(0.3), Dense(1, activation="sigmoid")])
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"],
                      weighted_metrics=["auc"], backend="torch", dtype="float64", seed=11,
                      distribution=strategy)
        history = model.fit(x, y, sample_weight=w, batch_size=4, epochs=2, verbose=0)
        observed = {f"history.{k}": np.asarray(v) for k, v in history.history.items()}
        observed.update({f"weight.{k}": w for k, w in enumerate(model.get_weights())})
        return observed


    if __name__ == "__main__":
        distribution.initialize()
        try:
            np.savez(f"{sys.argv[1]}/rank{distribution.rank()}.npz", **train("data_parallel"))
        finally:
            distribution.shutdown()
''')


@pytest.fixture
def leave_job():
    """The in-process tests' job of one process, left afterwards."""
    yield
    distribution.shutdown()


def _script(tmp_path):
    script = tmp_path / "zero_rows.py"
    script.write_text(ZERO_ROWS_SCRIPT)
    return script


def test_a_process_without_rows_in_a_batch_still_joins_its_step(tmp_path):
    script = _script(tmp_path)
    _launch([sys.executable, str(script), str(tmp_path)], 2)
    ranks = [dict(np.load(tmp_path / f"rank{rank}.npz")) for rank in range(2)]
    assert_ranks_identical(ranks)
    alone = runpy.run_path(str(script))["train"](None)
    assert ranks[0].keys() == alone.keys()
    assert_close(ranks[0], alone, sorted(alone), rtol=0.0, atol=1e-12)


def test_data_parallel_in_one_process_trains_as_the_plain_step(tmp_path, leave_job):
    """A job of one process (no launcher) takes the data-parallel step on the single process's
    communicator: the same numbers as the plain step, divisors and penalties included."""
    train = runpy.run_path(str(_script(tmp_path)))["train"]
    plain, replicated = train(None), train("data_parallel")
    assert plain.keys() == replicated.keys()
    assert_close(replicated, plain, sorted(plain), rtol=0.0, atol=1e-12)


def test_a_loss_with_one_value_per_batch_is_refused(leave_job):
    @polynn.register("distributed_torch_test_batch_mean")
    def batch_mean(y_true, y_pred):
        return polynn.ops.mean(y_pred - y_true)

    try:
        model = Sequential([Dense(1, input_dim=3)])
        model.compile(optimizer="sgd", loss=batch_mean, backend="torch", distribution="data_parallel")
        with pytest.raises(errors.DistributionError,
                           match=r"gives one value for the whole batch.*needs one value per sample"):
            model.fit(np.ones((4, 3)), np.ones((4, 1)), batch_size=2, verbose=0)
    finally:
        _custom.unregister("distributed_torch_test_batch_mean")


class _FakeCommunicator(Communicator):
    """Rank 1 of 2 on a machine with two processes (never asked to communicate)."""

    engine = "torch"

    def __init__(self):
        super().__init__(rank=1, world_size=2, local_rank=1)

    def all_reduce_sum(self, array):
        raise AssertionError("resolving a device communicates nothing")


def _cuda_devices(monkeypatch, count):
    """This machine seen with `count` CUDA devices (resolving a device only counts them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_cuda_under_data_parallel_is_the_gpu_of_the_local_rank(monkeypatch):
    replica = Replica(_FakeCommunicator())  # local rank 1
    assert resolve_device("cpu", replica) == torch.device("cpu")
    _cuda_devices(monkeypatch, 3)
    assert resolve_device("cuda", replica) == torch.device("cuda", 1)
    assert resolve_device("cuda:0", replica) == torch.device("cuda", 0)  # "cuda:N" as given
    assert resolve_device("cuda") == torch.device("cuda", 0)  # one process: the first


def test_a_process_that_sees_one_gpu_takes_it(monkeypatch):
    """A launcher that gives each process its own GPU (CUDA_VISIBLE_DEVICES) leaves it cuda:0."""
    _cuda_devices(monkeypatch, 1)
    assert resolve_device("cuda", Replica(_FakeCommunicator())) == torch.device("cuda", 0)
    with pytest.raises(errors.InvalidArgumentError, match=r"device='cuda:1'.*1 CUDA device: cuda:0"):
        resolve_device("cuda:1", Replica(_FakeCommunicator()))


def test_an_absent_gpu_is_refused_naming_what_is_present(monkeypatch):
    _cuda_devices(monkeypatch, 0)
    with pytest.raises(errors.InvalidArgumentError,
                       match=r"device='cuda'.*no CUDA device; under data-parallel training 'cuda' means "
                             r"cuda:LOCAL_RANK, here cuda:1"):
        resolve_device("cuda", Replica(_FakeCommunicator()))
    with pytest.raises(errors.InvalidArgumentError, match=r"device='cuda:0'.*'cpu' \(this machine has no CUDA"):
        resolve_device("cuda:0")
