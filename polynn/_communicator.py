"""Communicator and Cluster: what an engine's collectives offer polynn, and where a process stands in its job."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from .errors import DistributionError, PolynnError

__all__ = ["Communicator", "Cluster", "DEFAULT_TIMEOUT", "collective"]

# Seconds a collective may wait for the other processes before it fails (a hung or lost process);
# a process that dies is noticed sooner, when the engine sees its connection close.
DEFAULT_TIMEOUT = 300.0


class Communicator(abc.ABC):
    """Collectives on host NumPy arrays among the processes of one job, over an existing engine.

    polynn calls them in the same order on every process (the core and the runtimes run in lock
    step), so an engine needs no tags. Arrays are C-contiguous float64 or float32 NumPy arrays,
    changed in place. A method that fails (a process died, a timeout) raises an exception, which
    polynn turns into a DistributionError naming the engine. `engine` names the engine ("torch",
    "tensorflow", a plugin's); backends whose Backend.distribution_engines does not list it refuse
    to train on it.
    """

    engine: str = ""

    def __init__(self, rank: int, world_size: int, local_rank: int = 0) -> None:
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank

    @abc.abstractmethod
    def all_reduce_sum(self, array: np.ndarray) -> None:
        """Replace `array`, on every process, by the element-wise sum of every process's `array`.
        The result must be bitwise the same on every process (the engines' rings and trees are)."""

    def broadcast(self, array: np.ndarray, root: int = 0) -> None:
        """Replace `array`, on every process, by process `root`'s. The default sums `root`'s array
        with zeros from the others: exact, NaN and infinities included."""
        if self.rank != root:
            array[...] = 0
        self.all_reduce_sum(array)

    def barrier(self) -> None:
        """Return once every process has called it."""
        self.all_reduce_sum(np.zeros(1))

    def close(self) -> None:  # noqa: B027 (optional: most engines have nothing to release)
        """Release the engine's resources (called once, by shutdown())."""


@dataclasses.dataclass(frozen=True)
class Cluster:
    """Where this process stands in its job, as the launcher's environment (or initialize()'s
    arguments) says: rank, world_size, local_rank; `coordinator` "host:port" (torch.distributed's
    rendezvous) or None; `workers` every worker's "host:port" (TF_CONFIG's cluster) or (); `source`
    what it was read from; `timeout` seconds for a collective."""

    rank: int
    world_size: int
    local_rank: int = 0
    coordinator: str | None = None
    workers: tuple[str, ...] = ()
    source: str = "arguments"
    timeout: float = DEFAULT_TIMEOUT



@contextmanager
def collective(comm: Communicator, what: str) -> Iterator[None]:
    """An engine's failure in a collective, re-raised as a DistributionError naming the engine and
    this process's rank (the original chained as __cause__)."""
    try:
        yield
    except PolynnError:
        raise
    except Exception as error:
        text = " ".join(f"{type(error).__name__}: {error}".split())
        raise DistributionError(
            f"{what} failed on rank {comm.rank} of {comm.world_size} ({comm.engine or type(comm).__name__} engine): "
            f"{text:.400}. Another process has probably stopped (it died, raised, or timed out); this one stops "
            f"too. Files rank 0 wrote before (checkpoints) are whole: each is written beside its target, then "
            f"renamed.") from error
