"""The MPI engine (mpi4py): data-parallel training under mpiexec, with no framework installed."""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from replica_checks import assert_close, assert_float32_job_matches, assert_ranks_identical, weight_names

import polynn
from polynn import distribution
from polynn.distribution import Communicator
from polynn.errors import DistributionError, MissingExtraError

ROOT = Path(__file__).resolve().parent.parent
WORKER = [sys.executable, "-m", "polynn.conformance.replica_worker"]
JOB = [sys.executable, str(ROOT / "tests" / "scripts" / "dp_job.py")]
EXACT = 1e-12  # float64: N processes against one (the contract)
TIMEOUT = 120  # seconds for any one launch

# Variables of a job this test may itself run in, which would make the launched processes join it.
_JOB_PREFIXES = ("PMI_", "PMIX_", "OMPI_", "MPI_LOCAL", "HYDRA_", "SLURM_", "POLYNN_DISTRIBUTION_")
_JOB_NAMES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TF_CONFIG")
# MPICH's transports kept on the loopback interface (UCX's and libfabric's TCP would listen on every one).
_LOOPBACK = {"UCX_NET_DEVICES": "lo", "FI_TCP_IFACE": "lo", "FI_SOCKETS_IFACE": "lo"}


@functools.cache
def _mpiexec() -> str | None:
    """MPICH's forking launcher (mpiexec.gforker): it starts every process on this machine and opens
    no socket, where Hydra's mpiexec listens on every interface. The one beside this Python (the
    mpich wheel's), else the PATH's."""
    beside = Path(sys.executable).parent / "mpiexec.gforker"
    found = str(beside) if beside.is_file() else shutil.which("mpiexec.gforker")
    return found


needs_mpi = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or _mpiexec() is None,
    reason="needs mpi4py and MPICH's mpiexec.gforker (pip install mpi4py mpich)")


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _JOB_NAMES and not k.startswith(_JOB_PREFIXES)}
    return {**env, **_LOOPBACK}


def _mpi_command(argv: list[str], size: int) -> list[str]:
    return [str(_mpiexec()), "-n", str(size), *argv]


def _run(argv: list[str], size: int | None) -> subprocess.CompletedProcess:
    """argv in one plain process (size None), or in `size` processes under mpiexec."""
    command = argv if size is None else _mpi_command(argv, size)
    return subprocess.run(command, env=_environment(), cwd=str(ROOT), capture_output=True, text=True,
                          timeout=TIMEOUT)


def _observed(folder: Path, rank: int) -> dict[str, np.ndarray]:
    with np.load(folder / f"rank{rank}.npz") as npz:
        return {key: npz[key] for key in npz.files}


@pytest.fixture(scope="module")
def worker_runs(tmp_path_factory):
    """run(backend, dtype, size): every rank's observations of replica_worker, each job run once;
    size None is one plain process (no MPI), the reference."""
    done: dict[tuple[str, str, int | None], list[dict[str, np.ndarray]]] = {}

    def run(backend: str, dtype: str, size: int | None) -> list[dict[str, np.ndarray]]:
        key = (backend, dtype, size)
        if key not in done:
            out = tmp_path_factory.mktemp(f"{backend}-{dtype}-{size}")
            finished = _run([*WORKER, "--backend", backend, "--dtype", dtype, "--out", str(out)], size)
            assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-4000:]
            done[key] = [_observed(out, rank) for rank in range(size or 1)]
        return done[key]

    return run


# ---- real jobs under mpiexec -------------------------------------------------------------------------


@needs_mpi
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_two_mpi_processes_train_as_one_in_float64(worker_runs, backend):
    if backend == "torch" and importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed")
    (one,) = worker_runs(backend, "float64", None)
    two = worker_runs(backend, "float64", 2)
    assert_ranks_identical(two)
    assert two[0].keys() == one.keys() and one["step_loss_means"].size > 0
    names = [name for name in one if name.startswith("history.")] + ["step_loss_means"] + weight_names(one)
    assert_close(two[0], one, names, rtol=0.0, atol=EXACT)
    assert two[0]["iterations"] == one["iterations"]


@needs_mpi
def test_two_mpi_processes_train_as_one_in_float32(worker_runs):
    (one,) = worker_runs("numpy", "float32", None)
    two = worker_runs("numpy", "float32", 2)
    assert_float32_job_matches(two, one)


def _rank_processes(marker: str) -> dict[int, int]:
    """{rank: pid} of the job's processes: those whose command line holds `marker`, by PMI_RANK."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker not in (entry / "cmdline").read_bytes().decode(errors="replace"):
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # ended meanwhile, or not ours
        for item in environ:
            if item.startswith(b"PMI_RANK="):
                found[int(item[len(b"PMI_RANK="):])] = int(entry.name)
    return found


def _ended(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")  # a zombie has ended; only its parent has yet to reap it


@needs_mpi
@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks' processes through /proc")
@pytest.mark.parametrize("killed", [1, 0])
def test_a_killed_process_ends_the_mpi_job(tmp_path, killed):
    """MPI's collectives have no timeout: mpiexec itself ends every process when one dies."""
    job = subprocess.Popen(_mpi_command([*JOB, "long", str(tmp_path)], 2), env=_environment(), cwd=str(ROOT),
                           text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        checkpoint = tmp_path / "checkpoint.polynn"
        deadline = time.monotonic() + TIMEOUT
        while not checkpoint.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert checkpoint.exists(), f"no checkpoint written in {TIMEOUT} s"
        time.sleep(0.3)  # mid-epoch
        ranks = _rank_processes(str(tmp_path))
        assert sorted(ranks) == [0, 1], ranks
        os.kill(ranks[killed], signal.SIGKILL)
        killed_at = time.monotonic()
        job.wait(timeout=60)
        survivor = ranks[1 - killed]
        while not _ended(survivor) and time.monotonic() < killed_at + 60:
            time.sleep(0.05)
        took = time.monotonic() - killed_at
        output = "".join(job.communicate())
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    # gforker exits 0 whatever befell the ranks; the survivor, 1000 epochs from done, has ended all the same.
    assert _ended(survivor) and took < 60, output[-2000:]
    model = polynn.load_model(checkpoint)  # whole: written beside, then renamed
    assert model.iterations > 0 and model.iterations % 500 == 0


RAISING_SCRIPT = textwrap.dedent('''
    import numpy as np

    from polynn import distribution
    from polynn.callbacks import Callback
    from polynn.layers import Dense, Input
    from polynn.models import Sequential


    class RaiseOnRankOne(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 20 and distribution.rank() == 1:
                raise RuntimeError("rank 1 fails on purpose")


    distribution.initialize()
    rng = np.random.RandomState(0)
    x, y = rng.random_sample((4000, 5)), rng.randint(2, size=(4000, 1)).astype(float)
    model = Sequential([Input((5,)), Dense(4, activation="relu"), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", dtype="float64", seed=2,
                  distribution="data_parallel")
    try:
        model.fit(x, y, batch_size=8, epochs=1000, verbose=0, callbacks=[RaiseOnRankOne()])
    finally:
        distribution.shutdown()
''')


@needs_mpi
def test_an_uncaught_error_on_one_process_ends_the_mpi_job(tmp_path):
    """The process that raised would wait for the others in MPI_Finalize, they for it in the step's
    all-reduce: polynn's MPI engine ends the job with MPI_Abort once the error is printed."""
    script = tmp_path / "raising.py"
    script.write_text(RAISING_SCRIPT)
    started = time.monotonic()
    finished = _run([sys.executable, str(script)], 2)
    took = time.monotonic() - started
    output = finished.stdout + finished.stderr
    assert finished.returncode != 0 and took < 60, output[-3000:]
    assert "RuntimeError: rank 1 fails on purpose" in output and "MPI_Abort" in output, output[-3000:]


@needs_mpi
def test_a_process_mpi_did_not_launch_is_refused(tmp_path):
    """PMI's variables say 2 processes but MPI sees one (another MPI's launcher, or none)."""
    env = {**_environment(), "PMI_RANK": "0", "PMI_SIZE": "2"}
    finished = subprocess.run([sys.executable, "-c", "from polynn import distribution; distribution.initialize()"],
                              env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=TIMEOUT)
    assert finished.returncode != 0
    assert "DistributionError: MPI's COMM_WORLD has rank 0 of 1 processes, but PMI's variables give rank 0 of 2" \
        in finished.stderr, finished.stderr[-2000:]


# ---- choosing the engine (no MPI needed) -------------------------------------------------------------


class _Recording(Communicator):
    """A communicator of one process standing in for the MPI engine's, recording the cluster asked for."""

    engine = "mpi"

    def __init__(self, cluster) -> None:
        super().__init__(0, 1, 0)
        self.cluster = cluster

    def all_reduce_sum(self, array: np.ndarray) -> None:
        return None


@pytest.fixture
def mpi_job(monkeypatch):
    """Rank 1 of 2 as MPICH's mpiexec says (PMI_*), no MASTER_ADDR/MASTER_PORT; the job left afterwards.
    Gives set_mpi4py(found): whether importlib says mpi4py is installed."""
    from polynn_numpy.backend import NumpyBackend

    for name in list(os.environ):
        if name in _JOB_NAMES or name.startswith(_JOB_PREFIXES):
            monkeypatch.delenv(name)
    for name, value in {"PMI_RANK": "1", "PMI_SIZE": "2", "MPI_LOCALRANKID": "1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(NumpyBackend, "make_communicator", lambda self, cluster: _Recording(cluster))
    find_spec = importlib.util.find_spec

    def set_mpi4py(found: bool) -> None:
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: (
            (find_spec("json") if found else None) if name == "mpi4py" else find_spec(name, *args)))

    distribution.shutdown()
    yield set_mpi4py
    distribution.shutdown()


def test_auto_picks_mpi_for_a_job_mpi_launched(mpi_job):
    mpi_job(True)
    distribution.initialize()
    comm = distribution.communicator()
    assert isinstance(comm, _Recording)
    assert (comm.cluster.rank, comm.cluster.world_size, comm.cluster.local_rank) == (1, 2, 1)
    assert (comm.cluster.source, comm.cluster.coordinator) == ("PMI", None)


def test_engine_mpi_is_the_numpy_backends(mpi_job, monkeypatch):
    mpi_job(True)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    distribution.initialize(engine="mpi")
    assert isinstance(distribution.communicator(), _Recording)


def test_auto_keeps_torch_when_the_mpi_job_names_a_rendezvous(mpi_job, monkeypatch):
    mpi_job(True)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    asked = []
    monkeypatch.setattr(distribution, "_engine_communicator", lambda engine, cluster: asked.append(engine) or
                        _Recording(cluster))
    distribution.initialize()
    assert asked == ["torch"]


def test_an_mpi_job_without_mpi4py_or_a_rendezvous_is_refused(mpi_job):
    mpi_job(False)
    with pytest.raises(DistributionError, match=r'MASTER_ADDR and MASTER_PORT .* not both set; launch with '
                                                r'torchrun, or set them, or pip install "polynn\[mpi\]"'):
        distribution.initialize()


def test_torch_in_an_mpi_job_without_a_rendezvous_is_refused(mpi_job):
    mpi_job(True)
    with pytest.raises(DistributionError, match="torch.distributed needs the address of rank 0"):
        distribution.initialize(engine="torch")


def test_a_missing_mpi4py_names_the_extra(monkeypatch):
    from polynn_numpy.collectives import MpiCommunicator

    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'polynn\[mpi\]'") as raised:
        MpiCommunicator()
    assert raised.value.extra == "mpi" and raised.value.package == "mpi4py"
