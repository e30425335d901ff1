"""The MPI engine: collectives on host NumPy arrays through mpi4py, for jobs launched by mpiexec."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from polynn._extras import require
from polynn.distribution import Cluster, Communicator
from polynn.errors import DistributionError


def _mpi() -> Any:
    """mpi4py.MPI, imported on first use (importing it initialises MPI), or a MissingExtraError."""
    return require("mpi4py.MPI", "mpi", "data-parallel training on MPI")


class MpiCommunicator(Communicator):
    """Host arrays reduced in place by MPI (mpi4py's buffer interface: no copy, no pickling) on
    MPI.COMM_WORLD, or on the communicator given. The job comes from the MPI launcher (`mpiexec -n
    N python train.py`); no address or port is needed. Any MPI works: `pip install mpich` brings
    one; across machines, the cluster's own MPI knows its network (the wheels may lack its drivers).

    Failures: MPI's collectives have no timeout, so `initialize(timeout=...)` does not apply
    here. A process that dies (killed, crashed) makes mpiexec end every other process of the job
    at once. A Python exception nothing catches would leave the others waiting (the process that
    raised waits for them in MPI_Finalize at exit), so the communicator polynn starts makes such an
    exception, once printed, end the job with MPI_Abort, as `python -m mpi4py` does. A process
    that hangs, or leaves with sys.exit() mid-training, holds the others until the job is ended
    (the batch system's time limit, or MPICH's `mpiexec -timeout SECONDS`)."""

    engine = "mpi"

    def __init__(self, comm: Any = None, local_rank: int | None = None) -> None:
        """comm: an mpi4py communicator (None: MPI.COMM_WORLD), used as it is; local_rank: this
        process's rank on its machine (None: its rank among the processes that share its memory)."""
        MPI = _mpi()
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self._in_place, self._sum = MPI.IN_PLACE, MPI.SUM
        self.owned = False  # whether polynn made self.comm (and so frees it)
        self._abort_hook: _AbortOnUncaught | None = None
        if local_rank is None:
            node = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
            local_rank = node.Get_rank()
            node.Free()
        super().__init__(self.comm.Get_rank(), self.comm.Get_size(), local_rank)

    @classmethod
    def make(cls, cluster: Cluster) -> MpiCommunicator:
        """The communicator of the MPI job this process was launched in: a duplicate of
        MPI.COMM_WORLD (polynn's collectives never meet the script's own), checked against the
        rank and size the launcher's environment gave."""
        MPI = _mpi()
        made = cls(MPI.COMM_WORLD.Dup(), cluster.local_rank)
        made.owned = True
        made._abort_hook = _AbortOnUncaught(MPI.COMM_WORLD) if made.world_size > 1 else None
        if made._abort_hook is not None:
            sys.excepthook = made._abort_hook
        if cluster.world_size > 1 and (made.rank, made.world_size) != (cluster.rank, cluster.world_size):
            made.close()
            raise DistributionError(
                f"MPI's COMM_WORLD has rank {made.rank} of {made.world_size} processes, but {cluster.source}'s "
                f"variables give rank {cluster.rank} of {cluster.world_size}; launch the script with the mpiexec "
                f"of the MPI that mpi4py uses ({' '.join(MPI.Get_library_version().splitlines()[0].split())[:80]})")
        return made

    def all_reduce_sum(self, array: np.ndarray) -> None:
        if array.size:
            self.comm.Allreduce(self._in_place, array, op=self._sum)

    def broadcast(self, array: np.ndarray, root: int = 0) -> None:
        if array.size:
            self.comm.Bcast(array, root=root)

    def barrier(self) -> None:
        self.comm.Barrier()

    def close(self) -> None:
        hook, self._abort_hook = self._abort_hook, None
        # Closed by shutdown() in a `finally:` an error passes through: the hook stays, to end the job.
        if hook is not None and sys.excepthook is hook and not _leaving_on_error():
            sys.excepthook = hook.previous
        if self.owned:
            self.comm.Free()
            self.owned = False


def _leaving_on_error() -> bool:
    error = sys.exc_info()[1]
    return error is not None and not (isinstance(error, SystemExit) and error.code in (0, None))


class _AbortOnUncaught:
    """sys.excepthook while polynn's MPI job is open: the usual report of an uncaught exception,
    then MPI_Abort, which makes mpiexec end every process of the job (they would wait forever)."""

    def __init__(self, comm: Any) -> None:
        self.comm, self.previous = comm, sys.excepthook

    def __call__(self, kind: Any, value: Any, traceback: Any) -> None:
        try:
            self.previous(kind, value, traceback)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            self.comm.Abort(1)
