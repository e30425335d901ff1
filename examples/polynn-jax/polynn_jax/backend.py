"""The JAX backend: each spec's math on jax.numpy; blocks of training steps run as one jit-compiled scan."""

from __future__ import annotations

from polynn.backend import Backend
from polynn.errors import InvalidArgumentError

from . import activations, constraints, layers, losses, metrics, optimizers, regularizers


class JaxBackend(Backend):
    name = "jax"
    engine = "jax"
    dtypes = ("float32", "float64")
    devices = ("cpu",)
    implementations = {
        "layer": layers.IMPLEMENTATIONS,
        "activation": activations.IMPLEMENTATIONS,
        "loss": losses.IMPLEMENTATIONS,
        "metric": metrics.IMPLEMENTATIONS,
        "optimizer": optimizers.UPDATES,
        "regularizer": regularizers.IMPLEMENTATIONS,
        "constraint": constraints.IMPLEMENTATIONS,
    }

    def engine_version(self) -> str:
        import jax

        return jax.__version__

    def compile(self, plan):
        from .runtime import JaxRuntime

        self.check_plan(plan)
        if plan.device not in (None, "cpu"):
            raise InvalidArgumentError("device", plan.device, "None or 'cpu'", owner="backend 'jax'")
        return JaxRuntime(self, plan)
