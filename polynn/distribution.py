"""polynn.distribution: data-parallel training across processes, on an existing engine's collectives.

Every process of a job runs the same script on the same arrays. `initialize()` joins the job from
the launcher's environment (torchrun's, MPI's, TF_CONFIG) or reuses a torch.distributed group that
is already set up (Ray Train, the user's own); `compile(distribution="data_parallel")` then trains
one model across the processes. `batch_size` is the global batch: every process walks the same
global batch order (polynn's shared random streams), takes a contiguous slice of each batch, and one
SUM all-reduce per step adds the processes' gradients of their weighted loss sums over the global
divisor, so N processes compute the numbers of one, whatever the batch's split, the sample weights
or the dropout masks (drawn for the global batch, then sliced).

Engines (never polynn's own transport): "torch" is torch.distributed (gloo for host arrays and CPU
tensors, NCCL for CUDA tensors); "mpi" is MPI through mpi4py, for jobs mpiexec started (host
arrays: the NumPy backend, and the torch backend through host copies); "tensorflow" is
tf.distribute.MultiWorkerMirroredStrategy, set up from TF_CONFIG by the TensorFlow backend. A third
party passes its own `Communicator` to `initialize(communicator=...)`, or offers an engine through
its backend's `make_communicator`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import sys
import warnings
from typing import Any

import numpy as np

from ._communicator import DEFAULT_TIMEOUT, Cluster, Communicator, collective
from .errors import DistributionError, InvalidArgumentError, PolynnError, bounded_repr
from .hookspecs import DISTRIBUTIONS

__all__ = [
    "Communicator", "Cluster", "DataParallel", "Replica", "DISTRIBUTIONS", "DEFAULT_TIMEOUT",
    "initialize", "is_initialized", "shutdown", "rank", "world_size", "local_rank", "is_chief",
    "communicator", "barrier", "shard_bounds", "loss_divisor", "launched_world_size", "collective",
]

@dataclasses.dataclass(frozen=True)
class DataParallel:
    """compile(distribution=DataParallel()): train one model across every process of the job,
    each taking a slice of every global batch (the same as distribution="data_parallel").
    communicator: the collectives to train on; None (the default) is the job's, from initialize()."""

    communicator: Communicator | None = None

    name = "data_parallel"


def shard_bounds(width: int, rank: int, world_size: int) -> tuple[int, int]:
    """The rows [lo, hi) of a batch of `width` rows that process `rank` of `world_size` takes:
    contiguous slices in rank order, the first width % world_size processes one row more (as
    numpy.array_split); a process may get none (a short last batch) and still joins the step."""
    base, extra = divmod(width, world_size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


@dataclasses.dataclass(frozen=True)
class Replica:
    """This process's place in a data-parallel model (Plan.distribution): its communicator, rank
    and world size, and the slicing every runtime does the same way.

    A runtime given a plan with a Replica trains as follows (docs/plugins.md, "Data-parallel
    training"): train_steps gets the global batches and masks; each step takes this process's
    rows (`rows`) and masks (`masks`), computes the loss term sum_i(w_i * l_i) / D over its rows,
    D the global batch's divisor (`loss_divisor`), plus each activity penalty of its rows divided
    by the global batch size, differentiates that, adds the gradients of every process with one
    SUM all-reduce (the loss term riding along), then adds the weight penalties and their
    gradients once, updates and projects. It returns the summed (global) losses and its own
    metric states, which the core sums across processes.
    """

    communicator: Communicator

    @property
    def rank(self) -> int:
        return self.communicator.rank

    @property
    def world_size(self) -> int:
        return self.communicator.world_size

    @property
    def local_rank(self) -> int:
        return self.communicator.local_rank

    def bounds(self, width: int) -> tuple[int, int]:
        return shard_bounds(width, self.rank, self.world_size)

    def rows(self, batches: np.ndarray) -> np.ndarray:
        """This process's columns of a (steps, batch) block of row indices."""
        lo, hi = self.bounds(batches.shape[1])
        return batches[:, lo:hi]

    def masks(self, masks: list[np.ndarray], width: int) -> list[np.ndarray]:
        """This process's part of each (steps, *mask_shape) dropout mask of a block whose batches
        have `width` rows: a mask drawn per row is sliced as the rows are; one whose noise_shape
        broadcasts over the batch (batch entry 1) is shared whole."""
        lo, hi = self.bounds(width)
        return [m[:, lo:hi] if m.ndim > 1 and m.shape[1] == width else m for m in masks]


def loss_divisor(reduction: str, values_per_row: int, global_rows: int, global_weight_sum: float | None) -> float:
    """The divisor of the global batch's loss: 1 for "sum"; the global sum of the sample weights
    times the values per row for "mean_with_sample_weight" with weights; else the global number of
    loss values (rows times values per row). 0 means the loss (and its gradient) is 0, never 0/0."""
    if reduction == "sum":
        return 1.0
    if reduction == "mean_with_sample_weight" and global_weight_sum is not None:
        return float(global_weight_sum) * values_per_row
    return float(global_rows * values_per_row)


# ---- the job this process belongs to ------------------------------------------------------------


class _State:
    communicator: Communicator | None = None
    cluster: Cluster | None = None
    initialized = False
    warned_unused = False


_state = _State()


def _int_env(name: str, environ: dict[str, str]) -> int | None:
    value = environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise DistributionError(f"the environment variable {name}={bounded_repr(value)} is not an integer") from None


# Not Slurm's own SLURM_PROCID/SLURM_NTASKS: they are set for a plain `python` inside an allocation
# too, which is no job of several processes; srun --mpi=pmi2 (or torchrun) says so through PMI (RANK).
_RANK_VARIABLES = ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK")
_SIZE_VARIABLES = ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
_LOCAL_VARIABLES = ("LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID")
# The sources (the rank variable's prefix) that say an MPI launcher started the job: Open MPI's
# mpirun, the PMI of MPICH's and Intel MPI's mpiexec (and Slurm's srun --mpi=pmi2), PMIx.
_MPI_SOURCES = ("OMPI", "PMI", "PMIX")

# The engines named after what they are rather than after the backend that offers them.
_ENGINE_BACKENDS = {"mpi": "numpy"}


def _mpi_installed() -> bool:
    """Whether mpi4py is there to import (found, not imported: importing it starts MPI)."""
    return importlib.util.find_spec("mpi4py") is not None


def _first(names: tuple[str, ...], environ: dict[str, str]) -> tuple[str | None, int | None]:
    for name in names:
        value = _int_env(name, environ)
        if value is not None:
            return name, value
    return None, None


def _tf_config_cluster(text: str, timeout: float) -> Cluster:
    """The Cluster TF_CONFIG describes: its "chief" (rank 0, when there is one) then its "worker"s."""
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        chief = list(cluster.get("chief", []))
        workers = chief + list(cluster.get("worker", []))
        kind, index = task["type"], int(task["index"])
        if kind not in ("chief", "worker") or not workers or not all(isinstance(w, str) for w in workers):
            raise ValueError
        rank = index if kind == "chief" else len(chief) + index
        if not 0 <= rank < len(workers):
            raise ValueError
    except (ValueError, KeyError, TypeError, AttributeError):
        raise DistributionError(
            f"TF_CONFIG={bounded_repr(text)} is not a cluster polynn can join; accepted: JSON "
            f'{{"cluster": {{"worker": ["host:port", ...]}}, "task": {{"type": "worker", "index": i}}}} '
            f'(a "chief" list too, whose task is rank 0)') from None
    return Cluster(rank, len(workers), _int_env("LOCAL_RANK", dict(os.environ)) or 0, None, tuple(workers),
                   "TF_CONFIG", timeout)


def launched_world_size(environ: dict[str, str] | None = None) -> int:
    """How many processes the launcher's environment says this job has (1 when none says)."""
    environ = dict(os.environ if environ is None else environ)
    if environ.get("TF_CONFIG"):
        try:
            return _tf_config_cluster(environ["TF_CONFIG"], DEFAULT_TIMEOUT).world_size
        except DistributionError:
            return 1
    try:
        return _first(_SIZE_VARIABLES, environ)[1] or 1
    except DistributionError:
        return 1


def _environment_cluster(job_addresses: str | None, num_processes: int | None, process_id: int | None,
                         timeout: float) -> Cluster:
    environ = dict(os.environ)
    if job_addresses is None:
        job_addresses = environ.get("POLYNN_DISTRIBUTION_JOB_ADDRESSES")
    if num_processes is None:
        num_processes = _int_env("POLYNN_DISTRIBUTION_NUM_PROCESSES", environ)
    if process_id is None:
        process_id = _int_env("POLYNN_DISTRIBUTION_PROCESS_ID", environ)
    given = (job_addresses, num_processes, process_id)
    if any(v is not None for v in given):
        if any(v is None for v in given):
            raise InvalidArgumentError(
                "job_addresses, num_processes, process_id", given,
                "all three (or their POLYNN_DISTRIBUTION_* variables), or none to read the launcher's environment",
                owner="polynn.distribution.initialize")
        return _argument_cluster(str(job_addresses), int(num_processes), int(process_id), timeout)  # type: ignore[arg-type]
    if environ.get("TF_CONFIG"):
        return _tf_config_cluster(environ["TF_CONFIG"], timeout)
    rank_name, rank_value = _first(_RANK_VARIABLES, environ)
    size_name, size_value = _first(_SIZE_VARIABLES, environ)
    if rank_value is None or size_value is None:
        return Cluster(0, 1, 0, None, (), "no launcher", timeout)
    _, local = _first(_LOCAL_VARIABLES, environ)
    address, port = environ.get("MASTER_ADDR"), environ.get("MASTER_PORT")
    source = "torchrun" if rank_name == "RANK" else str(rank_name).split("_")[0]
    coordinator = f"{address}:{port}" if size_value > 1 else None
    if size_value > 1 and (not address or not port):
        if source in _MPI_SOURCES and _mpi_installed():
            coordinator = None  # MPI's own job: the "mpi" engine needs no address
        else:
            other = (', or pip install "polynn[mpi]" (mpi4py) to train on the MPI that launched the job'
                     if source in _MPI_SOURCES else "")
            raise DistributionError(
                f"{rank_name}={rank_value} and {size_name}={size_value} say this is one process of {size_value}, "
                f"but MASTER_ADDR and MASTER_PORT (the address of rank 0's rendezvous, which torchrun sets) are "
                f"not both set; launch with torchrun, or set them{other}")
    _check_rank(rank_value, size_value, f"{rank_name}/{size_name}")
    return Cluster(rank_value, size_value, local or 0, coordinator, (), source, timeout)


def _check_rank(rank: int, size: int, source: str) -> None:
    if size < 1 or not 0 <= rank < size:
        raise DistributionError(f"{source} give rank {rank} of {size} processes; accepted: 0 <= rank < size, size >= 1")


def _argument_cluster(job_addresses: str, num_processes: int, process_id: int, timeout: float) -> Cluster:
    """Keras's initialize(job_addresses, num_processes, process_id): one address is the coordinator
    (torch.distributed's rendezvous at rank 0); a comma-separated list is every worker's (TF)."""
    _check_rank(process_id, num_processes, "num_processes/process_id")
    addresses = tuple(a.strip() for a in job_addresses.split(",") if a.strip())
    if not addresses or any(":" not in a for a in addresses):
        raise InvalidArgumentError("job_addresses", job_addresses, "'host:port', or one 'host:port' per process "
                                   "separated by commas", owner="polynn.distribution.initialize")
    if len(addresses) > 1 and len(addresses) != num_processes:
        raise InvalidArgumentError("job_addresses", job_addresses, f"one address, or {num_processes} (one per process)",
                                   owner="polynn.distribution.initialize")
    workers = addresses if len(addresses) > 1 else ()
    return Cluster(process_id, num_processes, 0, addresses[0], workers, "arguments", timeout)


def initialize(job_addresses: str | None = None, num_processes: int | None = None, process_id: int | None = None,
               *, engine: str = "auto", timeout: float = DEFAULT_TIMEOUT,
               communicator: Communicator | None = None) -> None:
    """Join the job this process was launched in; call it first in the script, before any model.

    Without arguments: a torch.distributed group already initialised (Ray Train, the user) is
    reused; else TF_CONFIG (the TensorFlow engine), else torchrun's RANK/WORLD_SIZE/LOCAL_RANK/
    MASTER_ADDR/MASTER_PORT, or MPI's (OMPI_COMM_WORLD_*, PMI_*, PMIX_*: mpirun, mpiexec, srun
    --mpi=pmi2) variables, else a single process. Keras's arguments (or
    POLYNN_DISTRIBUTION_JOB_ADDRESSES, _NUM_PROCESSES, _PROCESS_ID) name the job explicitly.
    engine: "auto" (TensorFlow's for TF_CONFIG or a list of worker addresses; MPI for a job an MPI
    launcher started without MASTER_ADDR and MASTER_PORT, when mpi4py is installed; else
    torch.distributed), "torch", "mpi", "tensorflow", or the name of a backend whose
    make_communicator() offers one. timeout: seconds a collective waits for the others (MPI's
    collectives have none: there mpiexec ends a job whose process died). communicator: a
    Communicator of your own, used as it is. Calling it again is a no-op.
    """
    if _state.initialized:
        return
    if communicator is not None:
        if not isinstance(communicator, Communicator):
            raise InvalidArgumentError("communicator", communicator, "a polynn.distribution.Communicator",
                                       owner="polynn.distribution.initialize")
        _check_rank(communicator.rank, communicator.world_size, f"communicator {type(communicator).__name__}")
        _state.communicator, _state.initialized = communicator, True
        _state.cluster = Cluster(communicator.rank, communicator.world_size, communicator.local_rank,
                                 source="communicator")
        return
    if not (isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and 0 < timeout <= 86400):
        raise InvalidArgumentError("timeout", timeout, "seconds, a number in (0, 86400]",
                                   owner="polynn.distribution.initialize")
    if engine in ("auto", "torch") and job_addresses is None and _torch_group_exists():
        # Ray Train's or the user's own group: the torch backend's engine takes it as it is.
        _state.communicator = _engine_communicator("torch", Cluster(0, 1, source="torch.distributed group"))
        _state.cluster = Cluster(_state.communicator.rank, _state.communicator.world_size,
                                 _state.communicator.local_rank, source="torch.distributed group")
        _state.initialized = True
        return
    cluster = _environment_cluster(job_addresses, num_processes, process_id, float(timeout))
    if cluster.world_size > 1:
        if engine == "auto":
            mpi = cluster.coordinator is None and cluster.source in _MPI_SOURCES
            engine = "tensorflow" if cluster.workers else "mpi" if mpi else "torch"
        if engine == "torch" and cluster.coordinator is None:
            raise DistributionError("torch.distributed needs the address of rank 0 (MASTER_ADDR, MASTER_PORT), "
                                    "or TF_CONFIG's workers for the tensorflow engine, or an MPI launcher "
                                    "(mpiexec) for the mpi engine")
        _state.communicator = _engine_communicator(engine, cluster)
    _state.cluster, _state.initialized = cluster, True


def _torch_group_exists() -> bool:
    """Whether a default torch.distributed group exists already (never imports torch to find out)."""
    torch_distributed = sys.modules.get("torch.distributed")
    return bool(torch_distributed is not None and torch_distributed.is_available()
                and torch_distributed.is_initialized())


def _engine_communicator(engine: Any, cluster: Cluster) -> Communicator:
    """The communicator the backend named `engine` offers for `cluster` (its make_communicator)."""
    from . import plugins

    if not isinstance(engine, str):
        raise InvalidArgumentError("engine", engine, "'auto', 'torch', 'mpi', 'tensorflow' or a backend's name",
                                   owner="polynn.distribution.initialize")
    backend = plugins.get_backend(_ENGINE_BACKENDS.get(engine, engine))
    made = backend.make_communicator(cluster)
    if made is None:
        raise InvalidArgumentError("engine", engine, "'auto', 'torch', 'mpi', or a backend whose "
                                   "make_communicator() offers an engine (tensorflow)",
                                   owner="polynn.distribution.initialize")
    if not isinstance(made, Communicator):
        raise PolynnError(f"{plugins.describe_backend(engine)}: make_communicator() returned "
                          f"{type(made).__name__}, not a polynn.distribution.Communicator")
    return made


def is_initialized() -> bool:
    """Whether initialize() has run (and shutdown() has not since)."""
    return _state.initialized


def _ensure_initialized() -> None:
    if not _state.initialized:
        initialize()


def communicator() -> Communicator | None:
    """The job's communicator (None for a single process), initialising from the environment first."""
    _ensure_initialized()
    return _state.communicator


def rank() -> int:
    """This process's rank in the job, 0 for a single process."""
    _ensure_initialized()
    return 0 if _state.communicator is None else _state.communicator.rank


def world_size() -> int:
    """The number of processes in the job, 1 for a single process."""
    _ensure_initialized()
    return 1 if _state.communicator is None else _state.communicator.world_size


def local_rank() -> int:
    """This process's rank on its machine (torchrun's LOCAL_RANK): the GPU it takes under "cuda"."""
    _ensure_initialized()
    return 0 if _state.communicator is None else _state.communicator.local_rank


def is_chief() -> bool:
    """Whether this process is rank 0: the one that writes checkpoints, logs and progress."""
    return rank() == 0


def barrier() -> None:
    """Wait until every process of the job gets here (nothing for a single process)."""
    comm = communicator()
    if comm is not None:
        with collective(comm, "barrier"):
            comm.barrier()


def shutdown() -> None:
    """Leave the job: a last barrier, then the engine's resources released. Call it at the end of
    the script (a process group torn down at exit without one can abort, pytorch#179291), in a
    `finally:` block if you like: called while an exception propagates, it skips the barrier (this
    process may have left the others mid-step, where a barrier would meet one of their
    collectives; MPI would wait forever) and releases the engine, so the others fail on the closed
    connection. A `torch.distributed` group that existed before `initialize()` is left alive: it
    belongs to whoever created it, who destroys it."""
    comm = _state.communicator
    # Out of the job whatever happens below: a failed barrier (a peer gone) still releases the engine.
    _state.communicator, _state.cluster, _state.initialized = None, None, False
    if comm is not None:
        try:
            if not _leaving_on_error():
                with collective(comm, "the barrier of shutdown()"):
                    comm.barrier()
        finally:
            comm.close()


def _leaving_on_error() -> bool:
    """Whether an exception other than a clean sys.exit() is propagating (shutdown() in a `finally:`)."""
    error = sys.exc_info()[1]
    return error is not None and not (isinstance(error, SystemExit) and error.code in (0, None))


def resolve(value: Any, owner: str) -> Replica | None:
    """compile(distribution=...): None (one process), "auto" (data-parallel exactly when the job
    has more than one process), "data_parallel" or a DataParallel(): this process's Replica."""
    if value is None:
        _warn_if_launched_alone()
        return None
    if isinstance(value, str) and value == "auto":
        if launched_world_size() <= 1 and not _state.initialized and not _torch_group_exists():
            return None
        _ensure_initialized()
        if _state.communicator is None or _state.communicator.world_size <= 1:
            return None  # a job of one process (initialize() called in a process launched alone)
        value = DataParallel()
    if isinstance(value, str) and value in DISTRIBUTIONS:
        value = DataParallel()
    if not isinstance(value, DataParallel):
        raise InvalidArgumentError("distribution", value, "None, 'auto', 'data_parallel' or "
                                   "polynn.distribution.DataParallel()", owner=owner)
    if value.communicator is not None:
        if not isinstance(value.communicator, Communicator):
            raise InvalidArgumentError("DataParallel.communicator", value.communicator,
                                       "a polynn.distribution.Communicator, or None for the job's", owner=owner)
        return Replica(value.communicator)
    _ensure_initialized()
    comm = _state.communicator
    if comm is None:
        comm = _SingleProcess()
    return Replica(comm)


def _warn_if_launched_alone() -> None:
    size = launched_world_size()
    if size > 1 and not _state.warned_unused:
        _state.warned_unused = True
        warnings.warn(f"this process is one of {size} launched together, but compile(distribution=None) trains "
                      f"a model of its own in each; pass distribution='auto' or 'data_parallel' to train one "
                      f"model across them", RuntimeWarning, stacklevel=4)


class _SingleProcess(Communicator):
    """The communicator of a job of one process: every collective is the identity."""

    engine = "none"

    def __init__(self) -> None:
        super().__init__(0, 1, 0)

    def all_reduce_sum(self, array: np.ndarray) -> None:
        return None
