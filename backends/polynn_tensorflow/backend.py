"""The TensorFlow backend: TF core ops as polynn.ops, run in tf.function blocks that GradientTape differentiates."""

from __future__ import annotations

from polynn import ops as polynn_ops
from polynn.backend import Backend
from polynn.errors import InvalidArgumentError

from . import activations, ops

DEVICES = {None: None, "cpu": "/CPU:0", "gpu": "/GPU:0"}


class TensorFlowBackend(Backend):
    name = "tensorflow"
    engine = "tensorflow"
    devices = ("cpu", "gpu")
    ops = ops
    implementations = {"activation": activations.IMPLEMENTATIONS}

    def run_ops(self, function, like, *args):
        with polynn_ops.using(ops), ops.floats(like.dtype):
            return function(*args)

    def compile(self, plan):
        from .runtime import TensorFlowRuntime

        self.check_plan(plan)
        if plan.device not in DEVICES:
            raise InvalidArgumentError("device", plan.device, "None, 'cpu' or 'gpu'", owner="backend 'tensorflow'")
        return TensorFlowRuntime(self, plan, DEVICES[plan.device])
