"""The NumPy backend: the literal reading of each spec's math, and the reference every backend meets."""

from __future__ import annotations

from polynn.backend import Backend
from polynn.errors import InvalidArgumentError

from . import activations, constraints, layers, losses, metrics, ops, optimizers, regularizers, shared


class NumpyBackend(Backend):
    name = "numpy"
    engine = "numpy"
    ops = ops
    implementations = {
        "layer": layers.IMPLEMENTATIONS,
        "activation": activations.IMPLEMENTATIONS,
        "loss": losses.IMPLEMENTATIONS,
        "metric": metrics.IMPLEMENTATIONS,
        "optimizer": optimizers.UPDATES,
        "regularizer": regularizers.IMPLEMENTATIONS,
        "constraint": constraints.IMPLEMENTATIONS,
    }

    # Any communicator (all are host arrays); its own engine, make_communicator's, is MPI.
    distribution_engines = None

    def make_communicator(self, cluster):
        from .collectives import MpiCommunicator

        return MpiCommunicator.make(cluster)

    def run_ops(self, function, like, *args):
        return shared.run(function, like, *args)

    def adapt(self, kind, spec_class):
        # No autodiff engine underneath: the gradients come from polynn_numpy.autodiff.
        return shared.adapt(kind, spec_class)

    def compile(self, plan):
        from .runtime import NumpyRuntime

        self.check_plan(plan)
        if plan.device not in (None, "cpu"):
            raise InvalidArgumentError("device", plan.device, "None or 'cpu'", owner="backend 'numpy'")
        return NumpyRuntime(self, plan)
