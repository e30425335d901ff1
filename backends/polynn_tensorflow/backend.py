"""The TensorFlow backend: each spec's forward math on TF core ops; gradients come from GradientTape."""

from __future__ import annotations

from polynn.backend import Backend
from polynn import ops as polynn_ops
from polynn.errors import InvalidArgumentError

from . import losses, metrics, ops, optimizers

DEVICES = {None: None, "cpu": "/CPU:0", "gpu": "/GPU:0"}


class TensorFlowBackend(Backend):
    name = "tensorflow"
    engine = "tensorflow"
    dtypes = ("float32", "float64")
    devices = ("cpu", "gpu")
    ops = ops
    implementations = {
        "loss": losses.IMPLEMENTATIONS,
        "metric": metrics.IMPLEMENTATIONS,
        "optimizer": optimizers.UPDATES,
    }

    def run_ops(self, function, like, *args):
        with polynn_ops.using(ops), ops.floats(like.dtype):
            return function(*args)

    def engine_version(self) -> str:
        import tensorflow as tf

        return tf.__version__

    def compile(self, plan):
        from .runtime import TensorFlowRuntime

        self.check_plan(plan)
        if plan.device not in DEVICES:
            raise InvalidArgumentError("device", plan.device, "None, 'cpu' or 'gpu'", owner="backend 'tensorflow'")
        return TensorFlowRuntime(self, plan, DEVICES[plan.device])
