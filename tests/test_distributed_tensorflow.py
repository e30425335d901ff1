"""The TensorFlow backend's data-parallel training on MultiWorkerMirroredStrategy: jobs of 1 and 2 local
processes against each other and the NumPy reference, a killed peer, devices, and what initialize() needs."""

from __future__ import annotations

import json
import os
import pathlib
import select
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import polynn  # noqa: E402
from polynn import _custom, distribution, ops  # noqa: E402
from polynn._launch import job_environment, launch  # noqa: E402
from polynn.conformance import replica_worker  # noqa: E402
from polynn.conformance.tolerances import component, scenario  # noqa: E402
from polynn.errors import DistributionError, InvalidArgumentError  # noqa: E402
from polynn.layers import Dense, Input  # noqa: E402
from polynn.models import Sequential  # noqa: E402
from polynn_tensorflow.backend import resolve_device  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKER = str(ROOT / "tests" / "distributed_tensorflow_worker.py")
# Rounding only: N processes add the same per-row terms in another grouping.
SAME_RUN = dict(rtol=0, atol=1e-12)


def _environment() -> dict[str, str]:
    """This tree's polynn and backends for the processes, and TensorFlow's start-up chatter off."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "backends"), env.get("PYTHONPATH", "")])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _job(argv: list[str], world_size: int, out: pathlib.Path, engine: str = "tensorflow") -> list[dict]:
    """Run a job of `world_size` processes; every rank's observations (out/rank<R>.npz)."""
    out.mkdir(parents=True, exist_ok=True)
    finished = launch([sys.executable, *argv], world_size, engine=engine, timeout=240, env=_environment())
    for process in finished:
        assert process.returncode == 0, f"rank {process.rank} exited {process.returncode}:\n{process.stderr[-4000:]}"
    return [dict(np.load(out / f"rank{rank}.npz")) for rank in range(world_size)]


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    """Each job run once for the module: jobs(name, backend, world_size, dtype)."""
    done: dict[tuple, list[dict]] = {}

    def run(name: str, backend: str, world_size: int, dtype: str = "float64") -> list[dict]:
        key = (name, backend, world_size, dtype)
        if key not in done:
            out = tmp_path_factory.mktemp(f"{name}-{backend}-{world_size}-{dtype}")
            if name == "blog":
                argv = ["-m", "polynn.conformance.replica_worker", "--backend", backend, "--dtype", dtype,
                        "--out", str(out)]
            else:
                argv = [WORKER, "edge", backend, str(out)]
            # The NumPy reference runs alone: a job of one process on either engine's launcher.
            done[key] = _job(argv, world_size, out, engine="tensorflow" if backend == "tensorflow" else "torch")
        return done[key]

    return run


def _assert_close(actual: dict, reference: dict, **tolerance) -> None:
    assert sorted(actual) == sorted(reference)
    for key in reference:
        np.testing.assert_allclose(actual[key], reference[key], err_msg=key, **tolerance)


def _assert_bitwise_equal(ranks: list[dict]) -> None:
    for other in ranks[1:]:
        assert sorted(other) == sorted(ranks[0])
        for key in ranks[0]:
            np.testing.assert_array_equal(other[key], ranks[0][key], err_msg=key)


# ---- jobs of 1 and 2 processes ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["blog", "edge"])
def test_two_processes_compute_the_numbers_of_one_float64(jobs, name):
    one, two = jobs(name, "tensorflow", 1), jobs(name, "tensorflow", 2)
    _assert_bitwise_equal(two)
    _assert_close(two[0], one[0], **SAME_RUN)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["blog", "edge"])
def test_the_job_computes_the_numpy_reference_float64(jobs, name):
    reference = jobs(name, "numpy", 1)[0]
    _assert_close(jobs(name, "tensorflow", 1)[0], reference, rtol=1e-9, atol=1e-9)
    _assert_close(jobs(name, "tensorflow", 2)[0], reference, rtol=1e-9, atol=1e-9)


@pytest.mark.slow
def test_two_processes_compute_the_numbers_of_one_float32(jobs):
    one, two = jobs("blog", "tensorflow", 1, "float32"), jobs("blog", "tensorflow", 2, "float32")
    _assert_bitwise_equal(two)
    tolerances = scenario("float32")
    metrics = component("float32", "metric", ["train", "weighted_train"])
    assert sorted(two[0]) == sorted(one[0])
    for key in one[0]:
        if key.startswith("weight."):
            tolerance = tolerances["final_weights"]
        elif "loss" in key:
            tolerance = tolerances["step_loss"]
        else:
            # The metrics' states are summed over the processes: AUC's weighted counts in another order.
            tolerance = metrics["weighted_train" if key.endswith("auc") else "train"]
        np.testing.assert_allclose(two[0][key], one[0][key], rtol=tolerance.rtol, atol=tolerance.atol, err_msg=key)


@pytest.mark.slow
def test_a_killed_process_stops_the_other_with_a_distribution_error(tmp_path):
    environments = job_environment("tensorflow", 2, _environment())
    errors = [open(tmp_path / f"stderr{rank}.txt", "w+") for rank in range(2)]
    processes = [subprocess.Popen([sys.executable, WORKER, "forever"], env=env, stdout=subprocess.PIPE, stderr=err,
                                  text=True) for env, err in zip(environments, errors)]
    survivor, victim = processes
    try:
        # Rank 1 says "training" once its first block of steps is done: both processes are in the loop.
        ready, _, _ = select.select([victim.stdout], [], [], 180)
        assert ready and victim.stdout.readline().strip() == "training", (tmp_path / "stderr1.txt").read_text()[-4000:]
        victim.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        survivor.wait(timeout=120)
        seconds = time.monotonic() - killed
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
        for err in errors:
            err.close()
    stderr = (tmp_path / "stderr0.txt").read_text()
    assert survivor.returncode != 0
    assert "polynn.errors.DistributionError" in stderr and "rank 0 of 2 (tensorflow engine)" in stderr, stderr[-4000:]
    assert seconds < 60


# ---- the data-parallel path in this process (a job of one) -----------------------------------------


@pytest.fixture
def one_process_job():
    distribution.initialize()
    yield
    distribution.shutdown()


def test_one_process_data_parallel_fit_computes_the_plain_fit(one_process_job):
    x, y, sample_weight = replica_worker.data()
    runs = []
    for chosen in (None, "data_parallel"):
        model = replica_worker.model()
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"], backend="tensorflow",
                      dtype="float64", seed=3, distribution=chosen)
        history = model.fit(x[:300], y[:300], sample_weight=sample_weight[:300], batch_size=33, epochs=1, verbose=0)
        runs.append((history.history, model.get_weights()))
    (plain, plain_weights), (parallel, parallel_weights) = runs
    assert parallel.keys() == plain.keys()
    for key in plain:
        np.testing.assert_allclose(parallel[key], plain[key], **SAME_RUN)
    for a, b in zip(parallel_weights, plain_weights, strict=True):
        np.testing.assert_allclose(a, b, **SAME_RUN)


@pytest.fixture
def batch_mean_loss():
    """A registered loss giving one value for the whole batch (fit's check of the processes'
    models describes it by name)."""
    def batch_mean(y_true, y_pred):
        return ops.mean(ops.square(y_true - y_pred))

    polynn.register("distributed_tensorflow_batch_mean", kind="loss")(batch_mean)
    yield batch_mean
    _custom.unregister("distributed_tensorflow_batch_mean")


def test_a_loss_of_one_value_per_batch_is_refused(one_process_job, batch_mean_loss):
    model = Sequential([Input((3,)), Dense(1)])
    model.compile(loss=batch_mean_loss, backend="tensorflow", distribution="data_parallel")
    with pytest.raises(DistributionError, match="loss 'custom_loss' gives one value for the whole batch"):
        model.fit(np.ones((8, 3)), np.ones((8, 1)), batch_size=4, verbose=0)


# ---- TensorFlow's start: nothing runs before initialize() ----------------------------------------


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env={**_environment(), **(env or {})},
                          capture_output=True, text=True, timeout=120)


def test_importing_the_backend_runs_nothing_and_initialize_must_come_first():
    workers = [f"127.0.0.1:{port}" for port in (1, 2)]  # never reached: the refusal comes first
    config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": 0}})
    result = _python("""
        import tensorflow as tf
        import polynn_tensorflow.backend, polynn_tensorflow.collectives, polynn_tensorflow.runtime
        from polynn import distribution
        from polynn.errors import DistributionError
        # TensorFlow refuses to change its visible devices once it has run anything.
        tf.config.set_visible_devices(tf.config.list_physical_devices("CPU"), "CPU")
        tf.constant(1.0) + 1.0
        try:
            distribution.initialize()
        except DistributionError as error:
            print(error)
    """, {"TF_CONFIG": config})
    assert "rank 0 of 2 cannot join the job on the tensorflow engine" in result.stdout, result.stderr[-3000:]
    assert "Call polynn.distribution.initialize() first in the script" in result.stdout


# ---- devices -------------------------------------------------------------------------------------


class _Replica:
    def __init__(self, local_rank):
        self.local_rank = local_rank


def _fake_gpus(monkeypatch, count, visible=None):
    gpus = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(count)]
    real_list = tf.config.list_physical_devices
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: gpus if kind == "GPU" else real_list(kind))
    shown = gpus if visible is None else [gpus[i] for i in visible]
    monkeypatch.setattr(tf.config, "get_visible_devices", lambda kind=None: shown)


def test_devices_name_tensorflows_devices(monkeypatch):
    assert resolve_device(None) is None and resolve_device("cpu") == "/CPU:0"
    _fake_gpus(monkeypatch, 3)
    assert resolve_device("gpu") == "/GPU:0"
    assert resolve_device("gpu:2") == "/GPU:2"
    # Under data-parallel training "gpu" is the GPU of the process's local rank.
    assert resolve_device("gpu", _Replica(1)) == "/GPU:1"
    assert resolve_device("gpu:0", _Replica(1)) == "/GPU:0"


def test_a_process_that_sees_one_gpu_takes_it(monkeypatch):
    """A launcher that gives each process its own GPU (CUDA_VISIBLE_DEVICES) leaves it one."""
    _fake_gpus(monkeypatch, 1)
    assert resolve_device("gpu", _Replica(1)) == "/GPU:0"


def test_a_job_that_left_each_process_its_gpu_maps_it_to_tensorflows_first(monkeypatch):
    _fake_gpus(monkeypatch, 2, visible=[1])
    assert resolve_device("gpu", _Replica(1)) == "/GPU:0"
    with pytest.raises(InvalidArgumentError, match=r"a GPU this process sees \(gpu:1\): gpu:0 is hidden"):
        resolve_device("gpu:0", _Replica(1))


@pytest.mark.parametrize("device", ["gpu:", "gpu:x", "gpu:-1", "GPU", "cuda", 0])
def test_a_device_tensorflow_does_not_name_is_refused(device):
    with pytest.raises(InvalidArgumentError, match=r"accepted: None, 'cpu' or 'gpu' \('gpu:N' for the Nth GPU\)"):
        resolve_device(device)


def test_an_absent_gpu_is_refused_naming_those_present(monkeypatch):
    _fake_gpus(monkeypatch, 2)
    with pytest.raises(InvalidArgumentError, match=r"device='gpu:2'.*or a GPU up to gpu:1: TensorFlow lists "
                                                   r"GPUs 0\.\.1 \(2\) on this machine$"):
        resolve_device("gpu:2")
    with pytest.raises(InvalidArgumentError, match=r"device='gpu'.*under data-parallel training 'gpu' means "
                                                   r"'gpu:3', the GPU of this process's local rank"):
        resolve_device("gpu", _Replica(3))
    _fake_gpus(monkeypatch, 0)
    with pytest.raises(InvalidArgumentError, match=r"accepted: None, 'cpu': TensorFlow lists no GPU on this machine"):
        resolve_device("gpu")


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="this machine has a GPU")
def test_compile_on_a_gpu_this_machine_lacks_is_refused():
    model = Sequential([Input((3,)), Dense(1)])
    with pytest.raises(InvalidArgumentError, match="TensorFlow lists no GPU on this machine"):
        model.compile(loss="mse", backend="tensorflow", device="gpu:1")
