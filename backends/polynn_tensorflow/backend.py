"""The TensorFlow backend: TF core ops as polynn.ops, run in tf.function blocks that GradientTape differentiates."""

from __future__ import annotations

from polynn import ops as polynn_ops
from polynn.backend import Backend
from polynn.errors import InvalidArgumentError

from . import ops, optimizers

DEVICES = {None: None, "cpu": "/CPU:0", "gpu": "/GPU:0"}


class TensorFlowBackend(Backend):
    name = "tensorflow"
    engine = "tensorflow"
    dtypes = ("float32", "float64")
    devices = ("cpu", "gpu")
    ops = ops
    implementations = {
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
