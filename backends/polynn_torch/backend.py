"""The PyTorch backend: the spec's forward math on torch tensors, gradients from autograd.

Devices (compile(device=...)): None or "cpu", "cuda" (the first GPU) and "cuda:N". Under
data-parallel training (compile(distribution="data_parallel")), "cuda" means cuda:LOCAL_RANK, the
GPU of this process on its machine (torchrun's LOCAL_RANK), and the gradients cross over NCCL;
"cuda:N" is taken as given; on the CPU they cross over gloo. A device this machine lacks is refused
with an error naming the devices it has.
"""

from __future__ import annotations

import torch

from polynn import ops as polynn_ops
from polynn.backend import Backend
from polynn.errors import InvalidArgumentError

from . import activations, layers, losses, metrics, ops, optimizers, recurrent


def resolve_device(requested, replica=None):
    """The torch.device for Plan.device: None means the CPU; "cpu", "cuda" and "cuda:N" are accepted
    when this machine has them. Under data-parallel training (`replica`, the plan's
    polynn.distribution.Replica), "cuda" means cuda:LOCAL_RANK (replica.local_rank), or cuda:0 when the
    process sees one CUDA device only."""
    owner = "backend 'torch'"
    accepted = "'cpu', 'cuda' or 'cuda:N'"
    name = "cpu" if requested is None else requested
    if not isinstance(name, str):
        raise InvalidArgumentError("device", requested, accepted, owner=owner)
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise InvalidArgumentError("device", requested, accepted, owner=owner) from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise InvalidArgumentError("device", requested, accepted, owner=owner)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    # Data-parallel processes on one machine each take the GPU of their local rank, or the only one
    # they see (a launcher that gives each its own through CUDA_VISIBLE_DEVICES).
    local = device.index is None and replica is not None
    index = (replica.local_rank if local and count != 1 else 0) if device.index is None else device.index
    mapped = f"; under data-parallel training 'cuda' means cuda:LOCAL_RANK, here cuda:{index}" if local else ""
    if count == 0:
        raise InvalidArgumentError("device", requested, f"'cpu' (this machine has no CUDA device{mapped})",
                                   owner=owner)
    if index >= count:
        present = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
        raise InvalidArgumentError(
            "device", requested, f"'cpu', 'cuda' or 'cuda:N' with N in 0..{count - 1} (this machine has "
            f"{count} CUDA device{'s' if count > 1 else ''}: {present}{mapped})", owner=owner)
    return torch.device("cuda", index)


class TorchBackend(Backend):
    name = "torch"
    engine = "torch"
    devices = ("cpu", "cuda")
    ops = ops
    implementations = {"layer": {**layers.IMPLEMENTATIONS, **recurrent.IMPLEMENTATIONS},
                       "activation": activations.IMPLEMENTATIONS, "loss": losses.IMPLEMENTATIONS,
                       "metric": metrics.IMPLEMENTATIONS, "optimizer": optimizers.UPDATES}

    def run_ops(self, function, like, *args):
        with polynn_ops.using(ops), ops.floats(like.dtype, like.device):
            return function(*args)

    def adapt(self, kind, spec_class):
        # The runtime updates its flat buffers in place, chunk by chunk (polynn_torch.optimizers).
        return optimizers.in_place(self.run_ops) if kind == "optimizer" else super().adapt(kind, spec_class)

    # Any communicator: a torch.distributed one reduces on the device, another (a plugin's) through host copies.
    distribution_engines = None

    def make_communicator(self, cluster):
        from .collectives import TorchCommunicator

        return TorchCommunicator.make(cluster)

    def compile(self, plan):
        from .runtime import TorchRuntime

        self.check_plan(plan)
        return TorchRuntime(self, plan, resolve_device(plan.device, plan.distribution))
