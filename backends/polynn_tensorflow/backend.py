"""The TensorFlow backend: TF core ops as polynn.ops, run in tf.function blocks that GradientTape differentiates."""

from __future__ import annotations

import tensorflow as tf

from polynn import ops as polynn_ops
from polynn.backend import Backend
from polynn.errors import InvalidArgumentError

from . import activations, ops, recurrent

_OWNER = "backend 'tensorflow'"
_ACCEPTED = "None, 'cpu' or 'gpu' ('gpu:N' for the Nth GPU)"


def resolve_device(requested, replica=None):
    """TensorFlow's name of Plan.device: None (TensorFlow's placement), "cpu", "gpu" (the first GPU;
    under data-parallel training the GPU of the process's local rank, or the only GPU it sees) or
    "gpu:N", the Nth GPU as tf.config.list_physical_devices lists them, when this process sees it."""
    if requested is None:
        return None
    if requested == "cpu":
        return "/CPU:0"
    kind, colon, index = requested.partition(":") if isinstance(requested, str) else ("", "", "")
    if kind != "gpu" or (colon and not (index.isdigit() and index.isascii())):
        raise InvalidArgumentError("device", requested, _ACCEPTED, owner=_OWNER)
    gpus = tf.config.list_physical_devices("GPU")
    # Under data-parallel training "gpu" is the local rank's GPU, or the one GPU a process sees.
    number = int(index) if colon else (0 if replica is None or len(gpus) == 1 else replica.local_rank)
    if number >= len(gpus):
        present = f"GPUs 0..{len(gpus) - 1} ({len(gpus)})" if gpus else "no GPU"
        meaning = "" if colon or replica is None else f" (under data-parallel training 'gpu' means 'gpu:{number}', " \
                                                      f"the GPU of this process's local rank)"
        raise InvalidArgumentError(
            "device", requested, f"None, 'cpu'{' or a GPU up to gpu:' + str(len(gpus) - 1) if gpus else ''}: "
            f"TensorFlow lists {present} on this machine{meaning}", owner=_OWNER)
    visible = tf.config.get_visible_devices("GPU")
    if gpus[number] not in visible:
        seen = ", ".join(f"gpu:{gpus.index(g)}" for g in visible if g in gpus) or "none"
        raise InvalidArgumentError(
            "device", requested, f"None, 'cpu' or a GPU this process sees ({seen}): gpu:{number} is hidden from it "
            f"(a data-parallel job leaves each process the GPU of its local rank)", owner=_OWNER)
    return f"/GPU:{visible.index(gpus[number])}"


class TensorFlowBackend(Backend):
    name = "tensorflow"
    engine = "tensorflow"
    devices = ("cpu", "gpu")
    ops = ops
    implementations = {"activation": activations.IMPLEMENTATIONS, "layer": recurrent.IMPLEMENTATIONS}
    distribution_engines = ("tensorflow",)

    def make_communicator(self, cluster):
        from .collectives import TensorFlowCommunicator

        return TensorFlowCommunicator.start(cluster)

    def run_ops(self, function, like, *args):
        with polynn_ops.using(ops), ops.floats(like.dtype):
            return function(*args)

    def compile(self, plan):
        from .runtime import TensorFlowRuntime

        self.check_plan(plan)
        return TensorFlowRuntime(self, plan, resolve_device(plan.device, plan.distribution))
