"""The JAX backend: every component is polynn's shared one, run on this package's ops in x64 mode."""

from __future__ import annotations

import jax

from polynn import ops as polynn_ops
from polynn.backend import Backend
from polynn.errors import InvalidArgumentError

from . import ops
from .precision import x64


class JaxBackend(Backend):
    name = "jax"
    engine = "jax"
    dtypes = ("float32", "float64")
    devices = ("cpu",)
    ops = ops

    def engine_version(self) -> str:
        return jax.__version__

    def run_ops(self, function, like, *args):
        # x64 for float32 models too: metric states and reported losses are float64.
        with x64(), polynn_ops.using(ops), ops.floats(like.dtype):
            return function(*args)

    def compile(self, plan):
        from .runtime import JaxRuntime

        self.check_plan(plan)
        if plan.device not in (None, "cpu"):
            raise InvalidArgumentError("device", plan.device, "None or 'cpu'", owner="backend 'jax'")
        return JaxRuntime(self, plan)
