"""The torch.distributed engine: a process group joined from the launcher's environment, or reused."""

from __future__ import annotations

import datetime
import os
from typing import Any

import numpy as np

from polynn.distribution import Cluster, Communicator
from polynn.errors import DistributionError


def _dist() -> Any:
    import torch.distributed as dist

    if not dist.is_available():
        raise DistributionError("this torch build has no torch.distributed; install one that has it "
                                "(pip install torch)")
    return dist


class TorchCommunicator(Communicator):
    """Host arrays reduced on the default torch.distributed group: gloo, which takes CPU tensors
    that share the NumPy arrays' memory (no copy). The group is "cpu:gloo,cuda:nccl" when CUDA is
    present, so the torch backend's CUDA tensors go through NCCL on the same group."""

    engine = "torch"

    def __init__(self, rank: int, world_size: int, local_rank: int, owned: bool) -> None:
        super().__init__(rank, world_size, local_rank)
        self.owned = owned  # whether polynn created the group (and so destroys it)

    @classmethod
    def start(cls, cluster: Cluster) -> TorchCommunicator:
        dist = _dist()
        import torch

        host, _, port = (cluster.coordinator or "").rpartition(":")
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        try:
            dist.init_process_group(backend, init_method=f"tcp://{host}:{port}", rank=cluster.rank,
                                    world_size=cluster.world_size,
                                    timeout=datetime.timedelta(seconds=cluster.timeout))
        except Exception as error:
            text = " ".join(f"{type(error).__name__}: {error}".split())
            raise DistributionError(
                f"rank {cluster.rank} of {cluster.world_size} could not join the job at {cluster.coordinator} "
                f"(from {cluster.source}) within {cluster.timeout:g} s: {text:.400}") from error
        return cls(cluster.rank, cluster.world_size, cluster.local_rank, owned=True)

    @classmethod
    def make(cls, cluster: Cluster) -> TorchCommunicator:
        """The communicator for `cluster`: the default group when one exists already (Ray Train's,
        the user's), else a group polynn starts at the cluster's coordinator."""
        dist = _dist()
        return cls.from_existing_group() if dist.is_initialized() else cls.start(cluster)

    @classmethod
    def from_existing_group(cls) -> TorchCommunicator:
        dist = _dist()
        local = os.environ.get("LOCAL_RANK", "0")
        return cls(dist.get_rank(), dist.get_world_size(), int(local) if local.isdigit() else 0, owned=False)

    def all_reduce_sum(self, array: np.ndarray) -> None:
        import torch

        dist = _dist()
        if array.size:
            dist.all_reduce(torch.from_numpy(array), op=dist.ReduceOp.SUM)

    def broadcast(self, array: np.ndarray, root: int = 0) -> None:
        import torch

        dist = _dist()
        if array.size:
            dist.broadcast(torch.from_numpy(array), src=root)

    def barrier(self) -> None:
        self.all_reduce_sum(np.zeros(1))

    def close(self) -> None:
        dist = _dist()
        if self.owned and dist.is_initialized():
            dist.destroy_process_group()
